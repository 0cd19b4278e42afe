#!/usr/bin/env python3
"""Oracles for the model families kvlab runs, from transformers itself (and llama.cpp when built).

  hf_families.py OUT_DIR [--llama-cpp DIR]
      Builds a tiny random-weight model of every supported family with transformers (weights
      scaled so logits are peaky; Qwen2's real byte-level BPE tokenizer, rebuilt as tokenizer.json
      from llama.cpp's models/ggml-vocab-qwen2.gguf), saves each as OUT_DIR/NAME/ (config.json,
      model.safetensors, tokenizer.json) with OUT_DIR/NAME/oracle.json: the token ids, logits at
      fixed vocabulary ids for every position, each position's argmax and log-sum-exp, the mean
      NLL, and a greedy continuation. With --llama-cpp (a built llama.cpp source tree), each model
      that llama.cpp can represent is also converted by its convert_hf_to_gguf.py to
      OUT_DIR/NAME.gguf (f32, so that llama.cpp computes in f32 too; f32 KV cache, no flash
      attention), and llama-completion's greedy
      continuation of a text prompt is recorded, with the smallest top-2 logit margin transformers
      sees along that continuation.
  hf_families.py --config-attributes
      Prints, per family, the attributes of its transformers config class (JSON), for the test
      that each one is implemented, irrelevant or refused by kvlab.

Mistral's sliding window is checked against transformers only: llama.cpp's converter writes
Mistral as a plain llama model and drops the window. Gemma 2 gets a Gemma-style SentencePiece
tokenizer (tokenizer.model, which llama.cpp's converter needs, trained by spm_tokenizer_check.py).
"""

import copy
import json
import math
import os
import subprocess
import sys

CONFIG_CLASSES = {"llama": "LlamaConfig", "mistral": "MistralConfig", "qwen2": "Qwen2Config", "qwen3": "Qwen3Config",
                  "phi3": "Phi3Config", "gemma2": "Gemma2Config", "gemma3": "Gemma3TextConfig"}

SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=True)

# Phi-3's LongRoPE divisors, one per frequency of a 16-channel head (Phi-3.5's run 1 to ~3 and 1 to ~60).
SHORT_FACTORS = [1.0, 1.02, 1.05, 1.1, 1.25, 1.5, 2.0, 2.5]
LONG_FACTORS = [1.0, 1.3, 2.0, 3.5, 6.0, 12.0, 24.0, 48.0]

# name: (model_type, extra config, converted by llama.cpp?)
MODELS = {
    "llama": ("llama", {}, True),
    "llama-linear": ("llama", {"rope_scaling": {"type": "linear", "factor": 4.0}, "rope_theta": 10000.0}, True),
    "llama3": ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                             "original_max_position_embeddings": 64}}, True),
    "llama-yarn": ("llama", {"rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                 "original_max_position_embeddings": 64}}, True),
    "qwen2": ("qwen2", {"rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}, True),
    "qwen3": ("qwen3", {"head_dim": 32, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}, True),
    "mistral-swa": ("mistral", {"sliding_window": 48, "head_dim": 16}, False),
    # Phi-3 without its sliding window: llama.cpp runs Phi-3 without one.
    "phi3": ("phi3", {"sliding_window": None}, True),
    # LongRoPE (Phi-3.5-mini, Phi-3-mini-128k). An original context of 16 makes every pass here
    # (240 tokens; greedy from 24) long, so transformers takes the long factors throughout, as kvlab
    # and llama.cpp do for a context past the original; its config.json is rewritten in the older
    # spelling Phi-3.5's has (rope_scaling, top-level rope_theta).
    "phi3-longrope": ("phi3", {"sliding_window": None, "original_max_position_embeddings": 16,
                               "rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0,
                                                   "short_factor": SHORT_FACTORS, "long_factor": LONG_FACTORS}}, True),
    # The same with the context equal to the original: the short factors everywhere (attention factor 1).
    "phi3-longrope-short": ("phi3", {"sliding_window": None, "original_max_position_embeddings": 4096,
                                     "rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0,
                                                         "short_factor": SHORT_FACTORS, "long_factor": LONG_FACTORS}}, True),
    # llama.cpp scales q·k by 1/sqrt(head_dim) whatever query_pre_attn_scalar says: equal here.
    # Gemma's SentencePiece tokenizer (trained by spm_tokenizer_check.py), which llama.cpp's converter needs.
    "gemma2": ("gemma2", {"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 48,
                          "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
                          "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0}, True),
    # Six layers: llama.cpp's default pattern (five local, one global), which its converter relies on.
    # No padded vocabulary: the converter cuts the embedding to the tokenizer's size but not the token list.
    "gemma3": ("gemma3", {"vocab_size": 151646, "num_hidden_layers": 6, "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 48,
                          "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                              "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}, True),
}

SEQUENCE = 240      # tokens scored
PROMPT = 24         # greedy prompt (the first tokens of the sequence)
GREEDY = 16         # greedy tokens
SAMPLED_IDS = 64    # vocabulary ids whose logits are compared at every position
TEXT_PROMPT = "The quick brown fox jumps over the lazy dog while the cat sleeps"


def qwen2_tokenizer(llama_cpp: str, out_dir: str) -> None:
    """tokenizer.json (+ tokenizer_config.json) from llama.cpp's Qwen2 vocabulary file."""
    from gguf import GGUFReader
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import AddedToken

    reader = GGUFReader(os.path.join(llama_cpp, "models", "ggml-vocab-qwen2.gguf"))

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    vocab = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind == 1}
    special = [(i, t) for i, (t, kind) in enumerate(zip(tokens, types)) if kind == 3]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                                     byte_fallback=False, fuse_unk=False, ignore_merges=False))
    tokenizer.normalizer = normalizers.NFC()
    regex = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
             r"|\s+(?!\S)|\s+")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    for i, text in sorted(special):
        assert tokenizer.add_special_tokens([AddedToken(text, special=True, normalized=False)]) == 1
        assert tokenizer.token_to_id(text) == i, (text, i)
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|endoftext|>", "bos_token": None,
                   "pad_token": "<|endoftext|>", "add_bos_token": False, "model_max_length": 4096}, f)


# Models with Gemma's SentencePiece tokenizer instead of Qwen2's byte-level BPE one.
SENTENCEPIECE = {"gemma2"}


def build(name: str, out_dir: str, tokenizer_dir: str, vocab_size: int, seed: int) -> dict:
    import shutil
    import torch
    import transformers

    model_type, extra, _ = MODELS[name]
    config_class = getattr(transformers, CONFIG_CLASSES[model_type])
    config = config_class(**{"vocab_size": vocab_size, "bos_token_id": None, "eos_token_id": 151643, **SHAPE, **extra})
    vocab_size = config.vocab_size
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    gemma = model_type.startswith("gemma")
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("embed_tokens.weight"):
                p.normal_(0, 1.0)          # tied classifier: logits of std ~ sqrt(hidden) → peaky
            elif "norm" in pname:
                # Gemma's RMSNorm multiplies by 1 + w.
                p.copy_((0 if gemma else 1) + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.normal_(0, 0.5)
            else:
                p.normal_(0, 2.0 / math.sqrt(p.shape[-1]))
            # Stored as bf16 (half the fixture size); the oracle runs in f32 on exactly those values.
            p.copy_(p.to(torch.bfloat16).float())
    path = os.path.join(out_dir, name)
    # A copy: casting the model itself would round its RoPE inv_freq buffer to bf16 as well.
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(path)
    if name == "phi3-longrope":
        older_rope_spelling(path, config)
    for file in ["tokenizer.json", "tokenizer.model"]:
        if os.path.exists(os.path.join(tokenizer_dir, file)):
            shutil.copy(os.path.join(tokenizer_dir, file), os.path.join(path, file))
    with open(os.path.join(tokenizer_dir, "tokenizer_config.json")) as f:
        tokenizer_config = json.load(f)
    if model_type == "phi3":
        # llama.cpp's Phi-3 converter reads tokenizer.json (byte-level BPE) only for this class.
        tokenizer_config["tokenizer_class"] = "GPT2Tokenizer"
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f)

    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, min(151643, vocab_size), (SEQUENCE,), generator=g)
    sampled = torch.randint(0, vocab_size, (SAMPLED_IDS,), generator=g)
    with torch.no_grad():
        logits = model(tokens[None]).logits[0].double()
        lse = torch.logsumexp(logits, dim=-1)
        nll = (lse[:-1] - logits[:-1].gather(1, tokens[1:, None])[:, 0]).mean().item()
        top2 = logits.topk(2).values
        margins = (top2[:, 0] - top2[:, 1]).tolist()
        ids = tokens[:PROMPT].tolist()
        greedy_margin = math.inf
        for _ in range(GREEDY):
            last = model(torch.tensor([ids])).logits[0, -1]
            pair = last.topk(2).values
            greedy_margin = min(greedy_margin, float(pair[0] - pair[1]))
            ids.append(int(last.argmax()))
    oracle = {
        "family": model_type, "tokens": tokens.tolist(), "sampled_ids": sampled.tolist(),
        "logits": logits[:, sampled].tolist(), "argmax": logits.argmax(-1).tolist(), "logsumexp": lse.tolist(),
        "nll": nll, "greedy_prompt": PROMPT, "greedy": ids[PROMPT:],
        "margins": margins, "greedy_margin": greedy_margin,
    }
    return oracle


def older_rope_spelling(path: str, config) -> None:
    """Rewrites config.json's rope_parameters as rope_scaling + rope_theta (Phi-3.5-mini's layout),
    checking that transformers reads back the same RoPE."""
    import transformers

    file = os.path.join(path, "config.json")
    with open(file) as f:
        saved = json.load(f)
    rope = saved.pop("rope_parameters")
    saved["rope_theta"] = rope["rope_theta"]
    saved["rope_scaling"] = {"type": "longrope", "short_factor": rope["short_factor"], "long_factor": rope["long_factor"]}
    with open(file, "w") as f:
        json.dump(saved, f, indent=2)
    reread = transformers.AutoConfig.from_pretrained(path).rope_parameters
    for key in ["rope_type", "rope_theta", "short_factor", "long_factor", "original_max_position_embeddings"]:
        assert reread[key] == config.rope_parameters[key], (key, reread[key], config.rope_parameters[key])


def text_greedy_margin(out_dir: str, name: str) -> float:
    """The smallest top-2 logit margin along transformers' greedy continuation of TEXT_PROMPT."""
    import torch
    import transformers
    from tokenizers import Tokenizer

    path = os.path.join(out_dir, name)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = Tokenizer.from_file(os.path.join(path, "tokenizer.json")).encode(TEXT_PROMPT).ids
    margin = math.inf
    with torch.no_grad():
        for _ in range(GREEDY):
            last = model(torch.tensor([ids])).logits[0, -1]
            pair = last.topk(2).values
            margin = min(margin, float(pair[0] - pair[1]))
            ids.append(int(last.argmax()))
    return margin


def llama_cpp_greedy(llama_cpp: str, out_dir: str, name: str) -> dict:
    """Converts OUT_DIR/NAME with llama.cpp's converter and records llama-completion's greedy text."""
    gguf_path = os.path.join(out_dir, name + ".gguf")
    env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py"), NO_LOCAL_GGUF="")
    converted = subprocess.run([sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), os.path.join(out_dir, name),
                                "--outfile", gguf_path, "--outtype", "f32"], env=env, capture_output=True, text=True)
    if converted.returncode != 0:
        sys.exit(f"convert_hf_to_gguf.py failed on {name}:\n{converted.stderr[-3000:]}")
    run = subprocess.run([os.path.join(llama_cpp, "build", "bin", "llama-completion"), "-m", gguf_path,
                          "-p", TEXT_PROMPT, "-n", str(GREEDY), "--temp", "0", "--top-k", "1", "--ignore-eos",
                          "--no-display-prompt", "-no-cnv", "--simple-io", "--no-warmup", "-t", "2", "-c", "256",
                          # f32 keys and values, no flash attention (f16 inside): llama.cpp's attention in f32,
                          # which LongRoPE's scaled logits need to stay on transformers' (and kvlab's) path.
                          "-ctk", "f32", "-ctv", "f32", "-fa", "off"],
                         check=True, capture_output=True)
    return {"gguf": os.path.basename(gguf_path), "prompt": TEXT_PROMPT,
            "completion_hex": run.stdout.hex(), "greedy_margin": text_greedy_margin(out_dir, name)}


def main(argv: list[str]) -> None:
    if argv == ["--config-attributes"]:
        import transformers
        print(json.dumps({family: sorted(getattr(transformers, cls)().to_dict().keys())
                          for family, cls in CONFIG_CLASSES.items()}))
        return
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--llama-cpp"):
        sys.exit(__doc__)
    out_dir = argv[0]
    llama_cpp = argv[2] if len(argv) == 3 else None
    os.makedirs(out_dir, exist_ok=True)
    vocab_dir = os.path.join(out_dir, "tokenizer")
    os.makedirs(vocab_dir, exist_ok=True)
    vocab_source = llama_cpp or os.environ.get("KVLAB_LLAMA_CPP")
    if vocab_source is None:
        sys.exit("hf_families.py needs llama.cpp's source tree (--llama-cpp DIR) for ggml-vocab-qwen2.gguf")
    qwen2_tokenizer(vocab_source, vocab_dir)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import spm_tokenizer_check
    spm_dir = os.path.join(out_dir, "tokenizer-spm")
    spm_vocab = spm_tokenizer_check.train(spm_dir)
    for seed, name in enumerate(MODELS):
        spm = name in SENTENCEPIECE
        oracle = build(name, out_dir, spm_dir if spm else vocab_dir, vocab_size=spm_vocab if spm else 151936, seed=100 + seed)
        if llama_cpp and MODELS[name][2]:
            oracle["llama_cpp"] = llama_cpp_greedy(llama_cpp, out_dir, name)
        with open(os.path.join(out_dir, name, "oracle.json"), "w") as f:
            json.dump(oracle, f)
        print(name, "greedy margin", round(oracle["greedy_margin"], 4), "nll", round(oracle["nll"], 4),
              "llama.cpp prompt margin", round(oracle.get("llama_cpp", {}).get("greedy_margin", math.nan), 4), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
