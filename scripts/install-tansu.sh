#!/usr/bin/env bash
# Installs the test broker, Tansu 0.6.0 (an Apache-Kafka-API-compatible broker
# written in Rust), with `cargo install`, into a cache directory that survives
# between runs, and prints the path of the binary on stdout.
#
# Idempotent: when the cached binary exists and runs, nothing is built.
# Features: dynostore (memory:// storage), libsql (sqlite:// durable storage for
# the restart test), postgres (as the project's docs pin them).
#
#   TANSU_ROOT   install root (default ~/.cache/ids-stream/tansu-0.6.0)
#
# Usage: TANSU_BIN="$(bash scripts/install-tansu.sh)"
set -euo pipefail

TANSU_VERSION=0.6.0
TANSU_ROOT="${TANSU_ROOT:-${HOME}/.cache/ids-stream/tansu-${TANSU_VERSION}}"
TANSU_BIN="${TANSU_ROOT}/bin/tansu"

works() {
    [ -x "$1" ] && "$1" --version >/dev/null 2>&1
}

if works "${TANSU_BIN}"; then
    echo "${TANSU_BIN}"
    exit 0
fi

mkdir -p "${TANSU_ROOT}"
echo "install-tansu: building tansu ${TANSU_VERSION} into ${TANSU_ROOT} (first run only; takes a while)" >&2
# Serialise concurrent installs (two CI jobs, or a developer and a test run).
exec 9>"${TANSU_ROOT}.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if ! works "${TANSU_BIN}"; then
    cargo install tansu --version "${TANSU_VERSION}" --locked \
        --features dynostore,postgres,libsql \
        --root "${TANSU_ROOT}" >&2
fi
if ! works "${TANSU_BIN}"; then
    echo "install-tansu: ${TANSU_BIN} does not run after install" >&2
    exit 1
fi
echo "${TANSU_BIN}"
