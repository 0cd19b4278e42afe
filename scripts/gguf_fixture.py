#!/usr/bin/env python3
"""Cross-checks kvlab's GGUF support against llama.cpp's own Python package (`gguf`).

  gguf_fixture.py write OUT.gguf OUT.json
      Writes a tiny random llama model with f32, f16, q8_0, q4_0 and q4_1 tensors and a llama
      (SentencePiece) tokenizer, quantized by `gguf.quants.quantize`. OUT.json records, per
      tensor, the source floats, the quantized bytes and the dequantized floats (little-endian,
      base64), plus the config and tokenizer, for kvlab's tests to compare against.

  gguf_fixture.py dump IN.gguf OUT.json
      Reads a GGUF file (e.g. one written by kvlab) with `gguf.GGUFReader` and records its
      metadata and tensor table (name, ggml type, dims innermost first, raw bytes).

Install the pinned package with `pip install -r scripts/requirements.txt`.
"""

import base64
import json
import sys

import numpy as np
import gguf

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, CONTEXT = 64, 128, 1, 4, 2, 128
PIECES = ["▁t", "he", "▁the", "in", "er", "an", "▁a", "on", "re", "▁s", "at", "en", "nd", "▁w",
          "ed", "▁o", "it", "ou", "is", "▁and", "ing", "▁", "e", "t", "a", "o", "h", "n", "s"]

# Storage type of every matrix in the fixture; norms are f32 except one f16 (llama.cpp accepts both).
MATRIX_TYPES = {
    "token_embd.weight": gguf.GGMLQuantizationType.Q8_0,
    "blk.0.attn_q.weight": gguf.GGMLQuantizationType.Q4_0,
    "blk.0.attn_k.weight": gguf.GGMLQuantizationType.Q4_1,
    "blk.0.attn_v.weight": gguf.GGMLQuantizationType.F16,
    "blk.0.attn_output.weight": gguf.GGMLQuantizationType.Q8_0,
    "blk.0.ffn_gate.weight": gguf.GGMLQuantizationType.Q4_1,
    "blk.0.ffn_down.weight": gguf.GGMLQuantizationType.Q4_0,
    "blk.0.ffn_up.weight": gguf.GGMLQuantizationType.F32,
    "output.weight": gguf.GGMLQuantizationType.Q8_0,
}


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def tokenizer():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + PIECES
    scores = [0.0] * 259 + [-float(rank) for rank in range(len(PIECES))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] \
        + [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * len(PIECES)
    return tokens, scores, [int(t) for t in types]


def matrix_values(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    values = rng.normal(0, 0.05, size=(rows, cols)).astype(np.float32)
    # Edge cases for the quantizers: an all-zero block, a constant block, and a block of exact
    # halves (q8_0 with scale 1 rounds them away from zero, as C's roundf does).
    values[0, :32] = 0
    values[1, :32] = 0.25
    values[2, :32] = np.arange(-15.5, 16.5, 1, dtype=np.float32)
    values[2, 31] = 127
    return values


def write(gguf_path: str, json_path: str) -> None:
    rng = np.random.default_rng(20240611)
    tokens, scores, types = tokenizer()
    vocab = len(tokens)
    kv_dim = DIM // HEADS * KV_HEADS
    shapes = {
        "token_embd.weight": (vocab, DIM), "output.weight": (vocab, DIM),
        "blk.0.attn_q.weight": (DIM, DIM), "blk.0.attn_k.weight": (kv_dim, DIM),
        "blk.0.attn_v.weight": (kv_dim, DIM), "blk.0.attn_output.weight": (DIM, DIM),
        "blk.0.ffn_gate.weight": (HIDDEN, DIM), "blk.0.ffn_down.weight": (DIM, HIDDEN),
        "blk.0.ffn_up.weight": (HIDDEN, DIM),
    }
    writer = gguf.GGUFWriter(gguf_path, "llama")
    writer.add_name("gguf-py fixture")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(DIM)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(HIDDEN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(DIM // HEADS)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)

    record = {}
    for name, qtype in MATRIX_TYPES.items():
        values = matrix_values(rng, *shapes[name])
        if qtype == gguf.GGMLQuantizationType.F32:
            stored, decoded = values, values
        elif qtype == gguf.GGMLQuantizationType.F16:
            stored = values.astype(np.float16)
            decoded = stored.astype(np.float32)
        else:
            stored = gguf.quants.quantize(values, qtype)
            decoded = gguf.quants.dequantize(stored, qtype)
        writer.add_tensor(name, stored, raw_dtype=qtype)
        record[name] = {"type": qtype.name.lower(), "shape": list(shapes[name]),
                        "source": b64(values), "raw": b64(stored), "decoded": b64(decoded.astype(np.float32))}
    for name in ["blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"]:
        values = rng.uniform(0.5, 1.5, size=DIM).astype(np.float32)
        qtype = gguf.GGMLQuantizationType.F16 if name == "blk.0.ffn_norm.weight" else gguf.GGMLQuantizationType.F32
        stored = values.astype(np.float16) if qtype == gguf.GGMLQuantizationType.F16 else values
        writer.add_tensor(name, stored, raw_dtype=qtype)
        record[name] = {"type": qtype.name.lower(), "shape": [DIM], "source": b64(values), "raw": b64(stored),
                        "decoded": b64(stored.astype(np.float32))}

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    config = {"name": "gguf-py fixture", "dim": DIM, "hidden_dim": HIDDEN, "layers": LAYERS, "heads": HEADS,
              "kv_heads": KV_HEADS, "context": CONTEXT, "rope_theta": 500000.0, "rms_eps": 1e-6, "vocab": vocab}
    with open(json_path, "w") as out:
        json.dump({"config": config, "tokens": tokens, "scores": scores, "types": types, "tensors": record}, out)


def plain(value):
    """Field contents as JSON-friendly values (numpy scalars become Python numbers)."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def dump(gguf_path: str, json_path: str) -> None:
    reader = gguf.GGUFReader(gguf_path)
    metadata = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        metadata[key] = {"type": field.types[0].name.lower(), "value": plain(field.contents())}
    tensors = [{"name": t.name, "type": t.tensor_type.name.lower(), "dims": [int(d) for d in t.shape],
                "n_bytes": int(t.n_bytes), "data": base64.b64encode(t.data.tobytes()).decode()}
               for t in reader.tensors]
    version = int(reader.fields["GGUF.version"].contents())
    with open(json_path, "w") as out:
        json.dump({"version": version, "metadata": metadata, "tensors": tensors}, out)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("write", "dump"):
        sys.exit(__doc__)
    (write if sys.argv[1] == "write" else dump)(sys.argv[2], sys.argv[3])
