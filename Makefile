# wa-gateway front door. Make only installs Debian packages and calls Bazel;
# all building happens in Bazel (see WORKSPACE, BUILD files, bazel/).
#
#   make run    install what is missing, build, start the service
#   make test   install what is missing, build, run every test, plainly and
#               under ASan + UBSan (ends with "N passed, N failed")

BAZEL ?= bazel
# Extra flags for the service in `make run`, e.g. make run ARGS="--port 8080"
ARGS ?=

.PHONY: all deps build run demo test test-quick asan release fuzz soak bench clean format help

all: build

help:
	@echo "make run | test | build | asan | release | fuzz | format | clean"

deps:
	@bazel/install-deps.sh test

build: deps
	$(BAZEL) build //...

run:
	@bazel/install-deps.sh build
	$(BAZEL) build //server:wa-gateway
	exec ./bazel-bin/server/wa-gateway $(ARGS)

# The whole flow without a phone: the fake WhatsApp server + the gateway.
demo:
	@bazel/install-deps.sh build
	@bazel/demo.sh

test: deps
	@bazel/run-tests.sh

# Only the plain run, or only the sanitizer run (make test does both).
test-quick: deps
	@WAGW_TEST_CONFIGS=default bazel/run-tests.sh

asan: deps
	@WAGW_TEST_CONFIGS=asan bazel/run-tests.sh

release:
	@bazel/install-deps.sh build
	$(BAZEL) build --config=release //server:wa-gateway

# The fault storm for SOAK_SECONDS (default 600) with SOAK_KILLS SIGKILLs (100).
SOAK_SECONDS ?= 600
SOAK_KILLS ?= 100
soak: deps
	$(BAZEL) test //tests/e2e:storm_test --test_output=streamed --nocache_test_results \
		--test_timeout=$$(( $(SOAK_SECONDS) + 300 )) \
		--test_env=STORM_SECONDS=$(SOAK_SECONDS) --test_env=STORM_KILLS=$(SOAK_KILLS)

# Benchmarks (tests/bench): results printed and written under docs/bench/.
bench:
	@bazel/install-deps.sh bench
	@tests/bench/http_bench.sh
	@tests/bench/fanout_bench.sh
	@tests/bench/footprint_bench.sh

# libFuzzer targets (clang), FUZZ_SECONDS each (default 60). Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	@bazel/install-deps.sh fuzz
	@bazel/fuzz.sh $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	$(BAZEL) clean
