"""PyTorch peer of `benches/train_step.rs`: the same network, built from the same DAG.

Reads the JSON of `zoo --model NAME --dag` (so the architecture is not written twice), builds
it as torch modules, and times training steps (forward, cross-entropy, backward, SGD with
Nesterov momentum 0.9, weight decay 1e-4) on random 32x32x3 batches. Prints one JSON line.

usage: python3 benches/torch_peer.py DAG.json --batch 64 --steps 10 --threads 2
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class DagNet(nn.Module):
    def __init__(self, dag):
        super().__init__()
        self.dag = dag
        self.mods = nn.ModuleDict()
        for i, n in enumerate(dag["nodes"]):
            op = n["op"]
            key = str(i)
            if op["op"] == "conv":
                self.mods[key] = nn.Conv2d(op["in_ch"], op["out_ch"], op["kernel"], op["stride"], op["padding"], bias=False)
            elif op["op"] == "batch_norm":
                self.mods[key] = nn.BatchNorm2d(op["channels"])
            elif op["op"] == "linear":
                self.mods[key] = nn.Linear(op["in_features"], op["out_features"])

    def forward(self, x):
        nodes = self.dag["nodes"]
        acts = [None] * len(nodes)
        acts[self.dag["input"]] = x
        for i, n in enumerate(nodes):
            op = n["op"]["op"]
            ins = [acts[j] for j in n["inputs"]]
            if op == "input":
                continue
            if op in ("conv", "batch_norm"):
                y = self.mods[str(i)](ins[0])
            elif op == "linear":
                y = self.mods[str(i)](torch.flatten(ins[0], 1))
            elif op == "relu":
                y = F.relu(ins[0])
            elif op == "concat":
                y = torch.cat(ins, 1)
            elif op == "sum":
                y = ins[0]
                for t in ins[1:]:
                    y = y + t
            elif op == "shortcut_a":
                s, out = n["op"]["stride"], n["op"]["out_ch"]
                t = ins[0][:, :, ::s, ::s]
                extra = out - t.shape[1]
                y = F.pad(t, (0, 0, 0, 0, extra // 2, extra - extra // 2))
            elif op == "avg_pool":
                y = F.avg_pool2d(ins[0], n["op"]["kernel"], n["op"]["stride"])
            elif op == "max_pool":
                y = F.max_pool2d(ins[0], n["op"]["kernel"], n["op"]["stride"], n["op"]["padding"])
            elif op == "global_avg_pool":
                y = F.adaptive_avg_pool2d(ins[0], 1)
            else:
                raise ValueError(op)
            acts[i] = y
        return acts[self.dag["output"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dag")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dag = json.load(open(a.dag))
    net = DagNet(dag)
    inp = dag["nodes"][dag["input"]]["shape"]
    classes = dag["nodes"][dag["output"]]["shape"]["c"]
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x = torch.randn(a.batch, inp["c"], inp["h"], inp["w"])
    y = torch.randint(0, classes, (a.batch,))
    net.train()
    times = []
    for step in range(a.steps + 2):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(json.dumps({"peer": "pytorch " + torch.__version__, "model": a.name, "batch": a.batch, "threads": a.threads,
                      "params": params, "median_step_s": med, "images_per_sec": a.batch / med,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
