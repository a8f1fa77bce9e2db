#!/usr/bin/env bash
# Create ./.venv (Python 3.11+) with traitdose and its dependencies. Sourced by demo.sh and test.sh.
# EXTRAS selects optional dependencies (e.g. "embedded,dev"). TORCH_SPEC overrides the torch requirement.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "traitdose needs Python 3.11 or newer")'
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  # Without a GPU, pin the release whose CPU build pip finds locally here; with one, take PyPI's CUDA build.
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    TORCH_SPEC=${TORCH_SPEC:-torch>=2.4}
  else
    TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
  fi
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS:-dev}]"
