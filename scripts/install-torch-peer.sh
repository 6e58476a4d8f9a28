#!/usr/bin/env bash
# Makes sure a Python with PyTorch and torchvision exists for the peer (benches/torch_peer.py),
# the parity test (tests/torch_parity.rs) and the export test (tests/export_cli.rs, which loads
# our ResNet-50 export into torchvision's). Uses `python3` or `/usr/bin/python3` if either imports
# both; otherwise installs Debian's CPU builds (python3-torch and python3-torchvision, ~200 MB
# with their dependencies) through apt, as root. Prints the interpreter's path on its last line.
#
# For the speed comparisons (benches/train_vs_pytorch.sh, infer_latency.sh) PyPI's wheel is the
# fairer peer (oneDNN kernels, as most users run it): `python3 -m venv /opt/torchpeer &&
# /opt/torchpeer/bin/pip install torch` (~4 GB with its CUDA libraries, which the CPU never loads),
# then PYTHON=/opt/torchpeer/bin/python benches/train_vs_pytorch.sh.
set -euo pipefail
for py in python3 /usr/bin/python3; do
  if "$py" -c "import torch, torchvision" 2>/dev/null; then
    command -v "$py"
    exit 0
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "error: no Python imports torch and torchvision and this is not root: install python3-torch and python3-torchvision (apt), or torch and torchvision (pip)" >&2
  exit 1
fi
echo "installing python3-torch and python3-torchvision (Debian, first run only)" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch python3-torchvision >/dev/null
/usr/bin/python3 -c "import torch, torchvision" || { echo "error: python3-torch and python3-torchvision installed but they do not import" >&2; exit 1; }
echo /usr/bin/python3
