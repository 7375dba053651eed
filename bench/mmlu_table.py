#!/usr/bin/env python3
"""MMLU by subject for the default model: tqlm (loglik, 5-shot) with each KV mode asked, beside llama.cpp
(llama-cpp-python) scoring the very same prompt ids on the Q4_1 GGUF the model was converted from (its kernels
quantize activations to 8 bits, so near-ties can flip: the agreement is printed). Prints a markdown table for
docs/results.md and writes the raw results as JSON.

  .venv/bin/python bench/mmlu_table.py [--kv bf16,turbo4v2] [--n 0] [--subjects all] [--out .cache/mmlu]

--n 0 runs every question of every test file in ../shared/data/mmlu (about 14,000); --n 50 is a quick
subset (the same questions for every engine: tqlm's seeded choice). Each subject's results are kept in --out as
they finish, so a stopped run resumes where it left off (delete --out to start over, e.g. after a rebuild).
With --n 0 each finished subject is also kept, compactly (answers, each engine's letter log-probabilities), in
--results (default bench/results/mmlu-full/, tracked in git), so the full table, several hours on 2 cores, can be
built across sessions: a subject found there is not run again (delete its file to rerun it)."""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "oracle"))


MAX_MEAN_GAP = 0.5  # mean |llama.cpp - tqlm| letter log-probability; the same weights give 0.03-0.07 (default model)


def subjects_of(a):
    names = sorted(f.name[: -len("_test.csv")] for f in (Path(a.data) / "test").glob("*_test.csv"))
    if a.subjects == "all":
        return names
    asked = a.subjects.split(",")
    unknown = [s for s in asked if s not in names]
    if unknown:
        sys.exit(f"--subjects: no test file for {', '.join(unknown)} in {a.data}/test (there are: {', '.join(names)})")
    return asked


def run_tqlm(a, kv, subject, out_dir):
    """One subject with one KV mode; its JSON (and the prompt ids, once) are kept in out_dir, so an interrupted
    run resumes where it stopped."""
    js, prompts = out_dir / f"tqlm-{kv}-{subject}.json", out_dir / f"prompts-{subject}.jsonl"
    if js.exists() and prompts.exists():
        return json.loads(js.read_text())
    cmd = [a.tqlm, "mmlu", a.model, "--data", a.data, "--kv", kv, "--n", str(a.n), "--json", "-t", str(a.threads),
           "--subjects", subject, "--save-prompts", str(prompts) + ".tmp"]
    t0 = time.time()
    # f32 value sums unless told otherwise: the full table's turbo4v2 column began before session 16 made integer
    # value sums the default on AVX-512, and one column is one configuration
    env = dict(os.environ, TQLM_KV_VALUES=os.environ.get("TQLM_KV_VALUES", "f32"))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"tqlm mmlu --kv {kv} --subjects {subject} failed")
    os.replace(str(prompts) + ".tmp", prompts)
    js.write_text(r.stdout)
    print(f"tqlm --kv {kv} {subject}: {time.time() - t0:.0f} s", flush=True)
    return json.loads(r.stdout)


def run_llamacpp(a, subject, out_dir, letters, oracle):
    js = out_dir / f"llamacpp-{subject}.json"
    if js.exists():
        return json.loads(js.read_text())
    prompts = [json.loads(line)["ids"] for line in (out_dir / f"prompts-{subject}.jsonl").read_text().splitlines()]
    out, t0 = [], time.time()
    for i in range(0, len(prompts), 50):  # in slices: one call per 50 prompts (bounded messages and time)
        out += oracle().call("next_token_logprobs", str(a.gguf), 4096, prompts[i:i + 50], letters)
    js.write_text(json.dumps(out))
    print(f"llama.cpp {subject}: {len(out)} prompts, {time.time() - t0:.0f} s", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kv", default="bf16,turbo4v2")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--subjects", default="all")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mmlu"))
    ap.add_argument("--gguf", default=None, help="default: the Q4_1 GGUF cached by scripts/get-default-model.sh")
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--out", default=str(ROOT / ".cache" / "mmlu"))
    ap.add_argument("--results", default=str(ROOT / "bench" / "results" / "mmlu-full"),
                    help="with --n 0: finished subjects, kept across sessions (see above)")
    a = ap.parse_args()
    a.kv = a.kv.split(",")
    if a.gguf is None:  # the default model's own GGUF, never whichever *.gguf a search finds first (the speed
        from default_gguf import q4_gguf  # twins' random-weight GGUFs live under .cache too)
        a.gguf = q4_gguf()
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf = Tokenizer.from_file(str(Path(a.model) / "tokenizer.json"))
    letters = [hf.encode(" " + c, add_special_tokens=False).ids[0] for c in "ABCD"]
    from isolation import llama_cpp_oracle
    held = []

    def oracle():
        if not held:
            held.append(llama_cpp_oracle())
        return held[0]

    subjects = subjects_of(a)
    runs = {kv: {"items": []} for kv in a.kv}
    ref, t0 = [], time.time()
    try:
        for k, subject in enumerate(subjects):
            kept = Path(a.results) / f"{subject}.json"
            old = json.loads(kept.read_text()) if a.n == 0 and kept.exists() else None
            if old and all(kv in old["tqlm"] for kv in a.kv):
                for kv in a.kv:
                    runs[kv]["items"] += [{"subject": subject, "answer": ans, "pred": int(np.argmax(lp))}
                                          for ans, lp in zip(old["answers"], old["tqlm"][kv])]
                ref += old["llamacpp"]
                print(f"[{k + 1}/{len(subjects)} subjects: {subject} from {kept}]", flush=True)
                continue
            res = {kv: run_tqlm(a, kv, subject, out_dir)["items"] for kv in a.kv}
            for kv in a.kv:
                runs[kv]["items"] += res[kv]
            lcpp = run_llamacpp(a, subject, out_dir, letters, oracle)
            gap = float(np.mean(np.abs(np.array(lcpp) - np.array([it["logprobs"] for it in res[a.kv[0]]]))))
            if gap > MAX_MEAN_GAP:
                sys.exit(f"{subject}: llama.cpp's letter log-probabilities differ from tqlm {a.kv[0]}'s by {gap:.2f} "
                         f"on average (same model: under {MAX_MEAN_GAP}); is {a.gguf} the GGUF of {a.model}? "
                         f"(delete {out_dir}/llamacpp-{subject}.json after fixing it)")
            ref += lcpp
            if a.n == 0:  # keep it compactly (5 decimals of each letter's log-probability)
                kept.parent.mkdir(parents=True, exist_ok=True)
                r5 = lambda rows: [[round(v, 5) for v in row] for row in rows]  # noqa: E731
                tqlm = dict(old["tqlm"]) if old else {}
                tqlm.update({kv: r5([it["logprobs"] for it in res[kv]]) for kv in a.kv})
                kept.write_text(json.dumps({"subject": subject, "answers": [it["answer"] for it in res[a.kv[0]]],
                                            "tqlm": tqlm, "llamacpp": r5(lcpp)}) + "\n")
            print(f"[{k + 1}/{len(subjects)} subjects, {time.time() - t0:.0f} s]", flush=True)
    finally:
        for o in held:
            o.close()
    ref = np.array(ref)
    base = runs[a.kv[0]]
    answers = np.array([it["answer"] for it in base["items"]])
    subj = [it["subject"] for it in base["items"]]
    preds = {kv: np.array([it["pred"] for it in r["items"]]) for kv, r in runs.items()}
    preds["llama.cpp"] = ref.argmax(1)
    cols = a.kv + ["llama.cpp"]
    agree = float(np.mean(preds[a.kv[0]] == preds["llama.cpp"]))

    def acc(mask, col):
        n = int(mask.sum())
        p = float(np.mean(preds[col][mask] == answers[mask])) if n else 0.0
        return p, math.sqrt(p * (1 - p) / n) if n else 0.0

    print(f"\nMMLU loglik 5-shot, {len(answers)} questions, {len(set(subj))} subjects ({'all' if a.n == 0 else a.n} per "
          f"subject); tqlm {a.kv[0]} vs llama.cpp (Q4_1 GGUF) choose the same letter on {100 * agree:.2f}%\n")
    # agreement columns: each other column's letter against the first KV mode's (same question, same prompt ids)
    pairs = [(a.kv[0], c) for c in cols[1:]]
    same = lambda m, x, y: 100 * float(np.mean(preds[x][m] == preds[y][m]))  # noqa: E731
    print("| subject | n | " + " | ".join(f"{'tqlm ' + c if c != 'llama.cpp' else c} acc %" for c in cols) + " | " +
          " | ".join(f"same letter {y} / {x} %" for x, y in pairs) + " |")
    print("|---|---|" + "---|" * (len(cols) + len(pairs)))
    for s in sorted(set(subj)):
        m = np.array([x == s for x in subj])
        print(f"| {s} | {int(m.sum())} | " + " | ".join(f"{100 * acc(m, c)[0]:.1f}" for c in cols) + " | " +
              " | ".join(f"{same(m, x, y):.1f}" for x, y in pairs) + " |")
    m = np.ones(len(answers), bool)
    print(f"| **overall** | {len(answers)} | " +
          " | ".join(f"**{100 * acc(m, c)[0]:.2f}** +/- {100 * acc(m, c)[1]:.2f}" for c in cols) + " | " +
          " | ".join(f"**{same(m, x, y):.1f}**" for x, y in pairs) + " |")
    # a near-chance model mostly expresses a preference among the letters: show it beside the answer key's
    share = lambda v: " / ".join(f"{100 * float(np.mean(v == i)):.1f}" for i in range(4))  # noqa: E731
    print(f"\nletters chosen, % A / B / C / D: answer key {share(answers)}; " +
          "; ".join(f"{'tqlm ' + c if c != 'llama.cpp' else c} {share(preds[c])}" for c in cols))


if __name__ == "__main__":
    main()
