#!/usr/bin/env python3
"""Reference tokenizations for TokenizerOracleTests: for each of llama.cpp's vocabulary files
named on the command line, transformers converts its GGUF tokenizer into a tokenizer.json (saved
under OUT/NAME/), and Hugging Face `tokenizers` encodes every text of TEXTS (a JSON list of
strings) with it, without special tokens added. Prints {NAME: [[ids] per text] or "error"}.

Pinned versions: transformers==5.25.0 tokenizers==0.23.3 gguf==0.19.0

Usage:  python3 scripts/tokenizer_check.py MODELS_DIR TEXTS.json OUT NAME...
"""

import json
import os
import sys

from tokenizers import Tokenizer
from transformers import AutoTokenizer

models, texts_path, out = sys.argv[1:4]
texts = json.load(open(texts_path, encoding="utf-8"))
result = {}
for name in sys.argv[4:]:
    folder = os.path.join(out, name)
    try:
        AutoTokenizer.from_pretrained(models, gguf_file=f"ggml-vocab-{name}.gguf").save_pretrained(folder)
    except Exception as error:  # a family transformers cannot convert is reported, not fatal
        result[name] = f"transformers cannot convert it: {type(error).__name__}: {str(error)[:200]}"
        continue
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    result[name] = [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]
json.dump(result, sys.stdout)
