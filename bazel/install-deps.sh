#!/bin/sh
# Installs the Debian packages wa-gateway builds, runs and tests with.
# Idempotent: when every package is already installed it only asks dpkg and
# returns at once; `apt-get update` runs only when something is missing.
# Usage: bazel/install-deps.sh [build|test|fuzz|all]   (default: test)
set -eu

BUILD_PKGS="
bazel-bootstrap bazel-bootstrap-source gcc libc6-dev make pkg-config
libh2o-dev libwslay-dev libuv1-dev libgrpc-dev protobuf-compiler libprotobuf-dev protobuf-c-compiler
libprotobuf-c-dev libyajl-dev libwebsockets-dev libssl-dev
libsignal-protocol-c-dev libqrencode-dev libpng-dev libsqlite3-dev libcurl4-openssl-dev
zlib1g-dev grpc-proto curl ca-certificates libpq-dev
"
TEST_PKGS="
libcmocka-dev python3 python3-grpcio python3-grpc-tools python3-protobuf
zbar-tools openssl procps chromium clang-format systemd postgresql-15
"
FUZZ_PKGS="clang libclang-rt-14-dev"
BENCH_PKGS="wrk nghttp2-client util-linux"

what="${1:-test}"
case "$what" in
build) pkgs="$BUILD_PKGS" ;;
test) pkgs="$BUILD_PKGS $TEST_PKGS" ;;
fuzz) pkgs="$BUILD_PKGS $TEST_PKGS $FUZZ_PKGS" ;;
bench) pkgs="$BUILD_PKGS $TEST_PKGS $BENCH_PKGS" ;;
all) pkgs="$BUILD_PKGS $TEST_PKGS $FUZZ_PKGS $BENCH_PKGS" ;;
*) echo "install-deps: unknown group '$what' (build|test|fuzz|bench|all)" >&2; exit 2 ;;
esac

# node and npm: from Debian only when the machine has none (some images ship
# their own Node.js with npm bundled, which must be left alone)
case "$what" in test | fuzz | bench | all)
    command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm" ;;
esac

missing=""
for p in $pkgs; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *" installed") ;;
    *) missing="$missing $p" ;;
    esac
done

# `buf curl` (npm @bufbuild/buf, a prebuilt binary shipped in the package)
# checks gRPC reflection in the tests, as grpcurl would.
BUF_VERSION=1.75.0
need_buf=0
case "$what" in test | fuzz | bench | all)
    command -v buf >/dev/null 2>&1 || need_buf=1 ;;
esac

install_buf() {
    if [ "$need_buf" -eq 1 ]; then
        echo "install-deps: installing @bufbuild/buf@$BUF_VERSION from npm" >&2
        npm install -g --no-audit --no-fund "@bufbuild/buf@$BUF_VERSION" >/dev/null
    fi
}

if [ -z "$missing" ]; then
    install_buf
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
fi

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
install_buf
echo "install-deps: done" >&2
