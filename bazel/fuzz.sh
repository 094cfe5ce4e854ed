#!/bin/bash
# Builds every libFuzzer target (Bazel targets tagged "fuzzer") with clang and
# runs each for SECONDS (default 60) on a copy of its seed corpus. Crashes are
# written to fuzz-out/<target>/ and make the script fail; add such an input to
# the target's corpus directory so that its _replay test keeps checking it.
# Usage: bazel/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
BAZEL=${BAZEL:-bazel}
# A separate output base: switching the C compiler would otherwise discard
# the gcc build cache.
ob="${XDG_CACHE_HOME:-$HOME/.cache}/wa-gateway-fuzz/$(pwd | md5sum | cut -c1-12)"
mkdir -p "$ob"
bz() { CC=clang "$BAZEL" --output_base="$ob" "$@"; }

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(bz query --noshow_progress 'attr(tags, "fuzzer", //tests/...)' 2>/dev/null)
fi
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets found" >&2; exit 1; }
bz build --config=fuzz --symlink_prefix=/ "${targets[@]}"

status=0
for t in "${targets[@]}"; do
    pkg=${t#//}; pkg=${pkg%%:*}; name=${t##*:}
    bin="$ob/execroot/wa_gateway/bazel-out/k8-fastbuild-fuzz/bin/$pkg/$name"
    [ -x "$bin" ] || bin=$(find "$ob/execroot/wa_gateway/bazel-out" -path "*/bin/$pkg/$name" -type f | head -1)
    work="fuzz-out/$name"
    mkdir -p "$work/corpus" "$work/crashes"
    seeds="$pkg/corpus_$name"
    [ -d "$seeds" ] || seeds="$pkg/corpus"
    [ -d "$seeds" ] && cp -n "$seeds"/* "$work/corpus/" 2>/dev/null || true
    echo "== $t: fuzzing for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/crashes/" "$work/corpus" >"$work/log" 2>&1; then
        echo "!! $t found a crash; see $work/log and $work/crashes/" >&2
        tail -30 "$work/log" >&2
        status=1
    else
        grep -E "^(#[0-9]+|Done)" "$work/log" | tail -1
    fi
done
if [ $status -eq 0 ]; then echo "fuzz: no findings"; fi
exit $status
