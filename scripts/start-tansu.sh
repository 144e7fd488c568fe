#!/usr/bin/env bash
# Runs the Tansu test broker on loopback in the foreground, for manual runs of
# the real binaries (the e2e tests start their own brokers through the harness).
#
# Usage: scripts/start-tansu.sh [--port 9092] [--durable DIR]
#   --port N        listen on 127.0.0.1:N (default 9092)
#   --durable DIR   SQLite (libsql) storage in DIR/tansu.db, survives restarts;
#                   default: in-memory storage (lost on exit)
# Then e.g.: ids-producer --brokers 127.0.0.1:9092 --dataset ../shared/datasets/nsl-kdd/KDDTest+.txt
set -euo pipefail

PORT=9092
DURABLE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --durable) DURABLE="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "start-tansu: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TANSU_BIN="${TANSU_BIN:-$(bash "${ROOT}/scripts/install-tansu.sh")}"
URL="tcp://127.0.0.1:${PORT}"

if [ -n "${DURABLE}" ]; then
    mkdir -p "${DURABLE}"
    cd "${DURABLE}"
    # Tansu resolves sqlite://NAME relative to its working directory.
    ENGINE="sqlite://tansu.db"
else
    ENGINE="memory://tansu/"
fi

echo "start-tansu: ${URL} storage ${ENGINE}${DURABLE:+ in ${DURABLE}}" >&2
exec "${TANSU_BIN}" broker \
    --listener-url "${URL}" \
    --advertised-listener-url "${URL}" \
    --storage-engine "${ENGINE}"
