#!/bin/bash
# Runs `bazel test` over the given targets (default //...) and ends with one
# line "N passed, N failed[, N skipped]" counted from Bazel's per-target
# results. A build error counts as a failure. Exits non-zero unless every
# test passed. Usage: bazel/run-tests.sh [bazel test flags] [targets]
set -u -o pipefail
BAZEL=${BAZEL:-bazel}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

args=("$@")
has_target=0
for a in "${args[@]+"${args[@]}"}"; do
    case "$a" in //* | :*) has_target=1 ;; esac
done
[ "$has_target" -eq 1 ] || args+=("//...")

"$BAZEL" test --keep_going --color=no --curses=no "${args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# Lines of the summary look like: //pkg:target   (cached) PASSED in 0.1s
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|INCOMPLETE|REMOTE FAILURE|NO STATUS)' "$log")
skipped=$(grep -cE '^//[^ ]+ +(\(cached\) )?SKIPPED' "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    # build error or bazel failure before any test ran
    failed=1
fi
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
    exit 1
fi
exit 0
