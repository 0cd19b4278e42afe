#!/usr/bin/env python3
"""Cross-checks kvlab's `kvpress:<press>` methods against NVIDIA's kvpress itself: the kept sets must be equal.

  kvpress_check.py [--kvlab PATH] [--work DIR] [--models llama,...] [--presses snapkv,snapkv/window_size=16,...]
                   [--ratios 0.25,...] [--json OUT]

For each model family it builds a tiny random-weight model with transformers (eager attention), saves it as a
safetensors folder with a byte-level tokenizer kvlab reads, and feeds both tools the same 200-token prompt
(BOS first). For each press and compression ratio it runs kvpress's press over the prompt, recovers the positions
each (layer, KV head) keeps (from the compressed cache by matching key rows against the uncompressed cache, or
from `masked_key_indices` for AdaKV's head-wise budgets), runs `kvlab run --policy kvpress:<press>,ratio=R -n 0
--kept-out FILE` on the saved model, and prints a table press x ratio x model:

  exact   every (layer, KV head) keeps the same positions;
  tie     the sets differ only among entries whose kvpress scores are equal (within float rounding): torch.topk
          keeps an arbitrary subset of tied entries (kvlab keeps the newer), so kvlab's set is one of kvpress's
          possible results;
  DIFF    anything else (the number of differing positions is shown).

`--presses wrappers` runs the wrapper, composition and budget presses' cases (chunk, block, perlayer, keyrerotation,
composed, prefilldecoding, compressionratiodecoding, finch, simlayerkv, lukv, entropygatedchunkkv, dms): re-rotated
keys are matched by their value rows, LU-KV's and DMS's masks read like AdaKV's, the decode-time ones followed through
24 greedy steps like DecodingPress; where a press has no compression_ratio the ratio sets its budget knob
(WRAPPER_NOTES).

`--presses think` runs ThinKPress (key channels, not entries): alone (`think`, kvlab's `kvpress:think`, which is
`full+think`) and after a token press as kvpress's ComposedPress runs it (`think/press=snapkv/press_window_size=16`:
kvlab's `kvpress:snapkv,window_size=16,ratio=R+think:lambda=R,observation=W`), the ratio being both presses' ratio. kvpress's kept channels
are those its compressed keys do not zero, its kept entries matched by their value rows; kvlab's come from
`--kept-out`'s `channels`. A channel set differing only among channels whose kvpress scores tie is a tie, and so is
one of a head whose kept entries tie (its channels were chosen over other keys).

Exits non-zero when any case is DIFF. Run it in the venv scripts/kvpress-venv creates (kvpress 0.5.5 needs
transformers < 5.3): `.cache/kvpress-venv/bin/python scripts/kvpress_check.py`.
"""

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file
from transformers import (DynamicCache, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Phi3Config, Phi3ForCausalLM

import kvpress

# PerLayerCompressionPress warns at every construction that it wants flash attention (it needs it only for decoding).
logging.getLogger("kvpress").setLevel(logging.ERROR)

PROMPT_TOKENS = 200
# The wrapper presses' default cases (scripts/kvpress_check.py --presses takes any others).
WRAPPER_CASES = ("chunk/chunk_length=64,chunk/scorer=keydiff/chunk_length=48,block/block_size=32,block/scorer=keydiff/block_size=50,"
                 "perlayer/window_size=16,perlayer/scorer=keydiff,keyrerotation/window_size=16,keyrerotation/scorer=knorm,"
                 "composed/window_size=16/then=knorm,composed/scorer=tova/then=keydiff,"
                 "prefilldecoding/window_size=16/compression_interval=8,compressionratiodecoding/compression_interval=8,"
                 "compressionratiodecoding/scorer=keydiff/compression_interval=10,finch/window_size=16,"
                 "finch/window_size=16/rerotate_keys=False/normalize_scores=False,finch/window_size=12/chunk_length=100,"
                 "simlayerkv/n_recent=32,simlayerkv/n_recent=48/n_last=4/n_initial=2,lukv/window_size=16,lukv/scorer=knorm,"
                 "entropygatedchunkkv,entropygatedchunkkv/scorer=keydiff/chunk_length=16/low_entropy_chunk_length=6,"
                 "dms/sliding_window_size=32,dms/scorer=keydiff/sliding_window_size=16,dms/sliding_window_size=16/decoding=True")
# DecodingPress: greedy steps after the prompt (kvlab chooses the tokens, kvpress is fed them).
DECODE_STEPS = 24


def byte_level_alphabet():
    """GPT-2's bytes_to_unicode: the printable character standing for each byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


# The prompt's tokens: a consonant (either case) and a vowel, 210 of them, so that 199 distinct ones make a
# prompt without repeats (a repeated token has a repeated first-layer key norm: a tie kvpress breaks arbitrarily).
SYLLABLES = [c + v for c in "bcdfghjklmnpqrstvwxzyBCDFGHJKLMNPQRSTVWXZY" for v in "aeiou"]
BOS, EOS = 256 + len(SYLLABLES), 257 + len(SYLLABLES)


def write_tokenizer(directory):
    """A byte-level BPE whose only merges make the syllables (ids 256...), <s> and </s> after them; kvlab adds
    <s> before every prompt (add_bos_token)."""
    alphabet = byte_level_alphabet()
    vocab = {alphabet[b]: b for b in range(256)}
    for i, syllable in enumerate(SYLLABLES):
        vocab[syllable] = 256 + i
    special = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
                "special": True} for i, c in ((BOS, "<s>"), (EOS, "</s>"))]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{s[0]} {s[1]}" for s in SYLLABLES]},
    }
    with open(os.path.join(directory, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        # The class named, or transformers picks the family's own (Llama's wants an `<unk>` token this vocabulary lacks).
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f)


def prompt():
    """The prompt's text and token ids (BOS first, 200 in all): 199 distinct syllables in a fixed random order,
    one word (no merge joins a vowel to a consonant, so the syllables are exactly the tokens)."""
    syllables = random.Random(21).sample(range(len(SYLLABLES)), PROMPT_TOKENS - 1)
    return "".join(SYLLABLES[i] for i in syllables), [BOS] + [256 + i for i in syllables]


def build_model(family, directory):
    """A tiny random-weight model of `family`, saved where kvlab loads it; weights wide enough that
    attention is far from uniform (scores then rarely tie within float rounding)."""
    torch.manual_seed(0)
    common = dict(vocab_size=EOS + 1, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
                  tie_word_embeddings=False, bos_token_id=BOS, eos_token_id=EOS, initializer_range=0.2)
    families = {"llama": (LlamaConfig, LlamaForCausalLM, {}),
                "mistral": (MistralConfig, MistralForCausalLM, {"sliding_window": None, "head_dim": 16}),
                "qwen2": (Qwen2Config, Qwen2ForCausalLM, {"use_sliding_window": False}),
                "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 16, "use_sliding_window": False})}
    # Gemma 3's local layers (every other one here) see the whole 200-token prompt inside their window.
    families["gemma3"] = (Gemma3TextConfig, Gemma3ForCausalLM, {"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 256,
                                                                 "layer_types": ["sliding_attention", "full_attention"] * 2})
    families["phi3"] = (Phi3Config, Phi3ForCausalLM, {"pad_token_id": EOS})
    if family not in families:
        raise SystemExit(f"kvpress_check.py: unknown model family '{family}' ({', '.join(families)})")
    config_class, model_class, extra = families[family]
    model = model_class(config_class(**common, **extra))
    model.config._attn_implementation = "eager"
    model.eval()
    os.makedirs(directory, exist_ok=True)
    model.config.save_pretrained(directory)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(directory, "model.safetensors"))
    write_tokenizer(directory)
    # KVzipPress loads the tokenizer from here (its repeat prompt is text).
    model.config.name_or_path = directory
    return model


PRESSES = {"snapkv": kvpress.SnapKVPress, "pyramidkv": kvpress.PyramidKVPress, "streamingllm": kvpress.StreamingLLMPress,
           "tova": kvpress.TOVAPress, "knorm": kvpress.KnormPress, "keydiff": kvpress.KeyDiffPress,
           "observedattention": kvpress.ObservedAttentionPress}
WRAPPERS = {"adakv": kvpress.AdaKVPress, "chunkkv": kvpress.ChunkKVPress, "decoding": kvpress.DecodingPress}
# The scorer presses of KVPressMethod+Scorers.swift, and the cases `--presses scorers` runs.
PRESSES.update({"expectedattention": kvpress.ExpectedAttentionPress, "lagkv": kvpress.LagKVPress,
                "leveragescore": kvpress.LeverageScorePress, "cur": kvpress.CURPress,
                "noncausalattn": kvpress.NonCausalAttnPress, "compactor": kvpress.CompactorPress})
SCORER_CASES = ("expectedattention,expectedattention/use_covariance=false/use_vnorm=false/n_sink=0,"
                "expectedattention/n_future_positions=64/epsilon=0.01,lagkv,lagkv/lag_size=32,lagkv/lag_size=40/cross_scoring=true,"
                "leveragescore,cur,cur/leverage_type=kv_avg/local_window_size=8,cur/use_local_approximation=false/leverage_type=key,"
                "noncausalattn,noncausalattn/chunk_size=64,compactor,compactor/chunk_size=48/blending=0.5,"
                "adakv/scorer=expectedattention,decoding/scorer=expectedattention/n_sink=0/compression_interval=8,"
                "criticalkv,criticalkv/use_vnorm=false/epsilon=0.001,criticalkv/scorer=cur,"
                "criticalkv/scorer=knorm/first_stage_ratio=0.25,criticaladakv,criticaladakv/scorer=knorm/alpha_safeguard=0.5,"
                "criticaladakv/scorer=lagkv/lag_size=32/cross_scoring=true/first_stage_ratio=0.25")
WRAPPERS["criticalkv"] = kvpress.CriticalKVPress
WRAPPERS["criticaladakv"] = kvpress.CriticalAdaKVPress
# KVzipPress: scores by a second pass that repeats the prompt; budgets across the whole model.
PRESSES["kvzip"] = kvpress.KVzipPress
# Presses that mask keys head-wise (kvpress's `masked_key_indices`): budgets per layer (KVzip: per model), not per head.
HEADWISE = (kvpress.AdaKVPress, kvpress.CriticalAdaKVPress, kvpress.KVzipPress)
# `--presses deterministic`: each deterministic scorer press with its defaults (window 16 for the window scorers, so
# that the 200-token prompt is scored beyond the window), and the presses that select by a scorer's scores with theirs.
DETERMINISTIC_CASES = ("snapkv/window_size=16,pyramidkv/window_size=16,streamingllm,tova,knorm,keydiff,observedattention,"
                       "expectedattention,lagkv/lag_size=32,leveragescore,cur,noncausalattn,compactor/chunk_size=48,"
                       "adakv/window_size=16,chunkkv/window_size=16,criticalkv,criticaladakv,criticalkv/scorer=cur,criticaladakv/scorer=cur,kvzip")


# `--presses think`: ThinKPress alone (its default window 32, and 16) and after SnapKV (window 16) and KeyDiff
# (ComposedPress), token presses whose kept entries do not tie on these models.
THINK_CASES = "think,think/window_size=16,think/press=snapkv/press_window_size=16,think/press=keydiff/window_size=16"


def make_think(ratio, options):
    """(kvpress press, kvlab method) of a `think` case: ThinKPress at `ratio`, after `press` at `ratio` if given
    (its own options prefixed `press_`)."""
    window = options.get("window_size", 32)
    think = kvpress.ThinKPress(key_channel_compression_ratio=ratio, window_size=window)
    if "press" not in options:
        return think, f"kvpress:think,key_channel_compression_ratio={ratio},window_size={window}"
    own = {k[len("press_"):]: v for k, v in options.items() if k.startswith("press_")}
    token = PRESSES[options["press"]](compression_ratio=ratio, **own)
    method = ",".join([f"kvpress:{options['press']}"] + [f"{k}={v}" for k, v in own.items()] + [f"ratio={ratio}"])
    return kvpress.ComposedPress([token, think]), f"{method}+think:lambda={ratio},observation={window}"


def capture_scores(press, scores):
    """Wraps `press.score` so each layer's scores (batch 0) land in scores[layer]."""
    original = press.score

    def capture(module, *args, **kwargs):
        s = original(module, *args, **kwargs)
        scores[module.layer_idx] = s[0].detach().clone()
        return s

    press.score = capture


def kvpress_think_kept(model, press, ids):
    """Per layer, per KV head: ((kept positions, the token press's scores or None), (kept key channels, kvpress's
    channel scores)). Entries are matched by their value rows (ThinK zeroes key channels, not values)."""
    think = press.presses[-1] if isinstance(press, kvpress.ComposedPress) else press
    token = press.presses[0] if isinstance(press, kvpress.ComposedPress) else None
    scores, channel_scores = {}, {}
    if token is not None:
        capture_scores(token, scores)
    original_compress = think.compress

    def compress(module, hidden_states, keys, values, attentions, kwargs):
        # ThinKPress.compress's channel scores (think_press.py), before it zeroes the lowest in place.
        queries = think.compute_window_queries(module, kwargs["hidden_states"], kwargs["position_embeddings"])
        bsz, heads, _, head_dim = keys.shape
        queries_norm = torch.pow(queries, 2).mean(dim=2).view(bsz, heads, -1, head_dim).mean(2)
        channel_scores[module.layer_idx] = (queries_norm * torch.pow(keys, 2).mean(dim=2))[0].detach().clone()
        return original_compress(module, hidden_states, keys, values, attentions, kwargs)

    think.compress = compress
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        full = DynamicCache(config=model.config)
        model(ids, past_key_values=full)
        cache = DynamicCache(config=model.config)
        with press(model):
            model(ids, past_key_values=cache)
    kept = []
    for layer in range(model.config.num_hidden_layers):
        heads = []
        for head in range(model.config.num_key_value_heads):
            reference = full.layers[layer].values[0, head]
            rows = {reference[p].numpy().tobytes(): p for p in range(reference.shape[0])}
            positions = sorted(rows[v.numpy().tobytes()] for v in cache.layers[layer].values[0, head])
            keys = cache.layers[layer].keys[0, head]
            channels = [c for c in range(keys.shape[1]) if bool((keys[:, c] != 0).any())]
            heads.append(((positions, scores[layer][head].tolist() if layer in scores else None),
                          (channels, channel_scores[layer][head].tolist())))
        kept.append(heads)
    return kept


def compare_channels(theirs, ours, entries_differ):
    """'exact', 'tie' or 'DIFF n' over the kept key channels of every (layer, KV head), as `compare` for entries.
    A head whose kept entries differ (a tie of the token press) chose its channels over other keys: a tie."""
    verdict, differing = "exact", 0
    for layer, heads in enumerate(theirs):
        for head, (channels, score) in enumerate(heads):
            mine = ours[layer][head]
            if mine == channels:
                continue
            if (layer, head) in entries_differ:
                verdict = "tie" if verdict == "exact" else verdict
                continue
            only = set(mine) ^ set(channels)
            differing += len(only)
            if len(mine) == len(channels) and tied(score[c] for c in only):
                verdict = "tie" if verdict == "exact" else verdict
            else:
                verdict = "DIFF"
    return verdict if verdict != "DIFF" else f"DIFF {differing}"


def make_press(name, ratio, options):
    """kvpress's press for a kvlab `kvpress:<name>` method: kvpress's defaults, then `options` (kvpress names;
    `scorer` names the press AdaKV and ChunkKV wrap, SnapKV by default)."""
    if name in WRAPPERS:
        own = {"adakv": {"alpha_safeguard"}, "chunkkv": {"chunk_length"}, "decoding": {"compression_interval", "target_size"},
               "criticalkv": {"epsilon", "first_stage_ratio"},
               "criticaladakv": {"alpha_safeguard", "epsilon", "first_stage_ratio"}}[name]
        inner = {k: v for k, v in options.items() if k not in own and k != "scorer"}
        default = "knorm" if name == "decoding" else "expectedattention" if name.startswith("critical") else "snapkv"
        # DecodingPress sets its scorer's ratio at each compression.
        scorer = PRESSES[options.get("scorer", default)](compression_ratio=0.0 if name == "decoding" else ratio, **inner)
        return WRAPPERS[name](scorer, **{k: v for k, v in options.items() if k in own})
    if name not in PRESSES:
        raise SystemExit(f"kvpress_check.py: unknown press '{name}' ({', '.join(list(PRESSES) + list(WRAPPERS))})")
    return PRESSES[name](compression_ratio=ratio, **options)


# kvpress's wrapper, composition and budget presses: how each is built from a kvlab case and a ratio, and the
# kvlab method string that matches it. The ratio sets each one's budget knob (see WRAPPER_NOTES).
KEY_SCORERS = {"knorm": kvpress.KnormPress, "keydiff": kvpress.KeyDiffPress}
WRAPPER_NOTES = {
    "perlayer": "compression_ratios = ratio − 0.2, ratio, ratio + 0.2, ratio over the 4 layers",
    "composed": "the scorer at the ratio, then `then` at then_ratio",
    "prefilldecoding": "the prompt at the ratio, then target_size = that share of the prompt every compression_interval steps",
    "compressionratiodecoding": "target_compression_ratio = the ratio",
    "simlayerkv": "lazy_threshold = the ratio",
    "lukv": "a random budget curve (seed 0) whose row for the ratio prunes about the ratio",
    "dms": "threshold = the ratio-quantile of the scorer's scores of the prompt",
}
NEW_WRAPPERS = {"chunk", "block", "perlayer", "keyrerotation", "composed", "prefilldecoding", "compressionratiodecoding", "finch",
                "simlayerkv", "lukv", "entropygatedchunkkv", "dms"}


def scorer_press(options, ratio, default="snapkv", pool=PRESSES):
    """The wrapped ScorerPress at `ratio`, with its own options (those it takes)."""
    name = options.get("scorer", default)
    cls = pool[name]
    fields = set(cls.__dataclass_fields__)
    return cls(compression_ratio=ratio, **{k: v for k, v in options.items() if k in fields and k != "compression_ratio"})


def lukv_curve(work, layers, heads):
    """A budget curve [99, layers, heads]: row t prunes (t + 1)% on average, spread over the heads (seed 0)."""
    import numpy as np
    rng = np.random.default_rng(0)
    target = (np.arange(99) + 1) / 100.0
    spread = rng.uniform(-0.2, 0.2, size=(99, layers, heads))
    curve = np.clip(target[:, None, None] + spread * target[:, None, None], 0.0, 0.98).astype(np.float32)
    path = os.path.join(work, "lukv-curve.npy")
    np.save(path, curve)
    return path, curve


def make_wrapper(name, ratio, options, model, work, ids):
    """(kvpress press, kvlab method, how kvpress's kept set is read: 'rows', 'values', 'masked' or 'decoding')."""
    options = {k: v == "True" if v in ("True", "False") else v for k, v in options.items()}
    own = {k: v for k, v in options.items() if k != "scorer"}
    method = [f"kvpress:{name}"]

    def fields(cls):
        """The options `cls` itself takes."""
        return {k: v for k, v in own.items() if k in cls.__dataclass_fields__}

    if "scorer" in options:
        method.append(f"scorer={options['scorer']}")
    if name in ("chunk", "block", "entropygatedchunkkv"):
        cls = {"chunk": kvpress.ChunkPress, "block": kvpress.BlockPress, "entropygatedchunkkv": kvpress.EntropyGatedChunkKVPress}[name]
        press = cls(scorer_press(options, ratio, "knorm", KEY_SCORERS), **fields(cls))
        return press, method + [f"{k}={v}" for k, v in own.items()] + [f"ratio={ratio}"], "rows"
    if name == "perlayer":
        ratios = [round(min(0.95, max(0.0, ratio + d)), 6) for d in (-0.2, 0.0, 0.2, 0.0)][:model.config.num_hidden_layers]
        inner = {k: v for k, v in own.items()}
        press = kvpress.PerLayerCompressionPress(scorer_press(options, 0.0), compression_ratios=ratios)
        return press, method + [f"{k}={v}" for k, v in inner.items()] + ["compression_ratios=" + "/".join(map(str, ratios))], "rows"
    if name == "keyrerotation":
        press = kvpress.KeyRerotationPress(scorer_press(options, ratio))
        return press, method + [f"{k}={v}" for k, v in own.items()] + [f"ratio={ratio}"], "values"
    if name == "composed":
        then = options.get("then", "knorm")
        then_ratio = options.get("then_ratio", 0.5)
        first = {k: v for k, v in own.items() if k not in ("then", "then_ratio")}
        press = kvpress.ComposedPress([scorer_press(options, ratio), KEY_SCORERS[then](compression_ratio=then_ratio)])
        return press, method + [f"{k}={v}" for k, v in first.items()] + [f"ratio={ratio}", f"then={then}", f"then_ratio={then_ratio}"], "rows"
    if name == "prefilldecoding":
        interval = options.get("compression_interval", 8)
        target = int(len(ids) * (1 - ratio))
        decoding_scorer = options.get("decoding_scorer", "knorm")
        first = {k: v for k, v in own.items() if k not in ("compression_interval", "decoding_scorer")}
        press = kvpress.PrefillDecodingPress(
            prefilling_press=scorer_press(options, ratio),
            decoding_press=kvpress.DecodingPress(KEY_SCORERS[decoding_scorer](), compression_interval=interval, target_size=target))
        return press, method + [f"{k}={v}" for k, v in first.items()] + [
            f"ratio={ratio}", f"decoding_scorer={decoding_scorer}", f"compression_interval={interval}", f"target_size={target}"], "decoding"
    if name == "compressionratiodecoding":
        interval = options.get("compression_interval", 8)
        press = kvpress.CompressionRatioDecodingPress(scorer_press(options, 0.0, "knorm", KEY_SCORERS), compression_interval=interval,
                                                      target_compression_ratio=ratio)
        return press, method + [f"compression_interval={interval}", f"target_compression_ratio={ratio}"], "decoding"
    if name == "finch":
        window = options.get("window_size", 16)
        press = kvpress.FinchPress(compression_ratio=ratio, **{k: v for k, v in own.items() if k != "window_size"})
        press.delimiter_token_id = EOS
        press.kvlab_question = window
        method += [f"window_size={window}"] + [f"{k}={v}" for k, v in own.items() if k != "window_size"] + [f"ratio={ratio}"]
        return press, method, "values" if getattr(press, "rerotate_keys", True) else "rows"
    if name == "simlayerkv":
        press = kvpress.SimLayerKVPress(lazy_threshold=ratio, **own)
        return press, method + [f"{k}={v}" for k, v in own.items()] + [f"lazy_threshold={ratio}"], "rows"
    if name == "lukv":
        path, curve = lukv_curve(work, model.config.num_hidden_layers, model.config.num_key_value_heads)
        press = kvpress.LUKVPress(scorer_press(options, 0.0), compression_ratio=ratio, **fields(kvpress.LUKVPress))
        press._budget_curves = curve
        return press, method + [f"{k}={v}" for k, v in own.items()] + [f"curve={path}", f"ratio={ratio}"], "masked"
    if name == "dms":
        scorer = scorer_press(options, 0.0, "knorm", KEY_SCORERS)
        threshold = dms_threshold(model, scorer, ids, ratio)
        press = kvpress.DMSPress(scorer, threshold=threshold, **fields(kvpress.DMSPress))
        kind = "masked-decoding" if own.get("decoding") else "masked"
        return press, method + [f"threshold={threshold!r}"] + [f"{k}={str(v).lower()}" for k, v in own.items()], kind
    raise SystemExit(f"kvpress_check.py: unknown press '{name}'")


def dms_threshold(model, scorer, ids, ratio):
    """The `ratio`-quantile of the scorer's scores of the prompt's keys over every layer and head."""
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        model(torch.tensor([ids]), past_key_values=cache)
    scores = [scorer.score(attention, None, cache.layers[i].keys, cache.layers[i].values, None, {}).flatten()
              for i, attention in enumerate(layer.self_attn for layer in model.model.layers)]
    return float(torch.quantile(torch.cat(scores).double(), ratio))


def kvpress_wrapper_kept(model, press, ids, how, generated):
    """Per layer, per KV head: (sorted kept positions, None) after the prompt (and `generated`, fed as kvpress's
    pipeline feeds them, for the decode-time presses). 'rows' and 'values' match the compressed cache's key or
    value rows (re-rotated keys match by their values) against the uncompressed cache's; 'masked' reads the keys
    the press masks."""
    if how == "decoding":
        stages = [press.prefilling_press, press.decoding_press] if isinstance(press, kvpress.PrefillDecodingPress) else [press]
        return kvpress_decoding_kept(model, press, ids, generated, stages)
    model.config._attn_implementation = "sdpa"
    tokens = list(ids)
    if isinstance(press, kvpress.FinchPress):
        # The question (the last window_size tokens) follows the delimiter, which Finch drops from the embeddings.
        window = press.kvlab_question
        tokens = tokens[:len(ids) - window] + [EOS] + tokens[len(ids) - window:]
    attentions = [layer.self_attn for layer in model.model.layers]
    for attention in attentions:
        attention.masked_key_indices = None
    # The scorer's scores of the whole prompt, where the press scores it at once (to tell ties from differences).
    scores = {}
    scorer = press if isinstance(press, kvpress.FinchPress) else getattr(press, "press", None)
    if how in ("rows", "values", "masked") and not isinstance(press, (kvpress.ChunkPress, kvpress.BlockPress)) and hasattr(scorer, "score"):
        original = scorer.score

        def capture(module, *args, **kwargs):
            s = original(module, *args, **kwargs)
            if s.shape[-1] == len(ids):
                scores[module.layer_idx] = s[0].detach().clone()
            return s

        scorer.score = capture
    with torch.no_grad():
        full = DynamicCache(config=model.config)
        model(torch.tensor([ids]), past_key_values=full)
        cache = DynamicCache(config=model.config)
        with press(model):
            model(torch.tensor([tokens]), past_key_values=cache)
            for i, token in enumerate(generated if how == "masked-decoding" else []):
                model(input_ids=torch.tensor([[token]]), past_key_values=cache, position_ids=torch.tensor([[len(ids) + i]]))
    model.config._attn_implementation = "eager"
    kept = []
    for layer, attention in enumerate(attentions):
        heads = []
        for head in range(model.config.num_key_value_heads):
            if how.startswith("masked"):
                masked = set()
                if getattr(attention, "masked_key_indices", None) is not None:
                    _, h, p = attention.masked_key_indices
                    masked = {int(q) for hh, q in zip(h.tolist(), p.tolist()) if hh == head}
                total = cache.layers[layer].keys.shape[2]
                positions = [q for q in range(total) if q not in masked]
            else:
                which = "values" if how == "values" else "keys"
                reference = getattr(full.layers[layer], which)[0, head]
                rows = {reference[q].numpy().tobytes(): q for q in range(reference.shape[0])}
                positions = sorted(rows[r.numpy().tobytes()] for r in getattr(cache.layers[layer], which)[0, head])
            heads.append((positions, scores[layer][head].tolist() if layer in scores else None))
        kept.append(heads)
    for attention in attentions:
        attention.masked_key_indices = None
    return kept


def parse_case(text):
    """`snapkv` or `snapkv/window_size=16/kernel_size=7`: a press and its options."""
    name, *items = text.split("/")
    options = {}
    for item in items:
        key, value = item.split("=", 1)
        options[key] = value if not value.replace(".", "").isdigit() else float(value) if "." in value else int(value)
        if value in ("true", "false"):
            options[key] = value == "true"
    return name, options


def kvpress_kept(model, press, ids):
    """Per layer, per KV head: (sorted kept positions, kvpress's score per position or None)."""
    scorer = press.press if isinstance(press, tuple(WRAPPERS.values())) else press
    scores = {}
    if hasattr(scorer, "score"):
        capture_scores(scorer, scores)
    if isinstance(press, kvpress.KVzipPress):
        # Its scores of every layer, before it pads the sinks and masks the lowest.
        original_post = press.compress_post

        def capture_post(model):
            for layer in range(press.score_val.shape[0]):
                scores[layer] = press.score_val[layer, 0].detach().clone()
            return original_post(model)

        press.compress_post = capture_post
    # AdaKV, CriticalAdaKV and KVzip mask keys instead of dropping them; they and ChunkKV assert a non-eager attention.
    headwise = isinstance(press, HEADWISE)
    model.config._attn_implementation = "sdpa" if isinstance(press, tuple(WRAPPERS.values()) + (kvpress.KVzipPress,)) else "eager"
    with torch.no_grad():
        full = DynamicCache(config=model.config)
        model(ids, past_key_values=full)
        cache = DynamicCache(config=model.config)
        with press(model):
            model(ids, past_key_values=cache)
    model.config._attn_implementation = "eager"
    kept = []
    for layer, attention in enumerate(layer.self_attn for layer in model.model.layers):
        full_keys = full.layers[layer].keys[0]
        heads = []
        for head in range(full_keys.shape[0]):
            if headwise:
                masked = set()
                if getattr(attention, "masked_key_indices", None) is not None:
                    _, h, s = attention.masked_key_indices
                    masked = {int(p) for hh, p in zip(h.tolist(), s.tolist()) if hh == head}
                positions = [p for p in range(full_keys.shape[1]) if p not in masked]
            else:
                rows = {full_keys[head, p].numpy().tobytes(): p for p in range(full_keys.shape[1])}
                positions = sorted(rows[k.numpy().tobytes()] for k in cache.layers[layer].keys[0, head])
            score = scores[layer][head].tolist() if layer in scores else None
            heads.append((positions, score))
        kept.append(heads)
    if isinstance(press, kvpress.KVzipPress):
        # KVzip leaves its masks on the modules; the next press must not see them.
        for layer in model.model.layers:
            layer.self_attn.masked_key_indices = None
    return kept


def kvpress_decoding_kept(model, press, ids, generated, stages=None):
    """DecodingPress: the prompt, then `generated` one token at a time as kvpress's pipeline feeds them
    (position ids given, the cache compressed every compression_interval steps). Positions are tracked
    through each compression (of `press`, or of each of `stages`) by matching the kept key rows against the
    cache's rows before it."""
    tracked = [[list(range(len(ids))) for _ in range(model.config.num_key_value_heads)]
               for _ in range(model.config.num_hidden_layers)]

    def tracking(original):
        def compress(module, hidden_states, keys, values, attentions, kwargs):
            kept_keys, kept_values = original(module, hidden_states, keys, values, attentions, kwargs)
            layer = module.layer_idx
            for head in range(keys.shape[1]):
                rows = {keys[0, head, p].numpy().tobytes(): p for p in range(keys.shape[2])}
                tracked[layer][head] = [tracked[layer][head][rows[k.numpy().tobytes()]] for k in kept_keys[0, head]]
            return kept_keys, kept_values
        return compress

    for stage in stages or [press]:
        stage.compress = tracking(stage.compress)
    model.config._attn_implementation = "eager"
    with torch.no_grad(), press(model):
        cache = DynamicCache(config=model.config)
        model(torch.tensor([ids]), past_key_values=cache)
        for i, token in enumerate(generated):
            for layer in tracked:
                for head in layer:
                    head.append(len(ids) + i)
            model(input_ids=torch.tensor([[token]]), past_key_values=cache, position_ids=torch.tensor([[len(ids) + i]]))
    return [[(sorted(head), None) for head in layer] for layer in tracked]


def kvpress_run(function, *args):
    """kvpress's kept positions, or 'kvpress fails: ...' when kvpress raises on this model."""
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - any failure of the oracle is reported as such
        return f"kvpress fails: {type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"


def kvlab_kept(kvlab, model_dir, text, method, ids, work, tokens=0, document=False):
    """kvlab's kept positions (`document`: the whole `--kept-out` document) after the prompt and `tokens` greedy
    steps, and the tokens it generated."""
    out = os.path.join(work, "kept.json")
    if os.path.exists(out):
        os.remove(out)
    run = subprocess.run([kvlab, "run", "--model", model_dir, "--prompt", text, "-n", str(tokens), "--temperature", "0",
                          "--policy", method, "--kept-out", out, "--json"], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"kvpress_check.py: kvlab run --policy {method} failed: {run.stderr.strip()}")
    generated = []
    for line in run.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "prompt" and event["tokens"] != ids:
            raise SystemExit(f"kvpress_check.py: kvlab tokenized the prompt as {event['tokens'][:8]}..., transformers got {ids[:8]}...")
        if event.get("event") == "token":
            generated.append(event["token"])
    with open(out) as f:
        kept = json.load(f)
        return kept if document else kept["positions"], generated


def tied(values):
    """Whether the scores are equal within float rounding (kvlab and torch round differently)."""
    values = list(values)
    scale = max((abs(v) for v in values), default=0.0)
    return not values or max(values) - min(values) <= 1e-5 * max(scale, 1e-30)


def chunk_scores(heads, length):
    """ChunkKV's chunk scores of a layer from the scorer's: summed over heads, averaged per chunk."""
    n = len(heads[0][1])
    total = [sum(score[i] for _, score in heads) for i in range(n)]
    return [sum(total[c:c + length]) / len(total[c:c + length]) for c in range(0, n, length)]


def compare(theirs, ours, across_heads, chunk_length=None):
    """'exact', 'tie' or 'DIFF n' over every (layer, KV head). A difference is a tie when both sides keep
    as many entries (per head, or per layer for head-wise budgets) and every entry only one side keeps
    has the same kvpress score: torch's top-k picks among equal scores arbitrarily, so either set is one of
    kvpress's possible results."""
    verdict, differing = "exact", 0
    for layer, heads in enumerate(theirs):
        # Groups of entries kept by one side only, each of which must tie: per head, or per layer.
        groups, same_counts = [], True
        for head, (positions, score) in enumerate(heads):
            mine = ours[layer][head]
            if mine == positions:
                continue
            only = set(mine) ^ set(positions)
            differing += len(only)
            same_counts &= across_heads or len(mine) == len(positions)
            if chunk_length:
                chunks = chunk_scores(heads, chunk_length)
                scores = [chunks[p // chunk_length] for p in only]
            else:
                scores = [score[p] for p in only] if score is not None else [float("nan")]
            if across_heads and groups:
                groups[0] += scores
            else:
                groups.append(scores)
        if across_heads:
            same_counts = sum(len(p) for p, _ in heads) == sum(len(p) for p in ours[layer])
        if not groups:
            continue
        if same_counts and all(tied(g) for g in groups):
            verdict = "tie" if verdict == "exact" else verdict
        else:
            verdict = "DIFF"
    return verdict if verdict != "DIFF" else f"DIFF {differing}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kvlab", default=".build/debug/kvlab")
    parser.add_argument("--work", default=None, help="where the models are saved (a temporary directory by default)")
    parser.add_argument("--models", default="llama")
    parser.add_argument("--presses", default="snapkv,snapkv/window_size=16/kernel_size=7,pyramidkv,pyramidkv/window_size=16,"
                        "streamingllm,tova,knorm,keydiff,observedattention,adakv,adakv/window_size=16/alpha_safeguard=0.5,"
                        "adakv/scorer=knorm,chunkkv,chunkkv/scorer=keydiff/chunk_length=16,"
                        "decoding/scorer=knorm/compression_interval=8,decoding/scorer=keydiff/compression_interval=10",
                        help="presses, each with kvpress options after '/' (snapkv/window_size=16); 'wrappers': the wrapper "
                        "presses' cases; 'scorers': the scorer presses' cases; 'deterministic': every deterministic scorer press; "
                        "'think': ThinKPress's cases (kept key channels)")
    parser.add_argument("--ratios", default="0.25,0.5,0.75")
    parser.add_argument("--seed", type=int, default=0, help="torch's seed before each kvpress run (LeverageScore's random sketch)")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if not os.access(args.kvlab, os.X_OK):
        raise SystemExit(f"kvpress_check.py: --kvlab {args.kvlab}: not an executable (build kvlab first)")
    work = args.work or tempfile.mkdtemp(prefix="kvpress-check-")
    text, ids = prompt()
    assert len(ids) == PROMPT_TOKENS
    results, failed = [], False
    print(f"{'press':<42}{'ratio':>6}  {'model':<8} result")
    for family in args.models.split(","):
        model_dir = os.path.join(work, family)
        model = build_model(family, model_dir)
        input_ids = torch.tensor([ids])
        named = {"scorers": SCORER_CASES, "wrappers": WRAPPER_CASES, "deterministic": DETERMINISTIC_CASES, "think": THINK_CASES}
        for case in named.get(args.presses, args.presses).split(","):
            name, options = parse_case(case)
            for ratio in (float(r) for r in args.ratios.split(",")):
                if name == "think":
                    press, method = make_think(ratio, options)
                    theirs = kvpress_run(kvpress_think_kept, model, press, input_ids)
                    if isinstance(theirs, str):
                        print(f"{case:<42}{ratio:>6}  {family:<8} {theirs}", flush=True)
                        results.append({"press": case, "ratio": ratio, "model": family, "result": theirs, "kept": None})
                        continue
                    ours, _ = kvlab_kept(args.kvlab, model_dir, text, method, ids, work, document=True)
                    entries = compare([[p for p, _ in heads] for heads in theirs], ours["positions"], across_heads=False)
                    channels = ours.get("channels")
                    entries_differ = {(layer, head) for layer, heads in enumerate(theirs)
                                      for head, ((positions, _), _) in enumerate(heads) if positions != ours["positions"][layer][head]}
                    verdicts = [entries, compare_channels([[c for _, c in heads] for heads in theirs], channels, entries_differ)
                                if channels else "DIFF (kvlab pruned no channel)"]
                    verdict = next((v for v in verdicts if v.startswith("DIFF")), "tie" if "tie" in verdicts else "exact")
                    failed |= verdict.startswith("DIFF")
                    kept = sum(len(c) for heads in theirs for _, (c, _) in heads)
                    print(f"{case:<42}{ratio:>6}  {family:<8} {verdict} (entries {entries}, channels {verdicts[1]}: {kept} kept)", flush=True)
                    results.append({"press": case, "ratio": ratio, "model": family, "result": verdict, "kept": kept})
                    continue
                press = make_press(name, ratio, options) if name not in NEW_WRAPPERS else None
                if name in NEW_WRAPPERS:
                    press, method, how = make_wrapper(name, ratio, options, model, work, ids)
                    steps = DECODE_STEPS if how in ("decoding", "masked-decoding") else 0
                    ours, generated = kvlab_kept(args.kvlab, model_dir, text, ",".join(method), ids, work, tokens=steps)
                    theirs = kvpress_wrapper_kept(model, press, ids, how, generated)
                elif name == "decoding":
                    # The budget is target_size; `ratio` then sets it to that share of the prompt.
                    target = int(len(ids) * (1 - ratio))
                    press.target_size = target
                    method = ",".join([f"kvpress:{name}"] + [f"{k}={v}" for k, v in options.items()] + [f"target_size={target}"])
                    ours, generated = kvlab_kept(args.kvlab, model_dir, text, method, ids, work, tokens=DECODE_STEPS)
                    theirs = kvpress_run(kvpress_decoding_kept, model, press, ids, generated)
                else:
                    method = ",".join([f"kvpress:{name}"] + [f"{k}={v}" for k, v in options.items()] + [f"ratio={ratio}"])
                    torch.manual_seed(args.seed)
                    theirs = kvpress_run(kvpress_kept, model, press, input_ids)
                    ours, _ = kvlab_kept(args.kvlab, model_dir, text, method, ids, work)
                if isinstance(theirs, str):
                    # kvpress itself fails on this model (no oracle): reported, not a kvlab difference.
                    print(f"{case:<42}{ratio:>6}  {family:<8} {theirs}", flush=True)
                    results.append({"press": case, "ratio": ratio, "model": family, "result": theirs, "kept": None})
                    continue
                chunk_length = options.get("chunk_length", 20) if name == "chunkkv" else None
                verdict = compare(theirs, ours, across_heads=name in ("adakv", "criticaladakv", "kvzip"), chunk_length=chunk_length)
                failed |= report_row(results, {"press": case, "ratio": ratio, "model": family}, verdict, theirs, (42, 6))
    finish(results, failed, args.json)


def report_row(results, row, verdict, theirs, widths):
    """Prints and keeps one comparison (the row's first two values, the model, the verdict, the entries kept);
    whether it differs."""
    kept = sum(len(p) for heads in theirs for p, _ in heads)
    case, budget, family = row.values()
    print(f"{case:<{widths[0]}}{budget:>{widths[1]}}  {family:<8} {verdict} ({kept} entries kept)", flush=True)
    results.append({**row, "result": verdict, "kept": kept})
    return verdict.startswith("DIFF")


def finish(results, failed, json_path):
    """Writes the results as JSON where asked, and exits non-zero if a comparison differed."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
