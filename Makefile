# The two commands of the README: `make serve` and `make test`. Each does the whole set-up first.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= $(shell nproc)
AUTOGLM := $(BUILD_DIR)/tools/autoglm

.PHONY: all setup configure build test test-unit test-npm serve run clean asan

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

clean:
	rm -rf build
