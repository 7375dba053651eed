#!/usr/bin/env bash
# Installs everything tqlm needs to build and test: Debian packages and a Python venv with the
# test oracles (mlx, mlx-lm, tokenizers, jinja2, numpy, gguf, pytest, llama-cpp-python). Idempotent.
#
# llama-cpp-python (the llama.cpp oracle) has no wheel on PyPI for this platform, so it is compiled here,
# portably: never llama.cpp's native CPU detection (GGML_NATIVE=OFF), never its AMX paths (they crash on the
# default model: issue 9), and its x86 SIMD levels named explicitly from the CPU flags this machine reports
# (AVX2/FMA/F16C always; AVX-512, AVX-512 VNNI/VBMI/BF16 and AVX-VNNI where present), so llama.cpp runs its
# fast, correct paths in speed comparisons. The wheel is built with pip's cache off into
# .cache/wheels/<version>-<hash of the CMake flags>/, and the venv's stamp covers the flags: a wheel built for
# another CPU or with other flags is never reused. The flags are recorded in $VENV/llama-cpp-build.txt, which
# the oracle tests print when llama.cpp crashes.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential cmake ninja-build pkg-config
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libpcre2-dev libfmt-dev libcsv-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 clang-format-14 libclang-rt-14-dev python3-venv
  chromium chromium-driver  # the browser test of the server's web page
  librsvg2-bin              # rsvg-convert: PNG copies of the SVG plots
  libopenmpi-dev openmpi-bin)  # the pipeline across hosts (tqlm under mpirun)

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
LLAMA_CPP_PY_VERSION=0.3.36   # the oracle's version: bench results and docs name it

# --- llama.cpp build flags: explicit ISA levels from /proc/cpuinfo, AMX and native detection off ---------
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ "$cpu_flags" == *" $f "* ]] || return 1; done; }
onoff() { if has "$@"; then echo ON; else echo OFF; fi; }
LLAMA_CMAKE_ARGS=(
  -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  -DGGML_AVX="$(onoff avx)" -DGGML_AVX2="$(onoff avx2)" -DGGML_FMA="$(onoff fma)"
  -DGGML_F16C="$(onoff f16c)" -DGGML_BMI2="$(onoff bmi2)"
  -DGGML_AVX512="$(onoff avx512f avx512cd avx512vl avx512dq avx512bw)"
  -DGGML_AVX512_VBMI="$(onoff avx512f avx512vbmi)"
  -DGGML_AVX512_VNNI="$(onoff avx512f avx512_vnni)"
  -DGGML_AVX512_BF16="$(onoff avx512f avx512_bf16)"
  -DGGML_AVX_VNNI="$(onoff avx_vnni)"
  -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
)
llama_flags_hash=$(printf '%s\n' "$LLAMA_CPP_PY_VERSION" "${LLAMA_CMAKE_ARGS[@]}" | sha1sum | cut -c1-12)
WHEEL_DIR=.cache/wheels/llama-cpp-python-$LLAMA_CPP_PY_VERSION-$llama_flags_hash

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.req-$(cat "$PY_REQ" | sha1sum | cut -c1-8)-llama-$llama_flags_hash"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$PY_REQ"
  if ! ls "$WHEEL_DIR"/llama_cpp_python-"$LLAMA_CPP_PY_VERSION"-*.whl >/dev/null 2>&1; then
    echo "install-deps: compiling llama-cpp-python $LLAMA_CPP_PY_VERSION (the llama.cpp oracle; about 10-15 min on 2 cores)"
    echo "install-deps:   CMAKE_ARGS=${LLAMA_CMAKE_ARGS[*]}"
    mkdir -p "$WHEEL_DIR.tmp" .cache
    log=.cache/llama-cpp-python-build.log
    if ! CMAKE_ARGS="${LLAMA_CMAKE_ARGS[*]}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$VENV/bin/pip" wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_CPP_PY_VERSION" -w "$WHEEL_DIR.tmp" >"$log" 2>&1; then
      tail -n 40 "$log"; echo "install-deps: llama-cpp-python build failed (full log: $log)" >&2; exit 1
    fi
    rm -rf "$WHEEL_DIR"; mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
  fi
  # its Python dependencies from PyPI, then the wheel built above (never one from pip's cache)
  "$VENV/bin/pip" install -q typing-extensions diskcache numpy jinja2
  "$VENV/bin/pip" install -q --force-reinstall --no-deps --no-index --find-links "$WHEEL_DIR" \
    "llama-cpp-python==$LLAMA_CPP_PY_VERSION"
  {
    echo "llama-cpp-python $LLAMA_CPP_PY_VERSION, built by scripts/install-deps.sh"
    echo "CMAKE_ARGS: ${LLAMA_CMAKE_ARGS[*]}"
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  } >"$VENV/llama-cpp-build.txt"
  rm -f "$VENV"/.req-*
  touch "$stamp"
fi
echo "install-deps: ok"
