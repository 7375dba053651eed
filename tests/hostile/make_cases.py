"""Hostile inputs for tqlm: writes every crafted file into a directory and returns the table of cases.

A case is (name, argv, expected exit code or "nonzero", words that must all appear in stderr, extra checks).
argv items may contain {dir} (the case directory) and {model} (a tiny valid model: a llama fixture with a
byte-level tokenizer.json). Used by tests/oracle/test_hostile.py; run alone to see the table:

    python tests/hostile/make_cases.py FIXTURE_DIR OUT_DIR
"""
import copy
import json
import os
import shutil
import struct
import sys
from pathlib import Path


def byte_level_tokenizer():
    """A byte-level BPE over the 256 byte symbols (GPT-2 mapping), no merges."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    return {"version": "1.0", "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                      "merges": []}}


def put_nan(safetensors, tensor):
    """Writes a NaN and an Inf (bf16/f16/f32) into the first two elements of `tensor`."""
    data = bytearray(safetensors.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    t = header[tensor]
    off = 8 + n + t["data_offsets"][0]
    if t["dtype"] == "BF16":
        data[off:off + 4] = struct.pack("<HH", 0x7FC0, 0x7F80)
    elif t["dtype"] == "F16":
        data[off:off + 4] = struct.pack("<HH", 0x7E00, 0x7C00)
    else:
        data[off:off + 8] = struct.pack("<ff", float("nan"), float("inf"))
    safetensors.write_bytes(bytes(data))


def make_cases(fixture, out):
    """fixture: a llama-bf16 fixture directory (config.json + model.safetensors). out: an empty directory."""
    fixture, out = Path(fixture), Path(out)
    base_cfg = json.loads((fixture / "config.json").read_text())
    model = out / "model"
    model.mkdir()
    for f in fixture.iterdir():
        if f.suffix == ".safetensors" or f.name.endswith(".index.json"):
            os.symlink(f.resolve(), model / f.name)
    (model / "config.json").write_text(json.dumps(base_cfg))
    tok = byte_level_tokenizer()
    (model / "tokenizer.json").write_text(json.dumps(tok))
    cases = []

    def add(name, argv, rc, words, **extra):
        cases.append({"name": name, "argv": argv, "rc": rc, "words": words, **extra})

    def config(name, **changes):
        c = copy.deepcopy(base_cfg)
        for k, v in changes.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        p = out / f"{name}.json"
        p.write_text(json.dumps(c))
        return str(p)

    def model_with(name, cfg=None, tokenizer=None, fifo=None):
        d = out / name
        shutil.copytree(model, d, symlinks=True)
        if cfg is not None:
            (d / "config.json").write_text(json.dumps(cfg))
        if tokenizer is not None:
            (d / "tokenizer.json").write_text(json.dumps(tokenizer))
        if fifo:
            (d / fifo).unlink()
            os.mkfifo(d / fifo)
        return str(d)

    # ---- 1. config.json: types, ranges, cross-field consistency, absurd sizes (before anything is planned)
    for cmd in (["kv-plan"], ["convert", "--dry-run"]):
        tag = cmd[0]
        add(f"{tag}: 10^9 layers", [*cmd, config("layers1e9", num_hidden_layers=10**9)], 1,
            ["num_hidden_layers", "kMaxLayers"])
        add(f"{tag}: 10^7 layers", [*cmd, config("layers1e7", num_hidden_layers=10**7)], 1, ["kMaxLayers"])
        add(f"{tag}: zero layers", [*cmd, config("layers0", num_hidden_layers=0)], 1, ["num_hidden_layers"])
        add(f"{tag}: hidden 10^12", [*cmd, config("hidden1e12", hidden_size=10**12)], 1,
            ["hidden_size", "kMaxHidden"])
    add("vocab beyond the limit", ["kv-plan", config("vocab", vocab_size=2**40)], 1, ["vocab_size", "kMaxVocab"])
    add("integer beyond 64 bits", ["kv-plan", config("u64", num_hidden_layers=2**64 + 5)], 1,
        ["num_hidden_layers"])
    add("layers as a string", ["kv-plan", config("layers_str", num_hidden_layers="3")], 1,
        ["num_hidden_layers", "integer"])
    add("negative rope_theta", ["kv-plan", config("theta", rope_theta=-10000.0)], 1, ["rope_theta"])
    add("zero rope_theta", ["convert", "--dry-run", config("theta0", rope_theta=0)], 1, ["rope_theta"])
    add("negative rms_norm_eps", ["kv-plan", config("eps", rms_norm_eps=-1e-5)], 1, ["rms_norm_eps"])
    add("rope scaling factor 0", ["kv-plan", config("factor", rope_scaling={"type": "linear", "factor": 0})], 1,
        ["rope_scaling", "factor"])
    add("kv heads do not divide heads", ["kv-plan", config("kvh", num_key_value_heads=3)], 1,
        ["num_key_value_heads"])
    add("odd head_dim", ["kv-plan", config("hd", head_dim=33)], 1, ["head_dim"])
    add("tie_word_embeddings wrong type", ["kv-plan", config("tie", tie_word_embeddings="yes")], 1,
        ["tie_word_embeddings"])
    mm = {"model_type": "minimax_m2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 32, "num_local_experts": 4,
          "num_experts_per_tok": 2, "rotary_dim": 8, "vocab_size": 256, "max_position_embeddings": 1024}
    for name, ch, words in [("rotary_dim as a string", {"rotary_dim": "8"}, ["rotary_dim"]),
                            ("rotary_dim over head_dim", {"rotary_dim": 32}, ["rotary_dim", "head_dim"]),
                            ("top-k over experts", {"num_experts_per_tok": 5}, ["num_experts_per_tok"]),
                            ("10^6 experts", {"num_local_experts": 10**6}, ["kMaxExperts"])]:
        p = out / f"mm-{len(cases)}.json"
        p.write_text(json.dumps({**mm, **ch}))
        add(f"minimax: {name}", ["kv-plan", str(p)], 1, words)
    add("config with more layers than the checkpoint",
        ["generate", model_with("lay4", {**base_cfg, "num_hidden_layers": 4}), "-p", "hi", "--raw", "-n", "2"], 1,
        ["num_hidden_layers = 4", "3 layers"])
    add("config with fewer layers than the checkpoint",
        ["generate", model_with("lay2", {**base_cfg, "num_hidden_layers": 2}), "-p", "hi", "--raw", "-n", "2"], 1,
        ["num_hidden_layers = 2", "3 layers"])
    add("inspect: FIFO as config.json", ["inspect", model_with("fifocfg", fifo="config.json")], 1,
        ["config.json", "not a regular file"])

    # ---- 2. context
    nomax = {k: v for k, v in base_cfg.items() if k != "max_position_embeddings"}
    add("no max_position_embeddings: stated default", ["kv-plan", config("nomax", max_position_embeddings=None)],
        0, ["max_position_embeddings", "4096"])
    add("--ctx over the model's max", ["generate", "{model}", "-p", "hi", "--raw", "-n", "2", "--ctx", "100000"],
        1, ["--ctx 100000", str(base_cfg["max_position_embeddings"])])
    add("prompt over --ctx", ["generate", "{model}", "-p", "hello " * 40, "--raw", "-n", "2", "--ctx", "16"], 1,
        ["context"])
    add("no max_position_embeddings: generate warns",
        ["generate", model_with("nomaxm", nomax), "-p", "hi", "--raw", "-n", "2", "-q"], 0,
        ["max_position_embeddings", "kDefaultContext"])

    # ---- 3. flags
    gen = ["generate", "{model}", "-p", "hi", "--raw", "-n", "2"]
    add("threads beyond the bound", [*gen, "-t", "100000"], "nonzero", ["--threads"])
    add("negative threads", [*gen, "-t", "-3"], "nonzero", ["--threads"])
    for flag, value in [("--temp", "nan"), ("--temp", "-1"), ("--top-p", "0"), ("--top-p", "1.5"),
                        ("--top-k", "-1"), ("--min-p", "2"), ("--min-p", "nan"), ("--repeat-penalty", "0"),
                        ("--repeat-penalty", "-2")]:
        add(f"sampling {flag} {value}", [*gen, flag, value], 1, [flag])
    add("--ctx 0", [*gen, "--ctx", "0"], "nonzero", ["--ctx"])
    # std::regex recursed per character: a 100 KB size or context flag was a segfault; 1000 digits a bare "stod"
    small = config("small", max_position_embeddings=4096)
    add("100 KB --mem", ["kv-plan", small, "--mem", "1" * 100_000], 1, ["--mem", "at most 64 characters"])
    add("1000-digit --mem", ["kv-plan", small, "--mem", "9" * 1000], 1, ["--mem", "at most 64 characters"])
    add("100 KB --contexts", ["kv-plan", small, "--contexts", "1" * 100_000], 1, ["--contexts", "token count"])
    add("100 KB --kv-mem", [*gen, "--kv-mem", "5" * 100_000], 1, ["--kv-mem"])
    add("--group-size 0", ["convert", "{model}", "{dir}/g0", "--group-size", "0"], "nonzero", ["--group-size"])
    pol = out / "bits-wrap.json"
    pol.write_text(json.dumps({"rules": [{"roles": ["attn_q"], "bits": 2**32 + 4}]}))
    add("policy bits that wrap modulo 2^32", ["convert", "--dry-run", "{model}", "--policy", str(pol)], 1,
        ["bits", "4294967300"])
    pol = out / "nomatch.json"
    pol.write_text(json.dumps({"rules": [{"roles": ["expert_gate"], "bits": 2}, {"layers": "500-600", "bits": 8}]}))
    add("policy rules that match nothing", ["convert", "--dry-run", "{model}", "--policy", str(pol)], 0,
        ["rules[0] matches no tensor", "rules[1] matches no tensor"])
    pol = out / "roles-num.json"
    pol.write_text(json.dumps({"rules": [{"roles": 7, "bits": 4}]}))
    add("policy roles of the wrong type", ["convert", "--dry-run", "{model}", "--policy", str(pol)], 1,
        ["roles", "string"])
    fp8 = model_with("fp8", {**base_cfg, "quantization_config": {"quant_method": "fp8", "weight_block_size": [64, 64]}})
    add("FP8 block size other than 128", ["convert", fp8, "{dir}/fp8-out", "--policy", "uniform-4"], 1,
        ["weight_block_size", "[64,64]"], absent=["fp8-out"])
    nan = out / "nan"
    shutil.copytree(model, nan)
    st = nan / "model.safetensors"
    st.unlink()
    shutil.copy(fixture / "model.safetensors", st)
    put_nan(st, "model.layers.1.mlp.up_proj.weight")
    add("NaN/Inf weights in a conversion", ["convert", str(nan), "{dir}/nan-out", "--policy", "uniform-4"], 1,
        ["model.layers.1.mlp.up_proj.weight", "2 NaN/Inf"], absent=["nan-out"])
    add("NaN/Inf weights converted on request",
        ["convert", str(nan), "{dir}/nan-ok", "--policy", "uniform-4", "--allow-nonfinite"], 0,
        ["model.layers.1.mlp.up_proj.weight", "2 NaN/Inf"])

    # ---- 4. files
    os.mkfifo(out / "fifo")
    add("FIFO as --data", ["perplexity", "{model}", "--data", "{dir}/fifo", "--ctx", "8"], "nonzero", ["FIFO"])
    add("missing --data", ["perplexity", "{model}", "--data", "{dir}/nope.txt", "--ctx", "8"], "nonzero",
        ["nope.txt", "no such file"])
    add("/dev/zero as a checkpoint", ["inspect", "/dev/zero"], 1, ["/dev/zero", "character device"])
    add("FIFO as a checkpoint file", ["inspect", "{dir}/fifo"], 1, ["FIFO"])
    add("FIFO as a safetensors shard", ["inspect", model_with("fifost", fifo="model.safetensors")], 1,
        ["model.safetensors", "FIFO"])
    add("FIFO as a config", ["kv-plan", "{dir}/fifo"], 1, ["fifo", "not a regular file"])
    (out / "cfgdir").mkdir()
    (out / "cfgdir" / "config.json").mkdir()
    add("directory as config.json", ["kv-plan", "{dir}/cfgdir"], 1, ["config.json", "not a regular file"])
    add("FIFO as --chat-template", [*gen, "--chat-template", "{dir}/fifo"], "nonzero", ["FIFO"])
    add("missing TQLM_DATA is not replaced by a default", ["niah", "{model}", "--contexts", "512"], 1,
        ["TQLM_DATA", "no such file"], env={"TQLM_DATA": str(out / "no-such-data")})
    (out / "text.txt").write_text("The quick brown fox jumps over the lazy dog. " * 20)
    (out / "logits-dir").mkdir()
    add("--save-logits error leaves no .tmp",
        ["perplexity", "{model}", "--data", "{dir}/text.txt", "--ctx", "16", "--samples", "1", "--save-logits",
         "{dir}/logits-dir"], 1, ["logits-dir"], absent=["logits-dir.tmp"])
    (out / ".conv-out.partial-999999999").mkdir()
    add("stale partial conversion reported",
        ["convert", "{model}", "{dir}/conv-out", "--policy", "uniform-4"], 0,
        ["partial-999999999", "--remove-stale"])
    (out / ".conv-rm.partial-999999998").mkdir()
    add("stale partial conversion removed",
        ["convert", "{model}", "{dir}/conv-rm", "--policy", "uniform-4", "--remove-stale"], 0,
        ["removed", "partial-999999998"], absent=[".conv-rm.partial-999999998"])

    # ---- 5. tokenizer files
    def tok_case(name, mutate, words, argv_tail=("--text", "hello")):
        t = copy.deepcopy(tok)
        mutate(t)
        d = out / f"tok-{len(cases)}"
        d.mkdir()
        (d / "tokenizer.json").write_text(json.dumps(t))
        add(name, ["tokenize", str(d), *argv_tail], 1, words)

    tok_case("added token id beyond 32 bits",
             lambda t: t["added_tokens"].append({"id": 2**32 + 2, "content": "<x>", "special": True}),
             ["id", "4294967298"])
    tok_case("10 MB added token",
             lambda t: t["added_tokens"].append({"id": 300, "content": "x" * 10_000_000, "special": True}),
             ["kMaxAddedTokenBytes"])
    tok_case("vocab id of 5x10^7", lambda t: t["model"]["vocab"].update({"far": 50_000_000}),
             ["kMaxTokenizerVocab"])
    tok_case("sparse vocab ids", lambda t: t["model"]["vocab"].update({"far": 4_000_000}), ["far beyond"])
    tok_case("vocab id as a string", lambda t: t["model"]["vocab"].update({"s": "7"}), ["vocab", "integer"])
    grow = {"type": "Sequence", "normalizers": [
        {"type": "Replace", "pattern": {"String": "a"}, "content": "a" * 64}] * 8}
    tok_case("normalizer that grows strings without bound", lambda t: t.update(normalizer=grow),
             ["normalizer", "kMaxNormalizedGrowth"], ("--text", "a" * 1000))
    backtrack = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False}
    tok_case("pre-tokenizer regex that backtracks exponentially", lambda t: t.update(pre_tokenizer=backtrack),
             ["pre_tokenizer", "(a+)+$", "match limit"], ("--text", "a" * 30000 + "c"))
    add("decode ids beyond 32 bits", ["tokenize", "{model}", "--decode", "--text", "4294967298"], 1,
        ["4294967298", "out of range"])
    add("decode ids beyond 32 bits (JSON)", ["tokenize", "{model}", "--decode", "--text", "[1, 4294967298]"], 1,
        ["4294967298"])
    add("FIFO as tokenizer.json", ["tokenize", model_with("fifotok", fifo="tokenizer.json"), "--text", "hi"], 1,
        ["tokenizer.json", "not a regular file"])
    return cases


if __name__ == "__main__":
    for c in make_cases(sys.argv[1], sys.argv[2]):
        print(c["name"], "|", " ".join(map(str, c["argv"]))[:100], "|", c["rc"], "|", c["words"])
