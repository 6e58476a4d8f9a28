"""PyTorch peer of `benches/train_step.rs`: the same network, built from the same DAG.

Reads the JSON of `sparsenet zoo --model NAME --dag` (so the architecture is not written twice), builds
it as torch modules with the interpreter `sparsenet export` ships (src/export/module.py), and times training steps (forward, cross-entropy, backward, SGD with
Nesterov momentum 0.9, weight decay 1e-4) on random 32x32x3 batches. Prints one JSON line.

usage: python3 benches/torch_peer.py DAG.json --batch 64 --steps 10 --threads 2
       python3 benches/torch_peer.py DAG.json --device cuda --batch 64 --tf32 on
       python3 benches/torch_peer.py DAG.json --device cuda --batch max   (largest power of two
                                                                    from 128 that fits)
       python3 benches/torch_peer.py DAG.json --count   (no timing: build the network, run one
                                                         eval-mode forward pass of 2 images and print
                                                         its trainable parameter count and logits
                                                         shape; tests/torch_parity.rs uses it)
       python3 benches/torch_peer.py DAG.json --latency 7 --threads 2   (batch-1 inference in eval
                                            mode under no_grad, median ms of 7 runs after 2 warm-up
                                            runs: the peer of benches/infer_latency.rs)
On CUDA each step moves the batch from host memory to the GPU (as training does) and the step
time is taken after torch.cuda.synchronize(); peak memory is torch.cuda.max_memory_allocated.
--tf32 sets torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32 (PyTorch's
defaults are cudnn on, matmul off).
"""
import argparse
import importlib.util
import json
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F


# The network is built by the interpreter `sparsenet export --format pytorch` ships (src/export/module.py,
# whose template imports as a module): one description of our DAG in torch, for the peer, the
# parity test and the export alike.
_spec = importlib.util.spec_from_file_location(
    "sparsenet_export_module",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "export", "module.py"))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
DagNet = _module.Net


def time_steps(net, opt, x, y, steps, dev, warmup=2):
    times = []
    for step in range(steps + warmup):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        xb, yb = x.to(dev, non_blocking=False), y.to(dev)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dag")
    ap.add_argument("--batch", default="64", help="a number, or max (CUDA)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tf32", default="default", choices=["default", "on", "off"])
    ap.add_argument("--max-batch", type=int, default=8192)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--count", action="store_true", help="print parameters and logits shape only")
    ap.add_argument("--latency", type=int, default=0, metavar="RUNS", help="time batch-1 inference")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.tf32 != "default":
        torch.backends.cudnn.allow_tf32 = a.tf32 == "on"
        torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
    dag = json.load(open(a.dag))
    inp = dag["nodes"][dag["input"]]["shape"]
    classes = dag["nodes"][dag["output"]]["shape"]["c"]
    if a.count:
        net = DagNet(dag).eval()
        with torch.no_grad():
            logits = net(torch.randn(2, inp["c"], inp["h"], inp["w"]))
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        print(json.dumps({"peer": "pytorch " + torch.__version__, "params": params,
                          "logits_shape": list(logits.shape)}))
        return
    if a.latency:
        # On CUDA each pass moves the image to the device and the logits back, and is timed
        # after synchronising (as gpu-check --latency does).
        net = DagNet(dag).to(dev).eval()
        x = torch.randn(1, inp["c"], inp["h"], inp["w"])
        times = []
        with torch.no_grad():
            for run in range(a.latency + 2):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                net(x.to(dev)).cpu()
                if run >= 2:
                    times.append((time.perf_counter() - t) * 1e3)
        out = {"peer": "pytorch " + torch.__version__, "model": a.name, "device": a.device,
               "threads": a.threads, "median_ms": statistics.median(times)}
        if dev.type == "cuda":
            out["tf32"] = {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
        print(json.dumps(out))
        return

    def run(batch, steps, warmup=a.warmup):
        net = DagNet(dag).to(dev)
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
        x = torch.randn(batch, inp["c"], inp["h"], inp["w"])
        y = torch.randint(0, classes, (batch,))
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        med = time_steps(net, opt, x, y, steps, dev, warmup)
        return net, med

    if a.batch == "max":
        batch, b = 0, 128
        while b <= a.max_batch:
            try:
                run(b, 1, 1)
                batch = b
            except torch.OutOfMemoryError:
                break
            finally:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            b *= 2
    else:
        batch = int(a.batch)
    net, med = run(batch, a.steps)
    params = sum(p.numel() for p in net.parameters())
    out = {"peer": "pytorch " + torch.__version__, "model": a.name, "batch": batch, "device": a.device,
           "params": params, "median_step_s": med, "images_per_sec": batch / med}
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        out["tf32"] = {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    else:
        out["threads"] = a.threads
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
