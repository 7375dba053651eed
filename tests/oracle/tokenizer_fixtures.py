"""Oracle tokenizers for the tokenizer tests, trained offline with HF `tokenizers` itself (no hub access)
on part of WikiText-2 plus a torture text, saved as tokenizer.json and cached under tests/oracle/.fixtures/.

Kinds (each mirrors the tokenizer.json layout of a real model family):
  llama3     Split(GPT-4/Llama-3 regex) + ByteLevel(no regex), ignore_merges, BOS via TemplateProcessing
  qwen2      NFC normalizer, Split(Qwen2 regex) + ByteLevel, extra added tokens with lstrip/rstrip/
             single_word/normalized flags
  smollm2    Digits(individual) + ByteLevel(add_prefix_space=True, GPT-2 regex), array-format merges
  minimax    o200k-style Split regex (MiniMax M2 family) + ByteLevel, MiniMax's special tokens
  llama2     SentencePiece style: Prepend+Replace normalizer, no pre-tokenizer, byte_fallback with
             <0x00>..<0xFF>, Replace/ByteFallback/Fuse/Strip decoder, "<s> $A"
  mistral    SentencePiece style with a Metaspace pre-tokenizer (prepend_scheme first) and decoder
"""
import hashlib
import json
import os
import pathlib
import shutil

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parents[2]
WIKI = ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"
if not WIKI.exists():
    WIKI = pathlib.Path("/work/shared/data/wikitext-2/wiki.test.raw")
CACHE = pathlib.Path(os.environ.get("TQLM_TOK_FIXTURES", pathlib.Path(__file__).resolve().parent / ".fixtures"))

KINDS = ["llama3", "qwen2", "smollm2", "minimax", "llama2", "mistral"]
BYTE_LEVEL_KINDS = ("llama3", "qwen2", "smollm2", "minimax")

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
O200K_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
MINIMAX_SPECIALS = ["]!p~[", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "]~b]", "[e~[", "]!d~[",
                    "]~!b[", "<think>", "</think>", "<minimax:tool_call>", "</minimax:tool_call>"]
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)

TORTURE = (
    "Hello, world! Don't stop; DON'T STOP. I'm sure they'll say we've done it, you'd agree. It's ours.\n"
    "Numbers: 0 7 42 123 4567 3.14159 1,000,000 2024-06-01 12345678901234567890 ½ ⅔ ² ३४५ ٣٤٥\n"
    "Whitespace:  two  spaces,   three,\ttab,\t\ttwo tabs, trailing   \n\n\nthree newlines\r\nCRLF\r\n"
    "  leading spaces\n \n\t\n    indented code\n"
    "Code: def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n"
    "if (a != b && c >= d) { printf(\"%d\\n\", a->b); } // C++ <vector<int>>\n"
    "Accents: café naïve résumé Ærøskøbing façade Ångström São Paulo Zürich\n"
    "Combining: e\u0301 a\u0308 n\u0303 A\u030a o\u0302\u0323 q\u0307\u0323 \u1e0b\u0323 Z\u0335\u0336\u0337\n"
    "Hangul: 한국어 텍스트 \u1100\u1161\u11a8 jamo; Japanese: 日本語のテキスト、カタカナ。Chinese: 中文文本，测试！\n"
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇯🇵🇫🇷 🧑🏿‍🚀 ✨🎉 1️⃣ #️⃣\n"
    "RTL: שלום עולם مرحبا بالعالم ‏mixed‎ עברית123\n"
    "Greek: Ελληνικά ΣΊΣΥΦΟΣ σς; Cyrillic: Привет, мир! ЁЖИК; Thai: ภาษาไทย; Devanagari: हिन्दी नमस्ते\n"
    "Symbols: ©®™ ±×÷ ≤≥≠ ∑∏∫ → ← ↔ ∀∃ ∞ € £ ¥ ₹ § ¶ † ‡ • … — – ‘quotes’ “double” «guillemets»\n"
    "Odd spaces: a\u00a0b c\u2003d e\u3000f g\u200bh i\u2028j k\u0085l m\ufeffn o\u202fp\n"
    "NEL: x\u0085\u0085 y x \u0085y end\u0085\n!\u0085\u0085 a\u0085 \u0085 b \u2028\u2028z \u00a0\u00a0w a\u180e\u180e b \u180e\u180e\n"
    "Controls: \x01\x02\x1f\x7f end; long run: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!!!!!!!!!!!!!!!!????\n"
    "URLs: https://example.com/path?q=1&r=two#frag user@example.org C:\\Users\\x\\file.txt\n"
    "Mixed: abc123def 123abc ABC's x'y 'quoted' ''double'' '' ' \"\" ...---... ___init___ camelCaseWord\n"
    "Ligatures: ﬁ ﬂ ﬀ Ⅻ ㎏ ℌ K Å Ω\n"
    "Surrogate-plane: 𝕳𝖊𝖑𝖑𝖔 𝟙𝟚𝟛 𐍈 🜁 \U0010fffd end\n"
)

# Only for training: frequent odd-whitespace runs so that merges exist across the places where a wrong
# notion of whitespace (e.g. U+0085 NEL, which Oniguruma's \s includes) would split differently.
TRAIN_EXTRA = ("a \u0085\u0085 b \u0085 \u0085\n x\u0085 \u2028 y \u3000\u3000z\t\u0085\n a \u180e\u180e b \u180e \u180e\n"
               "DON'T don't I'M I'm WE'LL we'll THEY'RE 'S 'LL\n") * 40

SPECIAL_TEXTS = [
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat's 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>",
    " <|im_start|> user <|im_end|> ",
    "text<|endoftext|>more text<|endoftext|>",
    "<|im_start|>\n\n<|im_end|>\n\n",
    "<|im_start|",
    "<|im_start|><|im_start|>x<|im_end|>",
    "<s>Hello</s> <s> world</s>",
    "<s><s></s>",
    "  <s>  leading",
    "a <|fim|> b<|fim|>c  <|fim|>  d",
    "<tool> x<tool>y <tool>",
    "Cafe\u0301 and Café and café",
    "<|endoftext|>",
    "]~!b[]~b]system\nYou are helpful.[e~[\n]~b]user\nhi[e~[\n]~b]ai\n<think>\n",
    "<think>\nreasoning\n</think>\n\nanswer<minimax:tool_call>\n<invoke name=\"f\"></invoke>\n</minimax:tool_call>[e~[",
    "a]~b]b [e~[ ]~!b[",
    "",
    " ",
    "\n",
]


def _read_wiki():
    return WIKI.read_text(encoding="utf-8")


def _training_text():
    wiki = _read_wiki()
    return [wiki[:400_000], TORTURE * 3, TRAIN_EXTRA]


def _iter_lines(parts):
    for p in parts:
        yield from p.splitlines(keepends=True)


def _train(tok, vocab_size, specials, alphabet=None, limit_alphabet=None):
    kw = dict(vocab_size=vocab_size, min_frequency=2, special_tokens=specials, show_progress=False)
    if alphabet is not None:
        kw["initial_alphabet"] = alphabet
    if limit_alphabet is not None:
        kw["limit_alphabet"] = limit_alphabet
    tok.train_from_iterator(_iter_lines(_training_text()), trainer=trainers.BpeTrainer(**kw))
    return tok


def _byte_level(kind):
    tok = Tokenizer(models.BPE())
    if kind == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    elif kind == "qwen2":
        from tokenizers import normalizers
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    elif kind == "minimax":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(O200K_PATTERN), behavior="isolated", invert=False),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = MINIMAX_SPECIALS
    else:  # smollm2
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.decoder = decoders.ByteLevel()
    _train(tok, 3000, specials, alphabet=pre_tokenizers.ByteLevel.alphabet())
    if kind == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
    elif kind == "qwen2":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.add_special_tokens([AddedToken("<|fim|>", special=True, lstrip=True, rstrip=True, normalized=False)])
        tok.add_tokens([AddedToken("<tool>", single_word=True, normalized=False),
                        AddedToken("Café", normalized=True)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    j = json.loads(tok.to_str())
    if kind == "llama3":
        j["model"]["ignore_merges"] = True
    if kind == "smollm2":
        j["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in j["model"]["merges"]]
    return j


def _sentencepiece(kind):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    _train(tok, 2500, [], limit_alphabet=120)
    trained = json.loads(tok.to_str())
    old_vocab = sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in old_vocab:
        if t not in vocab:
            vocab[t] = len(vocab)
    model = dict(trained["model"])
    model.update(vocab=vocab, unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None,
                 ignore_merges=False)
    added = [dict(id=i, content=c, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
             for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    post = {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    j = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "post_processor": post,
         "model": model}
    if kind == "llama2":
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        j["pre_tokenizer"] = None
        j["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    else:  # mistral
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        j["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    return j


def _builder_hash():
    src = pathlib.Path(__file__).read_bytes()
    return hashlib.sha1(src + WIKI.read_bytes()[:1000]).hexdigest()[:12]


def tokenizer_path(kind):
    """Path of the oracle tokenizer.json of `kind`, building it on first use."""
    assert kind in KINDS, kind
    d = CACHE / f"{kind}-{_builder_hash()}"
    path = d / "tokenizer.json"
    if not path.exists():
        for old in CACHE.glob(f"{kind}-*"):  # stale builds of an older version of this file
            shutil.rmtree(old, ignore_errors=True)
        j = _byte_level(kind) if kind in BYTE_LEVEL_KINDS else _sentencepiece(kind)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "tokenizer.json.tmp"
        tmp.write_text(json.dumps(j, ensure_ascii=False), encoding="utf-8")
        Tokenizer.from_file(str(tmp))  # must load in HF itself
        tmp.rename(path)
    return path
