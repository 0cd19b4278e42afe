#!/usr/bin/env python3
"""Writes a llama GGUF of a real model's shape with random weights, for speed comparisons.

  synthetic_gguf.py SHAPE TYPE OUT.gguf

SHAPE is one of:
  110m       llama2.c's stories110M: dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000
  tinyllama  TinyLlama-1.1B: dim 2048, 22 layers, 32 query heads over 4 KV heads (GQA 8:1), hidden 5632

TYPE is the storage type of every matrix, one gguf-py can quantize: f32, f16, bf16, q8_0, q4_0, q4_1,
q5_0 or q5_1 (norms stay f32). K-quant files are made from the f16 file with llama-quantize, as
llama.cpp's users make them (scripts/bench-llama-cpp does). Speed does not depend on the values,
so the weights are normal(0, 0.02) noise and the vocabulary is made-up pieces; both llama.cpp and
kvlab load the file as an ordinary llama model. Tensors are generated one at a time, so memory
stays near the quantized size.
"""

import sys

import numpy as np
import gguf

SHAPES = {
    "110m": dict(name="synthetic stories110M shape", dim=768, layers=12, heads=12, kv_heads=12, hidden=2048,
                 vocab=32000, context=1024),
    "tinyllama": dict(name="synthetic TinyLlama-1.1B shape", dim=2048, layers=22, heads=32, kv_heads=4,
                      hidden=5632, vocab=32000, context=2048),
}

TYPES = {
    "f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
    "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "q4_0": gguf.GGMLQuantizationType.Q4_0, "q4_1": gguf.GGMLQuantizationType.Q4_1,
    "q5_0": gguf.GGMLQuantizationType.Q5_0, "q5_1": gguf.GGMLQuantizationType.Q5_1,
}


def vocabulary(size: int):
    """<unk>, <s>, </s>, the 256 byte tokens, then distinct made-up pieces."""
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    pieces = []
    n = 0
    while len(pieces) < size - 259:
        word, k = "", n
        while True:
            word += letters[k % 26]
            k //= 26
            if k == 0:
                break
        pieces.append(("▁" if n % 3 == 0 else "") + word)
        n += 1
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    scores = [0.0] * 259 + [-float(rank) for rank in range(len(pieces))]
    types = [int(gguf.TokenType.UNKNOWN), int(gguf.TokenType.CONTROL), int(gguf.TokenType.CONTROL)] \
        + [int(gguf.TokenType.BYTE)] * 256 + [int(gguf.TokenType.NORMAL)] * len(pieces)
    return tokens, scores, types


def stored(values: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == gguf.GGMLQuantizationType.F32:
        return values
    if qtype == gguf.GGMLQuantizationType.F16:
        return values.astype(np.float16)
    return gguf.quants.quantize(values, qtype)


def write(shape: str, type_name: str, path: str) -> None:
    s = SHAPES[shape]
    qtype = TYPES[type_name]
    rng = np.random.default_rng(1)
    dim, hidden, head_dim = s["dim"], s["hidden"], s["dim"] // s["heads"]
    kv_dim = head_dim * s["kv_heads"]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(s["name"])
    writer.add_context_length(s["context"])
    writer.add_embedding_length(dim)
    writer.add_block_count(s["layers"])
    writer.add_feed_forward_length(hidden)
    writer.add_head_count(s["heads"])
    writer.add_head_count_kv(s["kv_heads"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(int({"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9,
                              "bf16": 32}[type_name]))
    tokens, scores, types = vocabulary(s["vocab"])
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)

    def matrix(name: str, rows: int, cols: int) -> None:
        values = rng.standard_normal(size=(rows, cols), dtype=np.float32) * np.float32(0.02)
        writer.add_tensor(name, stored(values, qtype), raw_dtype=qtype)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(dim, dtype=np.float32), raw_dtype=gguf.GGMLQuantizationType.F32)

    matrix("token_embd.weight", s["vocab"], dim)
    for i in range(s["layers"]):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", dim, dim)
        matrix(f"blk.{i}.attn_k.weight", kv_dim, dim)
        matrix(f"blk.{i}.attn_v.weight", kv_dim, dim)
        matrix(f"blk.{i}.attn_output.weight", dim, dim)
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", hidden, dim)
        matrix(f"blk.{i}.ffn_up.weight", hidden, dim)
        matrix(f"blk.{i}.ffn_down.weight", dim, hidden)
    norm("output_norm.weight")
    matrix("output.weight", s["vocab"], dim)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in SHAPES or sys.argv[2] not in TYPES:
        sys.exit(__doc__)
    write(*sys.argv[1:])
