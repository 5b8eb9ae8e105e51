#!/usr/bin/env bash
# Start the chat page on the corpus (set-up and ingestion included): ./start.sh [--port 7860] [--host 127.0.0.1]
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/wbl-assistant serve "$@"
