#!/usr/bin/env bash
# ctest "helm" (tests/helm/tests.cmake): checks of the Helm chart helm/raftkv.
#
#   tests/helm/run.sh
#
# Installs helm (scripts/install-helm.sh) and builds validate-k8s (tests/helm/build-validator.sh)
# into .tools/bin when missing - the first run compiles both (several minutes), later runs
# reuse them - then runs tests/helm/check_chart.py: helm lint --strict, helm template piped to
# the strict validator, assertions on the rendered objects, schema rejections.
# Prints SKIPPED and exits 0 only when Go is not installed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	echo "SKIPPED: go not found (PATH or /usr/local/go/bin): helm and the validator are built with go"
	exit 0
fi

HELM=$("$ROOT/scripts/install-helm.sh")
VALIDATOR=$("$ROOT/tests/helm/build-validator.sh")
echo "helm: $("$HELM" version --short), validator: $VALIDATOR"
export HELM VALIDATOR
exec "${PYTHON3:-/usr/bin/python3}" "$ROOT/tests/helm/check_chart.py"
