#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time: BUILD_FUZZ NAME SECONDS [extra libFuzzer flags...]
# The working corpus is BUILD_FUZZ/corpus_NAME (seeded by make_corpus.py); the committed corpus
# tests/fuzz/corpus_NAME (seeds and every past crash input) is replayed first. A crash, a leak, an input over
# -timeout seconds or a process over -rss_limit_mb is a finding: the input is saved as BUILD_FUZZ/NAME-crash-*
# (or -timeout-*, -oom-*) and the exit status is non-zero. Used by `make fuzz` and bench/fuzz_long.sh.
set -euo pipefail
build=$1 name=$2 seconds=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
case $name in
  safetensors) max_len=4096 ;;
  config | policy) max_len=8192 ;;
  jinja | request) max_len=16384 ;;
  tokenizer) max_len=32768 ;;
  *) echo "run_fuzz.sh: unknown target '$name'" >&2; exit 2 ;;
esac
flags=(-max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048
       -artifact_prefix="$build/$name-" -print_final_stats=1)
[[ -f $here/$name.dict ]] && flags+=(-dict="$here/$name.dict")
mkdir -p "$build/corpus_$name"
dirs=("$build/corpus_$name")
[[ -d $here/corpus_$name ]] && dirs+=("$here/corpus_$name")
log=$build/fuzz_$name.log
set +e
"$build/fuzz_$name" "${flags[@]}" "$@" "${dirs[@]}" >"$log" 2>&1
rc=$?
set -e
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
echo "fuzz_$name: rc=$rc executions=${execs:-0} seconds=$seconds corpus=$(ls "$build/corpus_$name" | wc -l)"
if [[ $rc != 0 ]]; then
  grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$log" | head -n 20 || true
  tail -n 40 "$log"
fi
exit $rc
