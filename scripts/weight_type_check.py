#!/usr/bin/env python3
"""Cross-checks kvlab's weight types against llama.cpp's own Python package (`gguf`).

  weight_type_check.py IN.f32 OUT.json
      Reads little-endian float32 values (a whole number of 256-element super-blocks) and
      quantizes them with `gguf.quants.quantize` to every type gguf-py can quantize (f16, bf16,
      q8_0, q5_0, q5_1, q4_0, q4_1). Then, for every type kvlab stores, makes random blocks with
      edge cases (an all-zero block; fp16 scales at the largest finite value, negative, the
      smallest subnormal, the largest subnormal and zero; fully random bytes, NaN and infinity
      halves included) and decodes them with `gguf.quants.dequantize`. OUT.json maps
      "quantized" → type → base64 bytes and "dequantized" → type → {"raw", "decoded"} (base64
      bytes and float32s) for kvlab's tests to compare bit for bit.

Install the pinned package with `pip install -r scripts/requirements.txt`.
"""

import base64
import json
import sys

import numpy as np
import gguf

Q = gguf.GGMLQuantizationType
QUANTIZABLE = ["F16", "BF16", "Q8_0", "Q5_0", "Q5_1", "Q4_0", "Q4_1"]
# Each type's fp16 scale fields (byte offsets in its block), from ggml's block_* structs.
SCALES = {
    "F32": [], "F16": [], "BF16": [],
    "Q8_0": [0], "Q5_0": [0], "Q5_1": [0, 2], "Q4_0": [0], "Q4_1": [0, 2], "IQ4_NL": [0],
    "Q6_K": [208], "Q5_K": [0, 2], "Q4_K": [0, 2], "Q3_K": [108], "Q2_K": [80, 82], "IQ4_XS": [0],
}
EDGE_HALVES = [0x7BFF, 0xFBFF, 0x0001, 0x03FF, 0x0000, 0x3C00]


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


def random_blocks(name: str, rng: np.random.Generator) -> np.ndarray:
    _, type_size = gguf.GGML_QUANT_SIZES[Q[name]]
    count = 64
    blocks = rng.integers(0, 256, size=(count, type_size), dtype=np.uint8)
    blocks[0] = 0
    offsets = SCALES[name]
    for i, half in enumerate(EDGE_HALVES):
        for offset in offsets:
            blocks[1 + i, offset:offset + 2] = np.frombuffer(np.uint16(half).tobytes(), dtype=np.uint8)
    # Most of the rest get finite, moderate scales, as real files have; the last 8 stay fully random.
    for row in range(1 + len(EDGE_HALVES), count - 8):
        for offset in offsets:
            half = np.float16(rng.uniform(-0.05, 0.05))
            blocks[row, offset:offset + 2] = np.frombuffer(half.tobytes(), dtype=np.uint8)
    return blocks


def main(in_path: str, json_path: str) -> None:
    values = np.fromfile(in_path, dtype="<f4").reshape(-1, 256)
    quantized = {name.lower(): b64(gguf.quants.quantize(values, Q[name])) for name in QUANTIZABLE}
    rng = np.random.default_rng(15)
    dequantized = {}
    for name in SCALES:
        raw = random_blocks(name, rng)
        with np.errstate(all="ignore"):
            decoded = gguf.quants.dequantize(raw.reshape(-1), Q[name]).astype("<f4")
        key = name.lower().replace("_k", "_K")
        dequantized[key] = {"raw": b64(raw), "decoded": b64(decoded)}
    quantized = {key.replace("_k", "_K"): value for key, value in quantized.items()}
    with open(json_path, "w") as out:
        json.dump({"quantized": quantized, "dequantized": dequantized}, out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
