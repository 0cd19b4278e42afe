#!/usr/bin/env python3
"""Cross-checks kvlab's `headkv` and `cam` against KVCache-Factory itself (Zefan-Cai/KVCache-Factory): the kept
sets must be equal.

  kvcache_factory_check.py --source DIR [--kvlab PATH] [--work DIR] [--models llama,qwen3,gemma3] [--stable-sort]
                           [--cases cam,headkv,...] [--budgets 50,100,150] [--json OUT]

KVCache-Factory is not on PyPI: DIR is a copy of its source (the `fetch` of github:Zefan-Cai/KVCache-Factory into
.cache/kvcache-factory, never committed); only `pyramidkv/pyramidkv_utils.py` is imported (plain torch, no
flash-attn). For each tiny random-weight model of kvpress_check.py and its 200-token prompt, the model runs with
eager attention whose function is wrapped to record each layer's queries, keys and values as attention gets them
(after RoPE and the query/key norms), and those are handed to KVCache-Factory's cluster classes in its `kv_head`
layout (GQA keys and values not repeated, `gqa_score_agg='mean'`), the layout kvlab follows:

  cam      CAMKVCluster(start_budget_ratio=start, window_size=observation, max_capacity_prompt=budget)
           against `cam:budget=B,observation=W,start=S`;
  headkv   HeadKVCluster(window_size=W, kernel_size=pool, pooling='maxpool', max_capacity_prompt=B − W,
           head_capacity=run_longbench.py's table for a scores file written here) against
           `headkv:scores=FILE,budget=B,observation=W,pool=P,beta=β` (B − W is run_longbench's --max_capacity_prompts).

Each side's kept positions per (layer, KV head) are compared, KVCache-Factory's recovered by matching the key rows it
returns against the keys it was given. CAM merges values, never keys, and chooses the kept entries by scores it
computes before the merges, so its kept positions do not depend on its merge draws (torch.bernoulli here, kvlab's
seeded generator there); `start=1` makes no merges at all. The table, method × budget × model:

  exact   every (layer, KV head) keeps the same positions;
  tie     the sets differ only among entries KVCache-Factory scores equally (torch's top-k and sort order tied
          entries arbitrarily; kvlab keeps the older), so kvlab's set is one of its possible results;
  DIFF    anything else (the number of differing positions is shown).

HeadKV max-pools its scores (each local maximum repeats over the kernel) and orders them with `torch.sort`, whose
CPU order among equal scores is arbitrary past 16 entries (introsort), so its kept sets tie with kvlab's.
`--stable-sort` runs HeadKVCluster with a stable sort (ties: the older entry first, as kvlab keeps them); every
HeadKV tie is then exact.

Exits non-zero when any case is DIFF. Run it in kvpress's venv (scripts/kvpress-venv):
`.cache/kvpress-venv/bin/python scripts/kvcache_factory_check.py --source .cache/kvcache-factory`.
"""

import argparse
import json
import os
import random
import sys
import tempfile

import torch
from transformers import DynamicCache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvpress_check import build_model, compare, finish, kvlab_kept, prompt, report_row  # noqa: E402  (the same fixtures and comparison)

# `cam` with init_CAM's defaults (window 32, start 0.1), without merges, and with run_longbench's window 8;
# `headkv` with run_longbench's (window 8, max-pool 7, head_beta 1.01) and a flatter budget split.
DEFAULT_CASES = "cam,cam/start=1,cam/observation=8,headkv,headkv/beta=2/observation=16"
DEFAULTS = {"cam": {"observation": 32, "start": 0.1}, "headkv": {"observation": 8, "pool": 7, "beta": 1.01}}


def load_factory(source):
    """KVCache-Factory's pyramidkv_utils from the source folder."""
    path = os.path.join(source, "pyramidkv", "pyramidkv_utils.py")
    if not os.path.isfile(path):
        raise SystemExit(f"kvcache_factory_check.py: --source {source}: no pyramidkv/pyramidkv_utils.py (fetch "
                         "github:Zefan-Cai/KVCache-Factory there)")
    sys.path.insert(0, os.path.abspath(source))
    import pyramidkv.pyramidkv_utils as factory
    return factory


def attention_inputs(model, ids):
    """Per layer: (queries [1, heads, n, d], keys [1, kv heads, n, d], values) as eager attention receives them."""
    captured = {}
    modules = {sys.modules[type(layer.self_attn).__module__] for layer in model.model.layers}
    originals = {module: module.eager_attention_forward for module in modules}

    def wrap(original):
        def eager(attention, query, key, value, *args, **kwargs):
            captured[attention.layer_idx] = (query.detach().clone(), key.detach().clone(), value.detach().clone())
            return original(attention, query, key, value, *args, **kwargs)
        return eager

    for module, original in originals.items():
        module.eager_attention_forward = wrap(original)
    try:
        model.config._attn_implementation = "eager"
        with torch.no_grad():
            model(torch.tensor([ids]), past_key_values=DynamicCache(config=model.config))
    finally:
        for module, original in originals.items():
            module.eager_attention_forward = original
    return [captured[layer] for layer in range(model.config.num_hidden_layers)]


def write_head_scores(path, layers, heads):
    """A HeadKV scores file in the HeadKV authors' format (one line, keys layer-major), 3 samples per query head,
    some heads scoring 0 (as real retrieval-reasoning scores do)."""
    rng = random.Random(7)
    scores = {f"{layer}-{head}": [round(max(0.0, rng.gauss(0.05, 0.1)), 4) for _ in range(3)]
              for layer in range(layers) for head in range(heads)}
    with open(path, "w") as f:
        f.write(json.dumps(scores) + "\n")


def head_capacity(path, layers, heads, capacity, beta):
    """run_longbench.py's HeadKV table (its lines, verbatim but for names): per query head, round(score share ·
    ⌊B/β⌋·L·H + B − ⌊B/β⌋) for B = --max_capacity_prompts and β = --head_beta."""
    import numpy as np
    with open(path, "r") as file:
        head_list = json.loads(file.readline())
    head_score_list = [np.mean(l[1]) for l in head_list.items()]
    head_score_list = torch.tensor(head_score_list / sum(head_score_list))
    total_attention = head_score_list.reshape(layers, heads)
    total_pool_capacity = (capacity // beta) * layers * heads
    min_num = (capacity - capacity // beta)
    return torch.round(total_attention * total_pool_capacity + min_num).int()


def rows_to_positions(kept_keys, keys):
    """The positions of `kept_keys`' rows among `keys`' rows (one head), ascending."""
    rows = {keys[p].numpy().tobytes(): p for p in range(keys.shape[0])}
    return sorted(rows[k.numpy().tobytes()] for k in kept_keys)


def factory_cam(factory, inputs, budget, observation, start):
    """CAMKVCluster's kept positions and scores per (layer, KV head)."""
    scores = {}
    original = factory._select_topk_kv

    def select(key_states, value_states, attn_cache, *args):
        scores["last"] = attn_cache[0].detach().clone()
        return original(key_states, value_states, attn_cache, *args)

    factory._select_topk_kv = select
    kept = []
    try:
        for query, key, value in inputs:
            cluster = factory.CAMKVCluster(start_budget_ratio=start, window_size=observation, max_capacity_prompt=budget,
                                           merge=None, gqa_score_agg="mean")
            scores.pop("last", None)
            groups = query.shape[1] // key.shape[1]
            kept_keys, _ = cluster.update_kv(key.clone(), query, value.clone(), None, groups)
            layer_scores = scores.get("last")
            kept.append([(rows_to_positions(kept_keys[0, h], key[0, h]), layer_scores[h].tolist() if layer_scores is not None else None)
                         for h in range(key.shape[1])])
    finally:
        factory._select_topk_kv = original
    return kept


def stable_sort(original):
    """torch.Tensor.sort that orders equal elements by index (`stable=True`)."""
    def sort(self, *args, **kwargs):
        return original(self, *args, stable=True, **kwargs)
    return sort


def factory_headkv(factory, inputs, capacity, observation, pool, table, stable=False):
    """HeadKVCluster's kept positions and scores per (layer, KV head); `stable`: its sort made stable."""
    original_sort = torch.Tensor.sort
    if stable:
        torch.Tensor.sort = stable_sort(original_sort)
    try:
        return headkv_kept(factory, inputs, capacity, observation, pool, table)
    finally:
        torch.Tensor.sort = original_sort


def headkv_kept(factory, inputs, capacity, observation, pool, table):
    kept = []
    for layer, (query, key, value) in enumerate(inputs):
        cluster = factory.HeadKVCluster(window_size=observation, kernel_size=pool, pooling="maxpool",
                                        max_capacity_prompt=capacity + observation, layer_idx=layer,
                                        num_hidden_layers=len(inputs), head_capacity=table, gqa_score_agg="mean")
        scores = {}
        original = cluster.calcul_attn_sore

        def score(key_states, query_states, original=original):
            scores["layer"] = original(key_states, query_states)
            return scores["layer"]

        cluster.calcul_attn_sore = score
        flat_keys, _ = cluster.update_kv(key.clone(), query, value.clone())
        heads, start = [], 0
        for h, length in enumerate(cluster.head_lens.tolist()):
            heads.append((rows_to_positions(flat_keys[start:start + length], key[0, h]), scores["layer"][0, h].tolist()))
            start += length
        kept.append(heads)
    return kept


def parse_case(text):
    """`cam` or `headkv/beta=2/observation=16`: a method and its options over DEFAULTS."""
    name, *items = text.split("/")
    if name not in DEFAULTS:
        raise SystemExit(f"kvcache_factory_check.py: unknown method '{name}' ({', '.join(DEFAULTS)})")
    options = dict(DEFAULTS[name])
    for item in items:
        key, value = item.split("=", 1)
        if key not in options:
            raise SystemExit(f"kvcache_factory_check.py: {name}: unknown option '{key}' ({', '.join(options)})")
        options[key] = type(options[key])(float(value)) if isinstance(options[key], int) else float(value)
    return name, options


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="a copy of KVCache-Factory's source (github:Zefan-Cai/KVCache-Factory)")
    parser.add_argument("--kvlab", default=".build/debug/kvlab")
    parser.add_argument("--work", default=None, help="where the models are saved (a temporary directory by default)")
    parser.add_argument("--models", default="llama,qwen3,gemma3")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="methods, each with options after '/' (cam/start=1)")
    parser.add_argument("--budgets", default="50,100,150", help="entries per (layer, KV head): kvlab's budget")
    parser.add_argument("--stable-sort", action="store_true", help="HeadKV's torch.sort made stable (ties: the older first)")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    factory = load_factory(args.source)
    if not os.access(args.kvlab, os.X_OK):
        raise SystemExit(f"kvcache_factory_check.py: --kvlab {args.kvlab}: not an executable (build kvlab first)")
    work = args.work or tempfile.mkdtemp(prefix="kvcache-factory-check-")
    text, ids = prompt()
    results, failed = [], False
    print(f"{'method':<34}{'budget':>7}  {'model':<8} result")
    for family in args.models.split(","):
        model_dir = os.path.join(work, family)
        model = build_model(family, model_dir)
        config = model.config
        inputs = attention_inputs(model, ids)
        scores_path = os.path.join(work, f"{family}-heads.json")
        write_head_scores(scores_path, config.num_hidden_layers, config.num_attention_heads)
        for case in args.cases.split(","):
            name, options = parse_case(case)
            for budget in (int(b) for b in args.budgets.split(",")):
                observation = options["observation"]
                if name == "cam":
                    torch.manual_seed(0)
                    theirs = factory_cam(factory, inputs, budget, observation, options["start"])
                    method = f"cam:budget={budget},observation={observation},start={options['start']}"
                else:
                    capacity = budget - observation
                    table = head_capacity(scores_path, config.num_hidden_layers, config.num_attention_heads, capacity, options["beta"])
                    theirs = factory_headkv(factory, inputs, capacity, observation, options["pool"], table, args.stable_sort)
                    method = f"headkv:scores={scores_path},budget={budget},observation={observation},pool={options['pool']},beta={options['beta']}"
                ours, _ = kvlab_kept(args.kvlab, model_dir, text, method, ids, work)
                verdict = compare(theirs, ours, across_heads=False)
                failed |= report_row(results, {"method": case, "budget": budget, "model": family}, verdict, theirs, (34, 7))
    finish(results, failed, args.json)


if __name__ == "__main__":
    main()
