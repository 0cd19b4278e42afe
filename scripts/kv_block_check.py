#!/usr/bin/env python3
"""Cross-checks kvlab's KV block formats against llama.cpp's own Python package (`gguf`).

  kv_block_check.py IN.f32 OUT.json
      Reads little-endian float32 values (a whole number of 32-element blocks) and quantizes them
      with `gguf.quants.quantize` as q8_0, q4_0, q4_1, q5_0 and q5_1. OUT.json maps each type name
      to the quantized bytes ("raw") and `gguf.quants.dequantize`'s floats ("decoded"), both
      base64, for kvlab's tests to compare with KVBlockFormat bit for bit.

Install the pinned package with `pip install -r scripts/requirements.txt`.
"""

import base64
import json
import sys

import numpy as np
import gguf

TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]


def main(in_path: str, json_path: str) -> None:
    values = np.fromfile(in_path, dtype="<f4").reshape(-1, 32)
    record = {}
    for name in TYPES:
        qtype = gguf.GGMLQuantizationType[name]
        stored = gguf.quants.quantize(values, qtype)
        decoded = gguf.quants.dequantize(stored, qtype).astype("<f4")
        record[name.lower()] = {"raw": base64.b64encode(stored.tobytes()).decode(),
                                "decoded": base64.b64encode(decoded.tobytes()).decode()}
    with open(json_path, "w") as out:
        json.dump(record, out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
