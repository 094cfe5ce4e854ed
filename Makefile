# wa-gateway front door. Make only installs Debian packages and calls Bazel;
# all building happens in Bazel (see WORKSPACE, BUILD files, bazel/).
#
#   make run      install what is missing, build the production binary
#                 (--config=release: optimised, hardened), start the service
#   make test     install what is missing, build, run every test, plainly and
#                 under ASan + UBSan (ends with "N passed, N failed")
#   make install  the production binary, a systemd unit and its user

BAZEL ?= bazel
# Extra flags for the service in `make run`, e.g. make run ARGS="--port 8080"
ARGS ?=
# make install: where things go (DESTDIR for staging)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
SYSUSERSDIR ?= /etc/sysusers.d
DESTDIR ?=
# The production binary: what `make run` starts, `make install` installs and
# `make bench` measures (debug and sanitizer builds stay behind make test,
# make build and make asan).
RELEASE_BIN = "$$($(BAZEL) info --config=release bazel-bin)/server/wa-gateway"

.PHONY: all deps build run demo test test-quick asan release install install-files fuzz soak bench clean format help

all: build

help:
	@echo "make run | test | build | asan | release | install | fuzz | bench | format | clean"

deps:
	@bazel/install-deps.sh test

build: deps
	$(BAZEL) build //...

run:
	@bazel/install-deps.sh build
	$(BAZEL) build --config=release //server:wa-gateway
	exec $(RELEASE_BIN) $(ARGS)

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

# The production binary, the systemd unit (dist/wa-gateway.service.in) and
# the service's user (dist/wa-gateway.sysusers).
install: release
	$(MAKE) install-files BIN=$(RELEASE_BIN)

install-files:
	@test -x "$(BIN)" || { echo "install-files: set BIN to a wa-gateway binary" >&2; exit 1; }
	install -D -m 0755 "$(BIN)" "$(DESTDIR)$(BINDIR)/wa-gateway"
	install -d -m 0755 "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(SYSUSERSDIR)"
	sed 's|@BINDIR@|$(BINDIR)|g' dist/wa-gateway.service.in >"$(DESTDIR)$(UNITDIR)/wa-gateway.service"
	chmod 0644 "$(DESTDIR)$(UNITDIR)/wa-gateway.service"
	install -m 0644 dist/wa-gateway.sysusers "$(DESTDIR)$(SYSUSERSDIR)/wa-gateway.conf"
	@echo "installed; then: systemd-sysusers; put settings (API_KEY=...) in /etc/wa-gateway/env (mode 0600);"
	@echo "systemctl daemon-reload; systemctl enable --now wa-gateway"

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
	@tests/bench/sessions_bench.sh
	@tests/bench/webhooks_bench.sh
	@tests/bench/cluster_bench.sh

# libFuzzer targets (clang), FUZZ_SECONDS each (default 60). Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	@bazel/install-deps.sh fuzz
	@bazel/fuzz.sh $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	$(BAZEL) clean
