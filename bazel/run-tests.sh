#!/bin/bash
# Runs `bazel test --keep_going` over the given targets (default //...) once
# per configuration in WAGW_TEST_CONFIGS (default: "default asan", i.e. a
# plain build and one under AddressSanitizer + UndefinedBehaviorSanitizer),
# and ends with one line "N passed, N failed[, N skipped]" counted from
# Bazel's per-target results over all runs. A build error counts as a failure.
# Exits non-zero unless every test passed.
# Usage: bazel/run-tests.sh [bazel test flags] [targets]
set -u -o pipefail
BAZEL=${BAZEL:-bazel}
CONFIGS=${WAGW_TEST_CONFIGS:-default asan}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

args=("$@")
has_target=0
for a in "${args[@]+"${args[@]}"}"; do
    case "$a" in //* | :*) has_target=1 ;; esac
done
[ "$has_target" -eq 1 ] || args+=("//...")

passed=0 failed=0 skipped=0 status=0
for cfg in $CONFIGS; do
    cfgflag=()
    [ "$cfg" = default ] || cfgflag=("--config=$cfg")
    echo "== bazel test ${cfgflag[*]:-} ${args[*]}"
    "$BAZEL" test --keep_going --color=no --curses=no "${cfgflag[@]+"${cfgflag[@]}"}" \
        "${args[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    # Summary lines look like: //pkg:target   (cached) PASSED in 0.1s
    p=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
    f=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|INCOMPLETE|REMOTE FAILURE|NO STATUS)' "$log")
    s=$(grep -cE '^//[^ ]+ +(\(cached\) )?SKIPPED' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # build error or bazel failure before any test ran
    fi
    [ "$rc" -ne 0 ] && status=1
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
done
# Every C file clang-formatted (.clang-format at the root), counted as one
# more test; only in a git checkout of the whole tree (no targets given).
if [ "$has_target" -eq 0 ] && command -v clang-format >/dev/null 2>&1 &&
    files=$(git ls-files '*.c' '*.h' 2>/dev/null) && [ -n "$files" ]; then
    echo "== clang-format --dry-run --Werror (every tracked .c/.h)"
    # shellcheck disable=SC2086
    if clang-format --dry-run --Werror $files; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        status=1
    fi
fi
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
    exit 1
fi
exit 0
