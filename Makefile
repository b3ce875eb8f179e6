# mccom — one Makefile.
#
#   make            build build/release/{mccom,mccom-test}
#   make run        install missing packages, build, run the main job on the default model
#   make test       install, build (normal + ASan/UBSan), run every test in both builds
#   make bench      benchmarks (markdown tables)
#   make eval       the evaluation report docs/eval.md (a fixed subset; 13 minutes here)
#   make fuzz       libFuzzer builds of the fuzz targets (clang), each run for FUZZ_SECONDS
#   make models PRESET=cpu-small   the model factory end to end (tools/train/factory.sh all)
#
# Variables: BUILD (output dir), SAN=1 (AddressSanitizer + UndefinedBehaviorSanitizer).

BUILD   ?= build/release
CC      ?= cc
SAN     ?= 0
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g -pthread -fno-plt -Iinclude $(WARN)
ifeq ($(SAN),1)
  OPT   := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
  OPT   := -O2
endif
CFLAGS_ALL := $(CFLAGS_BASE) $(OPT) $(CFLAGS)
LDFLAGS_ALL := -pthread $(filter -fsanitize=%,$(OPT)) $(LDFLAGS)
LDLIBS_ALL  := -lm -ldl $(shell cat scripts/link-libs.txt 2>/dev/null) $(LDLIBS)

# ISA-specific kernels live in their own files; everything else is built for baseline x86-64.
ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c) $(wildcard fuzz/fuzz_*.c))
# Each bench/bench_*.c is a program of its own: build/release/bench_*.
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/%,$(BENCH_SRC))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ  := $(call obj,$(LIB_SRC))
CLI_OBJ  := $(call obj,$(CLI_SRC))
TEST_OBJ := $(call obj,$(TEST_SRC))

.PHONY: all run test test-only deps bench fuzz clean oracle tools gpu-tools llama-server print-cflags models \
        bench-repos eval
all: $(BUILD)/mccom $(BUILD)/mccom-test $(BENCH_BIN)

$(BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(ISA_AVX2) -MMD -MP -c $< -o $@
$(BUILD)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(ISA_AVX512) -MMD -MP -c $< -o $@
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libmccom.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mccom: $(CLI_OBJ) $(BUILD)/libmccom.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libmccom.a $(LDLIBS_ALL)

# Tests link the library's objects directly (not the archive) so that every
# module's self-registered tests and code are present.
$(BUILD)/mccom-test: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $(TEST_OBJ) $(LIB_OBJ) $(LDLIBS_ALL)

$(BUILD)/bench_%: $(BUILD)/obj/bench/bench_%.o $(BUILD)/libmccom.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# ---- test and bench tools (not part of libmccom) ----------------------------------
# mccom-oracle: llama.cpp as a reference, linked against the prebuilt libllama that
# scripts/setup-npm.sh installs; the rpath is relative so the repository can move.
LLAMA_BINS := third_party/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
LLAMA_INC  := -isystem third_party/llama.cpp/include -isystem third_party/llama.cpp/ggml/include
ORACLE     := build/oracle/mccom-oracle
oracle: $(ORACLE)
$(ORACLE): tools/oracle/oracle.c
	@test -f $(LLAMA_BINS)/libllama.v0.5.0.so -a -f third_party/llama.cpp/include/llama.h || \
	    { echo "oracle: llama.cpp is not installed; run scripts/setup-npm.sh" >&2; exit 1; }
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 $(LLAMA_INC) -o $@ $< -L$(LLAMA_BINS) \
	    -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so \
	    -Wl,-rpath,'$$ORIGIN/../../$(LLAMA_BINS)' -ldl -pthread

# mkmodel: random-initialised GGUF models of any shape (uses libmccom's GGUF writer).
# Built from the release library (make with the default BUILD) into build/tools.
# cmplogits: mccom's logits on a GGUF against a reference file (the factory's check step).
MKMODEL := build/tools/mkmodel
CMPLOGITS := build/tools/cmplogits
# mkexamples: retrieval-formatted training examples for the factory (docs/training.md).
MKEXAMPLES := build/tools/mkexamples
tools: $(MKMODEL) $(CMPLOGITS) $(MKEXAMPLES)
$(MKMODEL): tools/mkmodel/mkmodel.c build/release/libmccom.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -o $@ $< build/release/libmccom.a $(LDLIBS_ALL)
$(MKEXAMPLES): tools/mkexamples/mkexamples.c build/release/libmccom.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -o $@ $< build/release/libmccom.a $(LDLIBS_ALL)
# gpu-tools: mkexamples and mktok (tokenize) linked statically against the tokenizer, for
# the one-shot GPU run (tools/train/gpu-run.sh), whose machine lacks mccom's libraries.
GPU_TOOLS := build/gpu-tools/mkexamples build/gpu-tools/mktok
gpu-tools: $(GPU_TOOLS)
build/gpu-tools/mkexamples: tools/mkexamples/mkexamples.c build/release/libmccom.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -static -o $@ $< build/release/libmccom.a -lutf8proc -lm
build/gpu-tools/mktok: tools/mktok/mktok.c build/release/libmccom.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -static -o $@ $< build/release/libmccom.a -lutf8proc -lm
$(CMPLOGITS): tools/cmplogits/cmplogits.c build/release/libmccom.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -o $@ $< build/release/libmccom.a $(LDLIBS_ALL)

# llama-server: llama.cpp's own OpenAI-compatible server, built from the source that
# node-llama-cpp ships (the remote client's end-to-end peer). Cached by commit.
llama-server:
	@scripts/build-llama-server.sh

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/obj/*/*/*.d)

deps:
	@scripts/setup.sh

# The main job on the default model.
run: deps
	@$(MAKE) --no-print-directory all
	@MCCOM=$(BUILD)/mccom scripts/run-demo.sh

test: deps bench-repos
	@scripts/build-llama-server.sh
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/release all tools oracle
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/asan SAN=1 all
	@$(MAKE) --no-print-directory test-only

# Run the suites without installing or rebuilding. Both suites always run;
# the combined verdict is the last line.
test-only:
	@echo "== normal build =="; \
	MC_BIN=build/release/mccom build/release/mccom-test -j $(JOBS) | tee build/test-release.log; r1=$${PIPESTATUS[0]}; \
	echo "== ASan+UBSan build =="; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	MC_TEST_TIMEOUT_SCALE=4 MC_BIN=build/asan/mccom build/asan/mccom-test -j $(JOBS) | tee build/test-asan.log; r2=$${PIPESTATUS[0]}; \
	scripts/sum-tests.sh build/test-release.log build/test-asan.log; \
	test $$r1 -eq 0 -a $$r2 -eq 0

print-cflags:
	@echo $(CC) $(CFLAGS_ALL)

bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all tools oracle
	@scripts/bench.sh

fuzz:
	@scripts/fuzz.sh

# The model factory (docs/training.md): corpus, vocabulary, training, export, convert,
# quantize into build/models; resumable (each finished step leaves a stamp).
PRESET ?= cpu-small
models:
	@$(MAKE) --no-print-directory BUILD=build/release all tools
	MCCOM=build/release/mccom tools/train/factory.sh all $(PRESET)
# ---- evaluation (docs/eval.md) ------------------------------------------------------
# The benchmark (RepoEval's format) and its repositories, recreated from Debian packages.
BENCH_DIR   ?= ../shared/bench
BENCH_REPOS ?= build/bench-repos
bench-repos:
	@scripts/fetch-bench-repos.sh $(BENCH_DIR) $(BENCH_REPOS)

# The fixed subset: the first EVAL_PER_REPO tasks of each of the 8 repositories in each
# split (line, api, stmt: 240 tasks with 10), every mode (the copy tier's copy, slm+copy and
# cascade-no-copy included), tau calibrated on 4 repositories (biopython, breezy, dask,
# mne) and reported on the other 4; the simulated user reacts in 500 ms (reported apart
# from latency). 13 minutes on this 2-core machine with the CPU pair before the copy modes,
# which add about one small-model pass per task; EVAL_FLAGS=--full runs every task
# (EVAL_PER_REPO= then), EVAL_FLAGS=--no-copy the modes without tier 0. Resumes in EVAL_OUT.
EVAL_SLM      ?= models/mccom-cpu-small-q8_0.gguf
EVAL_LLM      ?= models/mccom-cpu-large-q8_0.gguf
EVAL_PER_REPO ?= 10
EVAL_OUT      ?= build/eval
EVAL_FLAGS    ?=
eval: deps bench-repos
	@for f in $(EVAL_SLM) $(EVAL_LLM); do test -f $$f || { echo "eval: $$f is missing: train the CPU pair (docs/training.md) or pass EVAL_SLM=FILE.gguf EVAL_LLM=FILE.gguf" >&2; exit 1; }; done
	@$(MAKE) --no-print-directory -j$(JOBS) all
	$(BUILD)/mccom eval --bench $(BENCH_DIR)/line.jsonl --bench $(BENCH_DIR)/api.jsonl \
	    --bench $(BENCH_DIR)/stmt.jsonl $(if $(EVAL_PER_REPO),--per-repo $(EVAL_PER_REPO)) \
	    --repos $(BENCH_REPOS) --slm $(EVAL_SLM) --llm $(EVAL_LLM) --reaction-ms 500 \
	    --out $(EVAL_OUT) --report docs/eval.md $(EVAL_FLAGS)

clean:
	rm -rf build

SHELL := /bin/bash
