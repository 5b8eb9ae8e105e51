#!/usr/bin/env bash
# Create .venv and install wbl-assistant into it. Safe to re-run: it only installs what is missing.
#   scripts/setup.sh          runtime (chat page, CLI, evals)
#   scripts/setup.sh --dev    plus what the tests need (pytest, PDF builder, Playwright, Debian chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build; 2.13.0 is a CPU build on this disk.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU)" >&2
  "${PIP[@]}" install "torch==2.13.0"
fi

extras="eval,openai"
[ "${1:-}" = "--dev" ] && extras="$extras,dev"
stamp=".venv/.wbl-installed-$(sha256sum pyproject.toml | cut -c1-12)-${extras//,/-}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing wbl-assistant[$extras]" >&2
  "${PIP[@]}" install -e ".[$extras]"
  rm -f .venv/.wbl-installed-*
  touch "$stamp"
fi

if [ "${1:-}" = "--dev" ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian chromium for the browser tests" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
