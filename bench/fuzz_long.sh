#!/usr/bin/env bash
# Long fuzzing runs (issue 12): each libFuzzer target of `make fuzz` for MINUTES minutes (default 10), one at a
# time, nice'd, then a table of executions and findings per target. The working corpora in build-fuzz/ grow
# from run to run; findings are saved as build-fuzz/NAME-crash-* / -timeout-* / -oom-* (turn each into a
# regression input in tests/fuzz/corpus_NAME/ once fixed).
#
#   bash bench/fuzz_long.sh [MINUTES] [TARGET...]      # e.g. bench/fuzz_long.sh 10 tokenizer request
set -uo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
shift || true
targets=("$@")
[[ ${#targets[@]} == 0 ]] && targets=(safetensors jinja config tokenizer policy request)
build=${BUILD_FUZZ:-build-fuzz}
make fuzz FUZZ_SECONDS=1 FUZZ_TARGETS="${targets[*]}" BUILD_FUZZ="$build" >/dev/null || {
  echo "fuzz_long: make fuzz (build and a 1 s smoke run) failed" >&2
  exit 1
}
printf '%-12s %8s %14s %10s %8s\n' target minutes executions exec/s findings >"$build/fuzz_long.txt"
status=0
for t in "${targets[@]}"; do
  nice -n 10 bash tests/fuzz/run_fuzz.sh "$build" "$t" $((minutes * 60)) >/dev/null
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz_$t.log" | grep -o '[0-9]*$' || echo 0)
  findings=$(ls "$build/$t"-crash-* "$build/$t"-timeout-* "$build/$t"-oom-* "$build/$t"-leak-* 2>/dev/null | wc -l)
  [[ $rc != 0 ]] && status=1
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$build/fuzz_$t.log" | grep -o '[0-9]*$' || echo 0)
  printf '%-12s %8s %14s %10s %8s\n' "$t" "$minutes" "${execs:-0}" "${rate:-0}" "$findings" >>"$build/fuzz_long.txt"
  tail -n 1 "$build/fuzz_long.txt"
done
cat "$build/fuzz_long.txt"
exit $status
