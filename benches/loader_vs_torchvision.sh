#!/usr/bin/env bash
# Class-folder loading at 224×224 from JPEG files, sparsenet's loader against torchvision's
# ImageFolder + DataLoader (PIL), same transforms, same number of workers, same run.
# Usage: [PYTHON=/usr/bin/python3] benches/loader_vs_torchvision.sh [IMAGES_PER_CLASS] [WORKERS...]
# The images are written first (by PIL, when there is none yet): 10 classes of 500×375 JPEGs
# (quality 90) of smooth gradients with texture and noise — ImageNet's typical size; not photos.
set -euo pipefail
cd "$(dirname "$0")/.."
per=${1:-100}
shift || true
workers=${*:-1 2}
py=${PYTHON:-/usr/bin/python3}
dir=${LOADER_BENCH_DIR:-target/loader-bench-$per}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
if [ ! -d "$dir/train" ]; then
  "$py" - "$dir" "$per" <<'PY'
import os, sys
import numpy as np
from PIL import Image
root, per = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
yy, xx = np.mgrid[:375, :500]
for c in range(10):
    d = os.path.join(root, "train", f"class{c:02d}")
    os.makedirs(d, exist_ok=True)
    for i in range(per):
        f = rng.uniform(0.005, 0.05, 3)
        base = np.stack([127 + 100 * np.sin(f[k] * xx + f[(k + 1) % 3] * yy + rng.uniform(0, 6)) for k in range(3)], -1)
        img = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(d, f"{i:04d}.jpg"), quality=90)
PY
fi
cargo build --release --bench folder_loader >/dev/null 2>&1
echo "data: $(find "$dir/train" -name '*.jpg' | wc -l) JPEG files, $(du -sh "$dir/train" | cut -f1), in $dir"
for w in $workers; do
  # Each side once to warm the page cache, then measured.
  cargo bench --bench folder_loader -- "$dir" "$w" 64 >/dev/null 2>&1
  cargo bench --bench folder_loader -- "$dir" "$w" 64 2>/dev/null | grep impl
  if "$py" -c "import torchvision, PIL" 2>/dev/null; then
    "$py" benches/imagefolder_peer.py "$dir" "$w" 64 | grep impl
  else
    echo "torchvision/PIL not importable: peer skipped (apt-get install python3-torchvision python3-pil)"
  fi
done
