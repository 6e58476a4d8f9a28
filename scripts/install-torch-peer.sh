#!/usr/bin/env bash
# Makes sure a Python with PyTorch exists for the peer (benches/torch_peer.py) and the parity
# test (tests/torch_parity.rs). Uses `python3` or `/usr/bin/python3` if either imports torch;
# otherwise installs Debian's CPU build (python3-torch, ~200 MB with its dependencies) through
# apt, as root. Prints the interpreter's path on its last line.
#
# For the speed comparisons (benches/train_vs_pytorch.sh, infer_latency.sh) PyPI's wheel is the
# fairer peer (oneDNN kernels, as most users run it): `python3 -m venv /opt/torchpeer &&
# /opt/torchpeer/bin/pip install torch` (~4 GB with its CUDA libraries, which the CPU never loads),
# then PYTHON=/opt/torchpeer/bin/python benches/train_vs_pytorch.sh.
set -euo pipefail
for py in python3 /usr/bin/python3; do
  if "$py" -c "import torch" 2>/dev/null; then
    command -v "$py"
    exit 0
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "error: no Python imports torch and this is not root: install python3-torch (apt) or torch (pip)" >&2
  exit 1
fi
echo "installing python3-torch (Debian, first run only)" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
/usr/bin/python3 -c "import torch" || { echo "error: python3-torch installed but torch does not import" >&2; exit 1; }
echo /usr/bin/python3
