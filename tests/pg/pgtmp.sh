#!/bin/bash
# A throwaway PostgreSQL 15 cluster for tests: Debian's postgresql-15 in a
# fresh temporary directory, run by an unprivileged user (the caller, or
# when the caller is root `nobody`, or uid 1000 of a nested user namespace:
# initdb refuses root; see owner_mode), listening on 127.0.0.1 only (its
# Unix socket inside the directory), with password
# authentication for a random password, fsync off (nothing here must
# survive a power cut). Torn down by `stop` (immediate shutdown, directory
# removed).
#
#   pgtmp.sh start      prints two lines: PGTMP_DIR=<dir> and
#                       PGTMP_URL=postgres://wagw:<pw>@127.0.0.1:<port>/wagw
#   pgtmp.sh stop DIR   stops that cluster and removes DIR
#   pgtmp.sh run CMD..  starts a cluster, runs CMD with STORE_TEST_URL set to
#                       its URL, stops it; exits with CMD's status
set -eu -o pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# How the cluster's processes drop root: "self" (not root: run as is),
# "setpriv" (root: as nobody), or "userns" (root inside a user namespace
# where nobody is not mapped, as in Bazel's linux-sandbox: a nested user
# namespace where our uid is seen as 1000, so that initdb and postgres do
# not run as root; the files stay ours outside).
owner_mode() {
    if [ "$(id -u)" -ne 0 ]; then
        echo self
    elif setpriv --reuid=nobody --regid=nogroup --clear-groups -- true 2>/dev/null; then
        echo setpriv
    elif unshare --user --map-user=1000 --map-group=1000 -- true 2>/dev/null; then
        echo userns
    else
        echo "pgtmp: running as root and cannot switch to another user" >&2
        return 1
    fi
}

as_owner() {
    case "$MODE" in
    setpriv) setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@" ;;
    userns) unshare --user --map-user=1000 --map-group=1000 -- "$@" ;;
    *) "$@" ;;
    esac
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
    local dir pw port
    dir=$(mktemp -d /tmp/wagw-pg.XXXXXX)
    chmod 700 "$dir"
    pw=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
    printf '%s\n' "$pw" >"$dir/pw"
    [ "$MODE" = setpriv ] && chown -R nobody:nogroup "$dir"
    if ! as_owner "$PGBIN/initdb" -D "$dir/data" -U wagw --pwfile="$dir/pw" \
        --auth=scram-sha-256 --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf "$dir"
        return 1
    fi
    rm -f "$dir/pw"
    local tries=0
    while :; do
        port=$(free_port)
        if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                -c max_connections=300 -c shared_buffers=64MB" start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            cat "$dir/server.log" >&2 || true
            rm -rf "$dir"
            return 1
        fi
    done
    PGPASSWORD=$pw "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U wagw -d postgres -q \
        -c "CREATE DATABASE wagw" >/dev/null
    echo "PGTMP_DIR=$dir"
    echo "PGTMP_URL=postgres://wagw:$pw@127.0.0.1:$port/wagw"
}

stop() {
    local dir=$1
    case "$dir" in /tmp/wagw-pg.*) ;; *) echo "pgtmp: not a pgtmp directory: $dir" >&2; return 2 ;; esac
    [ -d "$dir/data" ] && as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

MODE=$(owner_mode)
case "${1:-}" in
start) start ;;
stop) stop "${2:?usage: pgtmp.sh stop DIR}" ;;
run)
    shift
    out=$(start)
    dir=$(printf '%s\n' "$out" | sed -n 's/^PGTMP_DIR=//p')
    url=$(printf '%s\n' "$out" | sed -n 's/^PGTMP_URL=//p')
    trap 'stop "$dir"' EXIT INT TERM
    rc=0
    STORE_TEST_URL=$url "$@" || rc=$?
    exit $rc
    ;;
*) echo "usage: pgtmp.sh start | stop DIR | run CMD [ARGS...]" >&2; exit 2 ;;
esac
