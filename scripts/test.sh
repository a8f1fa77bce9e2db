#!/usr/bin/env bash
# Install the test dependencies and run the test suite (the slow embedded-model tests are opt-in: pass -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-dev} bash scripts/setup-env.sh
exec .venv/bin/python -m pytest -m "${PYTEST_MARK:-not slow}" -q "$@"
