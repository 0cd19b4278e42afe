#!/usr/bin/env python3
"""transformers on the first N tokens of a model hf_families.py built, for HFFamilyTests' check of
kvlab's --context: Phi-3's LongRoPE takes its short factors on a forward pass of at most its
original context and its long ones past it, so a run limited to N tokens is compared with passes
of at most N tokens.

Usage:  python3 scripts/hf_prefix_oracle.py MODEL_DIR N

Prints oracle.json's fields for the first N tokens of MODEL_DIR/oracle.json's sequence (one
pass): the logits at its sampled ids, each position's argmax and top-2 margin, the mean NLL, and
the greedy continuation of the first N/2 tokens up to N tokens (each pass shorter than N).
"""

import json
import os
import sys

import torch
import transformers

path, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(path, "oracle.json")) as f:
    full = json.load(f)
tokens = torch.tensor(full["tokens"][:n])
sampled = torch.tensor(full["sampled_ids"])
model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
with torch.no_grad():
    logits = model(tokens[None]).logits[0].double()
    lse = torch.logsumexp(logits, dim=-1)
    nll = (lse[:-1] - logits[:-1].gather(1, tokens[1:, None])[:, 0]).mean().item()
    top2 = logits.topk(2).values
    ids = tokens[: n // 2].tolist()
    while len(ids) < n:
        ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
json.dump({"family": full["family"], "tokens": tokens.tolist(), "sampled_ids": full["sampled_ids"],
           "logits": logits[:, sampled].tolist(), "argmax": logits.argmax(-1).tolist(),
           "margins": (top2[:, 0] - top2[:, 1]).tolist(), "nll": nll, "greedy_prompt": n // 2, "greedy": ids[n // 2:]},
          sys.stdout)
