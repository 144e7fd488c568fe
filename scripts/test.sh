#!/usr/bin/env bash
# THE test command (README and .ci/run call exactly `bash scripts/test.sh`).
# Installs what the tests need (the Tansu test broker, cached), then runs the
# format check, clippy, the build of every binary, and every test, including the
# end-to-end tests that start Tansu and the real binaries on loopback.
#
#   IDS_DATASETS   real datasets for the data-driven tests
#                  (default: ../shared/datasets from the repository root)
#   TANSU_BIN      a Tansu binary to use instead of installing one
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

step() { printf '\n==> %s\n' "$*"; }

step "test broker (Tansu 0.6.0)"
if [ -z "${TANSU_BIN:-}" ]; then
    TANSU_BIN="$(bash scripts/install-tansu.sh)"
fi
export TANSU_BIN
echo "TANSU_BIN=${TANSU_BIN}"

if [ -z "${IDS_DATASETS:-}" ] && [ -d "${ROOT}/../shared/datasets" ]; then
    IDS_DATASETS="$(cd "${ROOT}/../shared/datasets" && pwd)"
fi
export IDS_DATASETS="${IDS_DATASETS:-${ROOT}/../shared/datasets}"
echo "IDS_DATASETS=${IDS_DATASETS}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# --- deploy static checks (Dockerfile, compose, k8s, dashboards) -----------
# Maintained with deploy/; runs when present.
if [ -f scripts/check-deploy.sh ]; then
    step "deploy static checks"
    bash scripts/check-deploy.sh
fi
# ---------------------------------------------------------------------------

step "cargo build (all binaries, debug)"
# The end-to-end tests run these binaries as separate processes.
cargo build --workspace --bins

step "cargo test"
# The e2e tests start brokers and processes; two test threads keep them from
# starving each other on small CI machines.
cargo test --workspace -- --test-threads="${IDS_TEST_THREADS:-2}"
