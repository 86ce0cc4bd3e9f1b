# The two commands of the README: `make serve` and `make test`. Each does the whole set-up first.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= $(shell nproc)
AUTOGLM := $(BUILD_DIR)/tools/autoglm

.PHONY: all setup configure build test test-unit test-npm serve run clean asan fuzz arm

all: build

setup:
	bash scripts/setup.sh

configure: setup
	cmake --preset $(PRESET) > /dev/null

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	bash scripts/run_tests.sh $(BUILD_DIR)

serve: build
	$(AUTOGLM) serve --host 0.0.0.0 --port 8000

run: build
	$(AUTOGLM) run -p "你好" --max-tokens 16

asan:
	$(MAKE) test PRESET=asan

# libFuzzer targets (tests/fuzz), each for FUZZ_SECONDS (or FUZZ_RUNS executions); FUZZ_TARGETS picks some
# (e.g. "jinja request"). Summary: build/fuzz/summary.json; findings: build/fuzz/findings/<target>/.
FUZZ_SECONDS ?= 60
fuzz: setup
	bash tests/fuzz/run_fuzz.sh --seconds $(FUZZ_SECONDS) $(if $(FUZZ_RUNS),--runs $(FUZZ_RUNS)) $(FUZZ_TARGETS)

# The aarch64 step of `make test` alone: cross-build (preset arm, build/arm) and run the kernel harness, core/ops
# and the tiny-model parity test under qemu (tests/arm/run_arm_tests.sh; AUTOGLM_ARM_BASELINE=0 skips the
# Cortex-A53 pass).
arm: setup
	bash tests/arm/run_arm_tests.sh

clean:
	rm -rf build
