#!/usr/bin/env bash
# Run the whole test suite (set-up included): ./test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest "$@"
