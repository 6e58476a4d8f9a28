#!/usr/bin/env bash
# Runs every notebook headless (and proves a panicking one is caught). Installs what it needs
# on first use: the evcxr Jupyter kernel (cargo install, ~11 minutes on 2 cores; an installed
# one is reused) and Jupyter's notebook runner from PyPI.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v evcxr_jupyter >/dev/null; then
  echo "installing evcxr_jupyter (first run only)"
  cargo install --locked evcxr_jupyter
fi
if ! python3 -c "import nbclient, nbformat, jupyter_client" 2>/dev/null; then
  python3 -m pip install --quiet nbclient nbformat jupyter_client ipykernel
fi
jupyter kernelspec list 2>/dev/null | grep -q '^ *rust ' || evcxr_jupyter --install >/dev/null
python3 run_notebooks.py --expect-failure tests/panics.ipynb
python3 run_notebooks.py claims.ipynb parameters.ipynb training.ipynb experiments.ipynb
