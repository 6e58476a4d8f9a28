"""__TITLE__

A PyTorch module for a network trained by sparsenet, written by `export --format pytorch`.
Only torch (and Python's standard library) is imported. The network is the checkpoint's DAG,
embedded below: every node names its op and its inputs, and `Net` builds one torch module per
node with parameters, at the place its name says, so that `Net().state_dict()` has exactly the
checkpoint's keys and shapes.

    import torch
    from __STEM__ import Net, load_weights, normalize
    net = Net().eval()
    net.load_state_dict(load_weights("__STEM__.safetensors"), strict=True)
    logits = net(normalize(images))      # images: N x __C__ x __H__ x __W__ floats in [0, 1]

(`safetensors.torch.load_file` reads the weights file as well; `load_weights` needs no package.)
The network was trained on inputs normalised per channel with the training set's statistics,
MEAN and STD below; `normalize` applies them to images scaled to [0, 1].

    python3 __STEM__.py --check __STEM__.sample.safetensors   # logits equal sparsenet's?
    python3 __STEM__.py --to-pt __STEM__.pt                   # the state dict for torch.load

Network: __SPEC__
Trained on: __DATA__ (epoch __EPOCH__ of __EPOCHS__)
"""
import json
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# The network and its input, filled in by `export`. In sparsenet's template (src/export/module.py)
# it is None, which keeps the template an importable module: benches/torch_peer.py builds every
# network from a DAG with this file's `Net(dag)`, so there is one interpreter of our DAG in torch.
_EXPORTED = None  # __EXPORTED__
DAG = _EXPORTED["dag"] if _EXPORTED else None
MEAN = _EXPORTED["mean"] if _EXPORTED else None
STD = _EXPORTED["std"] if _EXPORTED else None
INPUT_SHAPE = tuple(_EXPORTED["input"]) if _EXPORTED else None
CLASSES = _EXPORTED["classes"] if _EXPORTED else None


class Net(nn.Module):
    """A DAG (the exported one by default) as torch modules, interpreted node by node in
    topological order."""

    def __init__(self, dag=None):
        super().__init__()
        self._dag = dag if dag is not None else DAG
        # Each node's module (None for ops without parameters), looked up by position in
        # forward rather than by name on every pass.
        self._by_node = []
        for n in self._dag["nodes"]:
            self._by_node.append(None)
            op = n["op"]
            kind = op["op"]
            if kind == "conv":
                m = nn.Conv2d(op["in_ch"], op["out_ch"], op["kernel"], op["stride"], op["padding"],
                              groups=op.get("groups", 1), bias=op.get("bias", False))
            elif kind == "batch_norm":
                m = nn.BatchNorm2d(op["channels"], eps=1e-5, momentum=0.1)
            elif kind == "linear":
                m = nn.Linear(op["in_features"], op["out_features"])
            else:
                continue
            self._place(n["name"], m)
            self._by_node[-1] = m

    def _place(self, name, module):
        parent = self
        *path, leaf = name.split(".")
        for part in path:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        parent.add_module(leaf, module)

    def forward(self, x):
        nodes = self._dag["nodes"]
        acts = [None] * len(nodes)
        acts[self._dag["input"]] = x
        for i, n in enumerate(nodes):
            op = n["op"]
            kind = op["op"]
            ins = [acts[j] for j in n["inputs"]]
            if kind == "input":
                continue
            if kind in ("conv", "batch_norm"):
                y = self._by_node[i](ins[0])
            elif kind == "linear":
                y = self._by_node[i](torch.flatten(ins[0], 1))
            elif kind == "relu":
                y = F.relu(ins[0])
            elif kind == "concat":
                y = torch.cat(ins, 1)
            elif kind == "sum":
                y = ins[0]
                for t in ins[1:]:
                    y = y + t
            elif kind == "shortcut_a":
                s, out = op["stride"], op["out_ch"]
                t = ins[0][:, :, ::s, ::s]
                extra = out - t.shape[1]
                y = F.pad(t, (0, 0, 0, 0, extra // 2, extra - extra // 2))
            elif kind == "avg_pool":
                y = F.avg_pool2d(ins[0], op["kernel"], op["stride"])
            elif kind == "max_pool":
                y = F.max_pool2d(ins[0], op["kernel"], op["stride"], op["padding"])
            elif kind == "global_avg_pool":
                y = F.adaptive_avg_pool2d(ins[0], 1)
            elif kind == "mean_join":
                # The plain mean: what ours computes outside training (drop-path is ours alone).
                y = ins[0]
                for t in ins[1:]:
                    y = y + t
                y = y / len(ins)
            elif kind == "dropout":
                # torch's own masks in training (ours are drawn by a rule of their own); the
                # identity in eval mode, as in ours.
                y = F.dropout(ins[0], op["p"], self.training)
            else:
                raise ValueError("unknown op " + kind)
            acts[i] = y
        return torch.flatten(acts[self._dag["output"]], 1)


def normalize(images):
    """Images scaled to [0, 1] (N x C x H x W), normalised as in training."""
    mean = torch.tensor(MEAN, dtype=images.dtype).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean) / std


def load_weights(path):
    """A safetensors file of f32 tensors as a dict of tensors, without the safetensors package."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {t['dtype']}, not F32")
        a, b = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(body[a:b]), dtype=torch.float32).reshape(t["shape"]).clone()
    return out


def _main(argv):
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    weights = os.path.join(here, "__STEM__.safetensors")
    if len(argv) == 2 and argv[0] == "--check":
        net = Net().eval()
        net.load_state_dict(load_weights(weights), strict=True)
        sample = load_weights(argv[1])
        with torch.no_grad():
            got = net(sample["input"]).double()
        want = sample["logits"].double()
        rel = ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()
        same = bool((got.argmax(1) == want.argmax(1)).all())
        print(json.dumps({"images": int(want.shape[0]), "max_rel_err": rel, "same_classes": same,
                          "torch": torch.__version__}))
        return 0 if rel <= 1e-4 and same else 1
    if len(argv) == 2 and argv[0] == "--to-pt":
        torch.save(load_weights(weights), argv[1])
        return 0
    print("usage: python3 __STEM__.py --check SAMPLE.safetensors | --to-pt OUT.pt", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
