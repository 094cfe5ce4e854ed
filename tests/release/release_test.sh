#!/bin/bash
# Issue 13 point 8: what users run is the production build. `make run`
# (dry-run) builds //server:wa-gateway with --config=release and starts
# that binary (before: the fastbuild debug binary), and .bazelrc's release
# configuration is optimised and hardened: -O2, _FORTIFY_SOURCE=2, the
# strong stack protector, stack clash and control-flow protection, PIE and
# full RELRO (-z relro -z now). The HTTP benchmark measures the same binary.
set -u
R="${TEST_SRCDIR}/wa_gateway"
fail() { echo "FAIL: $*" >&2; exit 1; }

run=$(make -n -f "$R/Makefile" -C "$R" run BAZEL=bazel 2>&1) || fail "make -n run: $run"
echo "$run" | grep -q -- "bazel build --config=release //server:wa-gateway" ||
    fail "make run does not build --config=release: $run"
echo "$run" | grep -qE '^exec "\$\(bazel info --config=release bazel-bin\)/server/wa-gateway"' ||
    fail "make run does not start the release binary: $run"
echo "$run" | grep -qE "bazel build //server|exec ./bazel-bin/" && fail "make run still uses the default build: $run"

rc="$R/.bazelrc"
for flag in "--compilation_mode=opt" "--copt=-O2" "--copt=-D_FORTIFY_SOURCE=2" \
    "--copt=-fstack-protector-strong" "--copt=-fstack-clash-protection" \
    "--copt=-fcf-protection=full" "--copt=-fPIE" "--linkopt=-pie" "--linkopt=-Wl,-z,relro,-z,now"; do
    grep -qxF -- "build:release $flag" "$rc" || fail ".bazelrc release config lacks $flag"
done

# the benchmark builds and measures that configuration
grep -q -- '--config=release //server:wa-gateway' "$R/tests/bench/http_bench.sh" ||
    fail "the HTTP benchmark does not measure the release build"
echo PASS
