#!/usr/bin/env bash
# Makes sure a Python with onnxruntime and numpy exists for the ONNX export check
# (scripts/check-onnx.py, tests/export_cli.rs). Uses python3 if it imports both; otherwise
# creates a virtual environment in target/ort-venv (PyPI's onnxruntime wheel, ~20 MB, first
# run only). Prints the interpreter's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
if python3 -c "import onnxruntime, numpy" 2>/dev/null; then
  command -v python3
  exit 0
fi
venv=target/ort-venv
if ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
  echo "installing onnxruntime into $venv (first run only)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet onnxruntime numpy
fi
echo "$PWD/$venv/bin/python"
