#!/usr/bin/env python3
"""Generates Tests/KVLabEngineTests/ByteLevelBPEExpectations.swift, the reference data for
ByteLevelBPETests: pre-tokenizer splits of the four byte-level BPE flavours, and encodings by a
tiny byte-level BPE trained here, all computed by Hugging Face `tokenizers` (cross-checked
against the `regex` module running the same patterns).

Pinned versions (Python 3.11.7):  pip install regex==2026.11.15 tokenizers==0.23.3

Usage:  python3 scripts/bpe_expectations.py [path/to/tinyshakespeare.txt]
The corpus (default ../shared/corpus/tinyshakespeare.txt) is only read to train the tokenizer;
the trained vocabulary and merges are written to the Swift file, the corpus is not.
"""

import json
import os
import sys

import regex
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "corpus", "tinyshakespeare.txt")
OUTPUT = os.path.join(ROOT, "Tests", "KVLabEngineTests", "ByteLevelBPEExpectations.swift")

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
          r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
BYTE_LEVEL_NO_REGEX = dict(BYTE_LEVEL, use_regex=False)


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


# GGUF `tokenizer.ggml.pre` name -> (pre_tokenizer as in the model's tokenizer.json, BPE ignore_merges).
# Qwen2's tokenizer.json also has an NFC normalizer; kvlab (like llama.cpp) does not normalize, so
# it is left out here and the test strings are already NFC.
FLAVOURS = {
    "default": (BYTE_LEVEL, False),
    "llama-bpe": ({"type": "Sequence", "pretokenizers": [split(LLAMA3), BYTE_LEVEL_NO_REGEX]}, True),
    "qwen2": ({"type": "Sequence", "pretokenizers": [split(QWEN2), BYTE_LEVEL_NO_REGEX]}, False),
    "smollm": ({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, BYTE_LEVEL]}, False),
}

SPLIT_INPUTS = [
    "Hello world",
    "I'm here, aren't you? We've seen they'll go, I'd say you're right.",
    "DON'T WE'LL I'M SHE'S THEY'RE YOU'VE HE'D 'Re",
    "'s 'S 'ſx x'ſ 'sa",
    "12345",
    "1234567 89 0 abc123def 3.14159",
    "x²³ ½ Ⅻ ٣٤٥",
    "   leading spaces",
    "multiple     spaces  between",
    "trailing spaces   ",
    "\r\n\n",
    "line1\r\nline2\n\n\nline3",
    "\ttab\t\tseparated\t",
    " \n \n  x",
    "a \n b",
    "end.\n",
    "héllo wörld",
    "naïve café ǅungla",
    "日本語のテキスト",
    "中文，标点。",
    "emoji 👋🏽 family 👨‍👩‍👧 ok😀😀",
    "...!!",
    "wait...!!! what?!",
    "a\u00a0b",
    "a\u00a0\u00a0b c\u3000d\u2028e\u2029",
    "((nested)) [brackets] {braces}",
    "path/to/file_name.txt email@example.com",
    "<|not special|>",
    "",
    " ",
    "\n",
    "'",
    "''",
    "a'",
    "don't stop\r\n\r\n",
    "e\u0301 combining",
    "\u0000\u0001\u001f\u007f\u0085",
    "Σίσυφος Привет мир العربية हिन्दी",
]

ENCODE_INPUTS = [
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "You are all resolved rather to die than to famish?",
    "We know't, we know't. Is't a verdict?",
    "DON'T you'll SHE'S",
    "12345 apples and 678 pears",
    "  multiple   spaces  \n\n  and trailing   ",
    "line1\r\nline2\n\n\nline3\t\ttabs",
    "héllo wörld, naïve café",
    "日本語 and 中文。",
    "emoji 👋🏽 family 👨‍👩‍👧 ok",
    "...!!! what?!",
    "a\u00a0b",
    "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more<|endoftext|><|endoftext|>",
    "<|im_sta partial <|im_end|",
    "Hi [[name]], [[name]]s and [[name]]",
    "",
]

CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = ["[[name]]", "[[name]]s"]


def regex_splits(flavour, text):
    """The pre-tokens of the patterns run by the `regex` module."""
    if flavour == "default":
        return regex.findall(GPT2, text)
    if flavour == "llama-bpe":
        return regex.findall(LLAMA3, text)
    if flavour == "qwen2":
        return regex.findall(QWEN2, text)
    # SmolLM: every \p{N} is its own piece, the GPT-2 pattern splits the text between them.
    pieces = []
    for part in regex.split(r"(\p{N})", text):
        if regex.fullmatch(r"\p{N}", part):
            pieces.append(part)
        elif part:
            pieces += regex.findall(GPT2, part)
    return pieces


def hf_splits(flavour, text):
    """The pre-tokens of the flavour's Hugging Face pre-tokenizer, before byte mapping."""
    if flavour == "default":
        pre = pre_tokenizers.Split(Regex(GPT2), behavior="isolated")
    elif flavour == "llama-bpe":
        pre = pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated")
    elif flavour == "qwen2":
        pre = pre_tokenizers.Split(Regex(QWEN2), behavior="isolated")
    else:
        pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                       pre_tokenizers.Split(Regex(GPT2), behavior="isolated")])
    return [piece for piece, _ in pre.pre_tokenize_str(text)]


def train():
    with open(CORPUS, encoding="utf-8") as f:
        text = f.read()[:20_000]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=CONTROL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([text], trainer)
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in USER_DEFINED])
    return json.loads(tokenizer.to_str())


def with_flavour(trained, flavour):
    pre, ignore_merges = FLAVOURS[flavour]
    config = json.loads(json.dumps(trained))
    config["pre_tokenizer"] = pre
    config["model"]["ignore_merges"] = ignore_merges
    return Tokenizer.from_str(json.dumps(config))


def vocabulary(trained):
    by_id = {i: t for t, i in trained["model"]["vocab"].items()}
    for added in trained["added_tokens"]:
        by_id[added["id"]] = added["content"]
    assert sorted(by_id) == list(range(len(by_id)))
    return [by_id[i] for i in range(len(by_id))]


def merges(trained):
    return [m if isinstance(m, str) else " ".join(m) for m in trained["model"]["merges"]]


def handmade():
    """The hand-made vocabulary of the tests: every byte plus "ab", "bc", "abc"."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    for token in ["ab", "bc", "abc"]:
        vocab[token] = len(vocab)
    results = {}
    for flavour in ["default", "llama-bpe"]:
        tokenizer = Tokenizer(models.BPE(vocab, [("a", "b"), ("b", "c"), ("a", "bc")],
                                         ignore_merges=FLAVOURS[flavour][1]))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(GPT2 if flavour == "default" else LLAMA3), behavior="isolated"),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        results[flavour] = [[alphabet[i] if i < len(alphabet) else ["ab", "bc", "abc"][i - len(alphabet)]
                             for i in tokenizer.encode(text).ids] for text in ["abc", "xabc"]]
    return results


def swift(text, raw_non_ascii=False):
    """A Swift string literal; non-ASCII is escaped unless raw_non_ascii (byte-level token strings)."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif " " <= c <= "~" or (raw_non_ascii and c > "\u00a0"):
            out.append(c)
        else:
            out.append("\\u{%X}" % ord(c))
    return '"' + "".join(out) + '"'


def swift_list(items, **kw):
    return "[" + ", ".join(swift(i, **kw) for i in items) + "]"


def main():
    lines = [
        "// Generated by scripts/bpe_expectations.py from Hugging Face `tokenizers`; do not edit by hand.",
        "",
        "/// Reference data for ByteLevelBPETests.",
        "enum BPEExpectations {",
        "    /// Pre-tokens per flavour and input, before byte mapping.",
        "    static let splits: [SplitCase] = [",
    ]
    for flavour in FLAVOURS:
        for text in SPLIT_INPUTS:
            expected = hf_splits(flavour, text)
            if expected != regex_splits(flavour, text):
                sys.exit(f"regex and tokenizers disagree on {flavour} {text!r}")
            lines.append(f"        SplitCase({swift(flavour)}, {swift(text)}, {swift_list(expected)}),")
    lines.append("    ]")

    trained = train()
    tokens = vocabulary(trained)
    lines.append("")
    lines.append("    /// The trained tokenizer's tokens, in id order (byte-level strings, specials verbatim).")
    lines.append("    static let tokens: [String] = [")
    for i in range(0, len(tokens), 12):
        lines.append("        " + ", ".join(swift(t, raw_non_ascii=True) for t in tokens[i:i + 12]) + ",")
    lines.append("    ]")
    lines.append("")
    lines.append("    /// The trained tokenizer's merges, in rank order.")
    lines.append("    static let merges: [String] = [")
    rules = merges(trained)
    for i in range(0, len(rules), 10):
        lines.append("        " + ", ".join(swift(m, raw_non_ascii=True) for m in rules[i:i + 10]) + ",")
    lines.append("    ]")
    lines.append("")
    lines.append(f"    static let controlTokens: [String] = {swift_list(CONTROL)}")
    lines.append(f"    static let userDefinedTokens: [String] = {swift_list(USER_DEFINED)}")
    lines.append("")
    lines.append("    /// Token ids per flavour and input, without BOS.")
    lines.append("    static let encodings: [EncodingCase] = [")
    for flavour in FLAVOURS:
        tokenizer = with_flavour(trained, flavour)
        for text in ENCODE_INPUTS:
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            lines.append(f"        EncodingCase({swift(flavour)}, {swift(text)}, {ids}),")
    lines.append("    ]")
    lines.append("")
    lines.append('    /// The hand-made vocabulary\'s tokens for "abc" and "xabc" per flavour.')
    lines.append("    static let handmade: [String: [[String]]] = [")
    for flavour, results in handmade().items():
        lines.append(f"        {swift(flavour)}: [{', '.join(swift_list(r) for r in results)}],")
    lines.append("    ]")
    lines.append("}")
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUTPUT}: {len(tokens)} tokens, {len(rules)} merges")


if __name__ == "__main__":
    main()
