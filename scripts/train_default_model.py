#!/usr/bin/env python3
"""Trains kvlab's embedded default model on Tiny Shakespeare and writes it as GGUF.

    python3 -m venv .venv-train && .venv-train/bin/pip install -r scripts/train-requirements.txt
    .venv-train/bin/python scripts/train_default_model.py \
        --corpus ../shared/corpus/tinyshakespeare.txt \
        --out Sources/KVLabRun/Resources/kvlab-shakespeare.gguf

Data split: the corpus is cut at the last newline before 90% of its characters; the text before
the cut trains both the tokenizer and the model, the rest is held out for validation only.

Tokenizer: SentencePiece BPE with byte fallback and identity normalization, trained on
paragraphs (the text cut after each blank line) so that newlines are ordinary characters that
merge (":\n"). A text is encoded whole with one space prepended, which is exactly what kvlab's
(and llama.cpp's) SentencePiece tokenizer does with a prompt.

Model: llama architecture (RMSNorm, interleaved RoPE as GGUF stores it, SwiGLU, tied
embeddings). Every sequence is BOS followed by 1,023 tokens from a random offset, so the first
position of every context is BOS, as in kvlab's streaming evaluation.

Evaluation (the figures kvlab's engine must reproduce): the held-out tokens are cut into
consecutive chunks of 1,023; each chunk is prefixed with BOS and scored with teacher forcing
(full causal attention = the full KV cache), using the weights rounded to f16 as shipped. The
mean NLL per predicted token, the first chunk's mean NLL, and the token count and a digest of
the held-out token ids are written into the GGUF metadata under `kvlab.`.

Deterministic for a seed and thread count (torch.use_deterministic_algorithms, one data RNG).
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn as nn
import torch.nn.functional as F
import gguf

BOS, EOS, UNK = 1, 2, 0


def encode(sp, text):
    return np.array(sp.encode(" " + text), dtype=np.int64)


def split_corpus(text, fraction):
    cut = text.rfind("\n", 0, int(len(text) * fraction)) + 1
    return text[:cut], text[cut:]


def train_tokenizer(train_text, vocab_size, workdir):
    paragraphs = re.split(r"(?<=\n\n)", train_text)
    prefix = os.path.join(workdir, "tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(paragraphs), model_prefix=prefix, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=False, split_digits=True,
        unk_id=UNK, bos_id=BOS, eos_id=EOS, pad_id=-1, num_threads=1,
        input_sentence_size=0, shuffle_input_sentence=False, max_sentence_length=1 << 16,
        minloglevel=2)
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def rope_tables(context, head_dim, theta):
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    angles = np.outer(np.arange(context, dtype=np.float64), inv)
    return (torch.tensor(np.cos(angles), dtype=torch.float32),
            torch.tensor(np.sin(angles), dtype=torch.float32))


def apply_rope(x, cos, sin):
    # x: (batch, heads, time, head_dim); pairs (2i, 2i+1) rotate together (GGUF/llama.cpp layout).
    even, odd = x[..., 0::2], x[..., 1::2]
    c, s = cos[: x.shape[2]], sin[: x.shape[2]]
    return torch.stack((even * c - odd * s, even * s + odd * c), dim=-1).flatten(-2)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = a.heads, a.kv_heads, a.dim // a.heads
        self.attn_norm = RMSNorm(a.dim, a.norm_eps)
        self.wq = nn.Linear(a.dim, a.dim, bias=False)
        self.wk = nn.Linear(a.dim, a.kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(a.dim, a.kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(a.dim, a.dim, bias=False)
        self.ffn_norm = RMSNorm(a.dim, a.norm_eps)
        self.w_gate = nn.Linear(a.dim, a.hidden, bias=False)
        self.w_up = nn.Linear(a.dim, a.hidden, bias=False)
        self.w_down = nn.Linear(a.hidden, a.dim, bias=False)
        self.dropout = a.dropout

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.wk(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = self.wo(y.transpose(1, 2).reshape(b, t, -1))
        x = x + F.dropout(y, self.dropout, self.training)
        h = self.ffn_norm(x)
        y = self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))
        return x + F.dropout(y, self.dropout, self.training)


class Llama(nn.Module):
    def __init__(self, a, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, a.dim)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim, a.norm_eps)
        cos, sin = rope_tables(a.context, a.dim // a.heads, a.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # GPT-2 style: residual projections scaled down with depth.
                std = 0.02 / math.sqrt(2 * a.layers) if name.endswith(("wo.weight", "w_down.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.norm(x) @ self.embedding.weight.T


def batches(ids, context, batch_size, rng):
    starts = rng.integers(0, len(ids) - context, size=batch_size)
    rows = np.stack([ids[s: s + context] for s in starts])
    inputs = np.concatenate([np.full((batch_size, 1), BOS, dtype=np.int64), rows[:, :-1]], axis=1)
    return torch.from_numpy(inputs), torch.from_numpy(rows.astype(np.int64))


def evaluation_chunks(ids, context):
    """BOS + `context - 1` held-out tokens per chunk; inputs and next-token targets."""
    span = context - 1
    for start in range(0, len(ids) - 1, span):
        piece = ids[start: start + span]
        if len(piece) < 2:
            break
        tokens = np.concatenate([[BOS], piece]).astype(np.int64)
        yield torch.from_numpy(tokens[:-1])[None], torch.from_numpy(tokens[1:])[None]


@torch.no_grad()
def chunk_nlls(model, ids, context, limit=None):
    model.eval()
    sums, counts = [], []
    for i, (x, y) in enumerate(evaluation_chunks(ids, context)):
        if limit is not None and i >= limit:
            break
        losses = F.cross_entropy(model(x)[0], y[0], reduction="none")
        sums.append(losses.double().sum().item())
        counts.append(losses.numel())
    model.train()
    return sums, counts


def unigram_nll(train_ids, eval_ids, vocab_size, context):
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    targets = np.concatenate([y[0].numpy() for _, y in evaluation_chunks(eval_ids, context)])
    return float(-log_probs[targets].mean())


def ids_digest(ids):
    return hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest()


def write_gguf(path, model, sp, a, facts):
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(a.name)
    writer.add_context_length(a.context)
    writer.add_embedding_length(a.dim)
    writer.add_block_count(a.layers)
    writer.add_feed_forward_length(a.hidden)
    writer.add_head_count(a.heads)
    writer.add_head_count_kv(a.kv_heads)
    writer.add_layer_norm_rms_eps(a.norm_eps)
    writer.add_rope_freq_base(a.rope_theta)
    writer.add_rope_dimension_count(a.dim // a.heads)
    writer.add_vocab_size(sp.get_piece_size())
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_unk_token_id(UNK)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    for key, value in facts.items():
        if isinstance(value, str):
            writer.add_string("kvlab." + key, value)
        elif isinstance(value, int):
            writer.add_uint64("kvlab." + key, value)
        else:
            writer.add_float32("kvlab." + key, float(value))

    def half(t):
        return t.detach().to(torch.float16).numpy()

    def single(t):
        return t.detach().to(torch.float32).numpy()

    writer.add_tensor("token_embd.weight", half(model.embedding.weight))
    writer.add_tensor("output_norm.weight", single(model.norm.weight))
    for i, b in enumerate(model.blocks):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", single(b.attn_norm.weight))
        writer.add_tensor(p + "attn_q.weight", half(b.wq.weight))
        writer.add_tensor(p + "attn_k.weight", half(b.wk.weight))
        writer.add_tensor(p + "attn_v.weight", half(b.wv.weight))
        writer.add_tensor(p + "attn_output.weight", half(b.wo.weight))
        writer.add_tensor(p + "ffn_norm.weight", single(b.ffn_norm.weight))
        writer.add_tensor(p + "ffn_gate.weight", half(b.w_gate.weight))
        writer.add_tensor(p + "ffn_up.weight", half(b.w_up.weight))
        writer.add_tensor(p + "ffn_down.weight", half(b.w_down.weight))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def learning_rate(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    progress = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * progress))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True, help="GGUF file to write")
    p.add_argument("--card", help="also write the training log as JSON here")
    p.add_argument("--name", default="kvlab-shakespeare")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-fraction", type=float, default=0.9)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--kv-heads", type=int, default=6)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-chunks", type=int, default=8)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(a.seed)
    started = time.time()

    with open(a.corpus, encoding="utf-8") as f:
        text = f.read()
    train_text, val_text = split_corpus(text, a.train_fraction)
    with tempfile.TemporaryDirectory() as workdir:
        sp = train_tokenizer(train_text, a.vocab, workdir)
    train_ids, val_ids = encode(sp, train_text), encode(sp, val_text)
    print(f"corpus {len(text)} chars: train {len(train_text)} chars = {len(train_ids)} tokens, "
          f"held out {len(val_text)} chars = {len(val_ids)} tokens ({len(val_text) / len(val_ids):.2f} chars/token)",
          flush=True)

    model = Llama(a, sp.get_piece_size())
    parameters = sum(t.numel() for t in model.parameters())
    print(f"model: {parameters} parameters, dim {a.dim}, {a.layers} layers, {a.heads} heads "
          f"({a.kv_heads} KV), hidden {a.hidden}, context {a.context}", flush=True)
    decay = [t for t in model.parameters() if t.dim() == 2]
    no_decay = [t for t in model.parameters() if t.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.95))

    curve = []
    best = (math.inf, None, -1)
    running, running_count = 0.0, 0
    for step in range(a.steps + 1):
        if step % a.eval_every == 0 or step == a.steps:
            sums, counts = chunk_nlls(model, val_ids, a.context, limit=a.eval_chunks)
            val = sum(sums) / sum(counts)
            train_loss = running / running_count if running_count else float("nan")
            elapsed = time.time() - started
            curve.append({"step": step, "train": train_loss, "val": val, "seconds": round(elapsed)})
            print(f"step {step:5d}  train {train_loss:.4f}  val {val:.4f}  lr {learning_rate(step, a):.2e}  "
                  f"{elapsed / 60:.1f} min", flush=True)
            running, running_count = 0.0, 0
            if val < best[0]:
                best = (val, {k: v.clone() for k, v in model.state_dict().items()}, step)
        if step == a.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, a)
        x, y = batches(train_ids, a.context, a.batch, rng)
        loss = F.cross_entropy(model(x).view(-1, sp.get_piece_size()), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running += loss.item()
        running_count += 1

    model.load_state_dict(best[1])
    with torch.no_grad():
        for t in model.parameters():
            if t.dim() == 2:
                t.copy_(t.to(torch.float16).to(torch.float32))
    val_sums, val_counts = chunk_nlls(model, val_ids, a.context)
    train_sums, train_counts = chunk_nlls(model, train_ids, a.context, limit=len(val_sums))
    facts = {
        "training.command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "training.seed": a.seed,
        "training.threads": a.threads,
        "training.steps": a.steps,
        "training.best_step": best[2],
        "training.seconds": int(time.time() - started),
        "training.torch": torch.__version__,
        "eval.context": a.context,
        "eval.train_mean_nll": sum(train_sums) / sum(train_counts),
        "eval.val_mean_nll": sum(val_sums) / sum(val_counts),
        "eval.val_first_chunk_mean_nll": val_sums[0] / val_counts[0],
        "eval.val_unigram_nll": unigram_nll(train_ids, val_ids, sp.get_piece_size(), a.context),
        "eval.val_tokens": len(val_ids),
        "eval.val_ids_sha256": ids_digest(val_ids),
        "eval.train_tokens": len(train_ids),
    }
    write_gguf(a.out, model, sp, a, facts)
    report = {"parameters": parameters, "arguments": vars(a), "curve": curve, **facts}
    print(json.dumps({k: v for k, v in report.items() if k != "curve"}, indent=1), flush=True)
    if a.card:
        with open(a.card, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
