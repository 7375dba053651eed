#!/usr/bin/env bash
# Installs everything tqlm needs to build and test: Debian packages and a Python venv with the
# test oracles (mlx, mlx-lm, tokenizers, jinja2, numpy, gguf, llama-cpp-python). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential cmake ninja-build pkg-config
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libpcre2-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev python3-venv)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

VENV=${TQLM_VENV:-.venv}
PY_REQ=scripts/requirements-test.txt
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.req-$(sha1sum "$PY_REQ" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$PY_REQ"
  touch "$stamp"
fi
echo "install-deps: ok"
