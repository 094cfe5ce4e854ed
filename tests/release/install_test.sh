#!/bin/bash
# Issue 13 point 8: `make install` (its install-files step, with a binary
# given) lays out the binary, a systemd unit and a sysusers entry; the unit
# passes `systemd-analyze verify` (no warning at all) and its sandboxing
# rates as "OK" or better in `systemd-analyze security --offline` (own user,
# NoNewPrivileges, ProtectSystem=strict, StateDirectory, ...). No running
# systemd is needed. Before: there was no install target and no unit.
set -u
R="${TEST_SRCDIR}/wa_gateway"
T="${TEST_TMPDIR:-$(mktemp -d)}/root"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (bazel/install-deps.sh test installs systemd)"

out=$(make -C "$R" -f "$R/Makefile" install-files BIN="$R/server/wa-gateway" DESTDIR= \
    PREFIX="$T/usr/local" UNITDIR="$T/etc/systemd/system" SYSUSERSDIR="$T/etc/sysusers.d" 2>&1) ||
    fail "make install-files: $out"
unit="$T/etc/systemd/system/wa-gateway.service"
[ -x "$T/usr/local/bin/wa-gateway" ] || fail "binary not installed"
[ -f "$unit" ] || fail "unit not installed"
[ "$(stat -c %a "$unit")" = 644 ] || fail "unit mode $(stat -c %a "$unit")"
grep -qx "ExecStart=$T/usr/local/bin/wa-gateway" "$unit" || fail "ExecStart: $(grep ExecStart "$unit")"
grep -qx 'u wa-gateway - "wa-gateway service" /var/lib/wa-gateway' "$T/etc/sysusers.d/wa-gateway.conf" ||
    fail "sysusers entry"
for want in User=wa-gateway NoNewPrivileges=yes ProtectSystem=strict StateDirectory=wa-gateway \
    StateDirectoryMode=0700 UMask=0077 DATA_DIR=/var/lib/wa-gateway LimitCORE=0 \
    CapabilityBoundingSet= PrivateTmp=yes ProtectHome=yes; do
    grep -q -- "$want" "$unit" || fail "the unit lacks $want"
done

v=$(systemd-analyze verify "$unit" 2>&1)
[ $? -eq 0 ] && [ -z "$v" ] || fail "systemd-analyze verify: $v"

s=$(systemd-analyze security --offline=yes "$unit" 2>&1)
level=$(echo "$s" | sed -n 's/.*Overall exposure level for wa-gateway.service: \([0-9.]*\).*/\1/p')
[ -n "$level" ] || fail "no exposure level: $(echo "$s" | tail -3)"
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "exposure level $level (want <= 2.0, OK)"
echo "exposure level $level"
echo PASS
