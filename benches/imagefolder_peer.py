"""torchvision's ImageFolder + DataLoader with the transforms `folder_loader` applies:
RandomResizedCrop(224), RandomHorizontalFlip, ToTensor, Normalize(ImageNet) — PIL decoding,
`num_workers` worker processes, one pass. Prints one `impl` line.

Usage: python3 benches/imagefolder_peer.py DIR WORKERS BATCH [BATCHES]
"""
import sys
import time

import torch
from torchvision import datasets, transforms

root, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
torch.set_num_threads(1)
tf = transforms.Compose([
    transforms.RandomResizedCrop(224),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
ds = datasets.ImageFolder(root + "/train", tf)
loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                     persistent_workers=False)
start = time.perf_counter()
images = 0
for k, (x, y) in enumerate(loader):
    if limit is not None and k >= limit:
        break
    images += y.shape[0]
secs = time.perf_counter() - start
print(f"impl torchvision workers {workers} batch {batch}: {images} images in {secs:.2f} s = "
      f"{images / secs:.1f} images/s ({images / secs / workers:.1f} per worker; PIL {__import__('PIL').__version__})")
