#!/usr/bin/env python3
"""Cross-checks a safetensors model directory written by kvlab against Hugging Face's own libraries.

  hf_check.py MODEL_DIR TEXTS.json OUT.json
      Encodes every string of TEXTS.json (a JSON list) with `tokenizers` from MODEL_DIR/tokenizer.json,
      and reads MODEL_DIR/model.safetensors with `safetensors`; OUT.json records the token ids and,
      per tensor, the dtype, shape and raw little-endian bytes (base64), for kvlab's tests to compare.

Install the pinned packages with `pip install -r scripts/requirements.txt`.
"""

import base64
import json
import os
import sys

from safetensors.numpy import load_file
from tokenizers import Tokenizer


def main(model_dir: str, texts_path: str, out_path: str) -> None:
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    with open(texts_path) as f:
        texts = json.load(f)
    encodings = [tokenizer.encode(text).ids for text in texts]
    tensors = {name: {"dtype": str(array.dtype), "shape": list(array.shape),
                      "data": base64.b64encode(array.astype(array.dtype.newbyteorder("<")).tobytes()).decode()}
               for name, array in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    with open(out_path, "w") as out:
        json.dump({"encodings": encodings, "tensors": tensors}, out)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
