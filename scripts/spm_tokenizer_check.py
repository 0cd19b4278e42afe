#!/usr/bin/env python3
"""Reference tokenizations of a Gemma-style SentencePiece tokenizer for TokenizerOracleTests.

  spm_tokenizer_check.py OUT TEXTS.json [LLAMA_CPP]

Trains a small SentencePiece BPE model with Gemma's settings (byte fallback, no dummy prefix,
whitespace kept as is, digits split, ids pad 0 / eos 1 / bos 2 / unk 3 / mask 4, chat tokens as
user-defined symbols) on a fixed corpus, saves it as OUT/tokenizer.model, lets transformers convert
it (GemmaTokenizer) into OUT/tokenizer.json + tokenizer_config.json, and, given a llama.cpp source
tree, converts the folder's vocabulary with llama.cpp's convert_hf_to_gguf.py (--vocab-only, as
Gemma 2) into OUT/vocab.gguf. Prints {"sentencepiece": [[ids] per text], "tokenizers": [...]}:
SentencePiece itself and Hugging Face `tokenizers` on the converted file, no special tokens added.

Pinned versions: sentencepiece==0.2.3 protobuf==7.36.2 transformers==5.25.0 tokenizers==0.23.3
"""

import json
import os
import subprocess
import sys

import sentencepiece
import transformers
from tokenizers import Tokenizer


def corpus() -> str:
    words = ("the quick brown fox jumps over the lazy dog while a cat sleeps in the warm sun "
             "Köln Grüße Straße мир привет 東京 日本語 def return print if else for").split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 9)) for i in range(600)]
    lines += ["def f(x):\n    return x**2", "\tif a != b:\n\t\tpass", "12345 + 678 = 13023"] * 30
    return "\n".join(lines)


def train(out: str) -> int:
    """Trains the model into OUT/tokenizer.model and has transformers convert it (tokenizer.json,
    tokenizer_config.json); returns the vocabulary size."""
    os.makedirs(out, exist_ok=True)
    corpus_path = os.path.join(out, "corpus.txt")
    with open(corpus_path, "w", encoding="utf-8") as f:
        f.write(corpus())
    sentencepiece.SentencePieceTrainer.train(
        input=corpus_path, model_prefix=os.path.join(out, "tokenizer"), vocab_size=600,
        model_type="bpe", byte_fallback=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
        split_digits=True, allow_whitespace_only_pieces=True, normalization_rule_name="identity",
        character_coverage=1.0, pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>", user_defined_symbols=["<mask>", "<start_of_turn>", "<end_of_turn>"],
        hard_vocab_limit=False, minloglevel=2)
    for leftover in ["tokenizer.vocab", "corpus.txt"]:
        os.remove(os.path.join(out, leftover))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
                   "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}, f)
    # transformers converts tokenizer.model into tokenizer.json (and rewrites tokenizer_config.json).
    transformers.AutoTokenizer.from_pretrained(out).save_pretrained(out)
    # Gemma's own tokenizer_config.json lists its added tokens, the chat ones special, which is how
    # llama.cpp's converter types them (control); transformers 5 no longer writes the list.
    config_path = os.path.join(out, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    with open(os.path.join(out, "tokenizer.json")) as f:
        added = json.load(f)["added_tokens"]
    config["added_tokens_decoder"] = {str(token["id"]): {**{k: v for k, v in token.items() if k != "id"}, "special": True}
                                      for token in added}
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    return sentencepiece.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model")).vocab_size()


def main(out: str, texts_path: str, llama_cpp: str | None) -> None:
    train(out)
    processor = sentencepiece.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))
    if llama_cpp:
        # The converter reads the model's config; a Gemma 2 shape sized to the vocabulary.
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "vocab_size": processor.vocab_size(),
                       "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
                       "sliding_window": 48, "query_pre_attn_scalar": 16, "attn_logit_softcapping": 50.0,
                       "final_logit_softcapping": 30.0, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0}, f)
        env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py"), NO_LOCAL_GGUF="")
        converted = subprocess.run([sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), out, "--vocab-only",
                                    "--outfile", os.path.join(out, "vocab.gguf")], env=env, capture_output=True, text=True)
        if converted.returncode != 0:
            sys.exit(f"convert_hf_to_gguf.py failed:\n{converted.stderr[-3000:]}")
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    tokenizer = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    json.dump({"sentencepiece": [processor.encode(text) for text in texts],
               "tokenizers": [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
