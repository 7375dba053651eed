# tqlm: `make demo` sets everything up and runs the main job; `make test` sets everything up and runs all tests.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS ?= $(shell nproc)
PY := .venv/bin/python
# libFuzzer targets (tests/fuzz/fuzz_NAME.cpp) and seconds per target: 6 x 25 s, about 2.5 minutes of `make test`.
# Longer runs: bench/fuzz_long.sh.
FUZZ_TARGETS ?= safetensors jinja config tokenizer policy request
FUZZ_SECONDS ?= 25

MODEL ?= models/smollm2-135m-instruct
DEMO_PROMPT ?= In two sentences, why is the sky blue?

.PHONY: all deps build asan fuzz unit unit-asan oracle model test demo clean format

all: build

deps:
	bash scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

asan:
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTQLM_SANITIZE=ON
	cmake --build $(BUILD_ASAN) -j $(JOBS) --target tqlm_unit tqlm

fuzz:
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DTQLM_FUZZ=ON -DTQLM_TESTS=OFF
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	$(PY) tests/fuzz/make_corpus.py $(BUILD_FUZZ)
	for t in $(FUZZ_TARGETS); do bash tests/fuzz/run_fuzz.sh $(BUILD_FUZZ) $$t $(FUZZ_SECONDS) || exit 1; done

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

unit-asan: asan
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

model:
	bash scripts/get-default-model.sh $(MODEL)

oracle: build model
	TQLM_BUILD=$(BUILD) TQLM_BUILD_ASAN=$(BUILD_ASAN) $(PY) -m pytest -q -n 1 tests/oracle

test: deps
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz
	$(MAKE) oracle

demo: deps build model
	$(BUILD)/tqlm inspect $(MODEL)
	$(BUILD)/tqlm generate $(MODEL) --temp 0 --max-tokens 96 -p "$(DEMO_PROMPT)"

format:
	clang-format-14 -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
