#!/usr/bin/env bash
# The release build of the container images, in ONE place.
#
# deploy/Dockerfile runs this script, and scripts/check-deploy.sh (CI, no Docker engine)
# runs the very same script, so the command line CI exercises is the one the image uses.
# Keep every flag here; do not pass extra arguments from callers.
#   --locked : the image must build from the committed Cargo.lock, nothing newer
#   -p ...   : only the two shipped binaries (and what they depend on)
set -euo pipefail
if [ "$#" -ne 0 ]; then
  echo "deploy/build.sh takes no arguments (the build line must be identical everywhere)" >&2
  exit 64
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
set -x
cargo build --release --locked -p ids-producer -p ids-processor --bins
