#!/usr/bin/env python3
"""Check an ONNX model written by `export --format onnx` against sparsenet's own logits.

Runs the model with onnxruntime on the sample's images (NAME.sample.safetensors: `input`,
already normalised, and our `logits`) and prints one JSON line: the largest difference relative
to the largest logit, and whether every predicted class agrees. Exit 0 when the relative error
is at most 1e-4 and the classes agree, 1 otherwise.

usage: python3 scripts/check-onnx.py NAME.onnx NAME.sample.safetensors
needs: pip install onnxruntime numpy
"""
import json
import struct
import sys

import numpy as np
import onnxruntime as ort


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=np.float32).reshape(t["shape"])
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    sample = load(argv[1])
    session = ort.InferenceSession(argv[0], providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": sample["input"]})
    want = sample["logits"].astype(np.float64)
    got = got.astype(np.float64)
    rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
    same = bool((got.argmax(1) == want.argmax(1)).all())
    print(json.dumps({"images": int(want.shape[0]), "max_rel_err": rel, "same_classes": same,
                      "onnxruntime": ort.__version__}))
    return 0 if rel <= 1e-4 and same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
