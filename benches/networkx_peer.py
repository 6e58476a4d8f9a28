"""Peer for `cargo bench -p sparsenet-analysis --bench analysis`: the same analysis in networkx.

For plain, res, dense and sparse (base 2) blocks of depth N: build the DAG, count paths
x_0 -> x_N exactly by DP in topological order (Python ints), and compute all-pairs shortest
path lengths (networkx.all_pairs_shortest_path_length), consuming every pair. Prints the median
of the repeats, in seconds, as JSON lines.
"""
import json
import statistics
import sys
import time

import networkx as nx


def offsets(name, n):
    if name == "plain":
        return [1]
    if name in ("res", "dense"):
        return list(range(1, n + 1))
    out, p = [], 1
    while p <= n:
        out.append(p)
        p *= 2
    return out


def analyse(n):
    total_paths = {}
    for name in ("plain", "res", "dense", "sparse"):
        g = nx.DiGraph()
        g.add_nodes_from(range(n + 1))
        for layer in range(1, n + 1):
            for o in offsets(name, n):
                if o <= layer:
                    g.add_edge(layer - o, layer)
        count = {0: 1}
        for v in nx.topological_sort(g):
            c = count.get(v, 0)
            for w in g.successors(v):
                count[w] = count.get(w, 0) + c
        total_paths[name] = count[n]
        worst, pairs, hops = 0, 0, 0
        for _, dist in nx.all_pairs_shortest_path_length(g):
            for d in dist.values():
                if d > 0:
                    worst = max(worst, d)
                    pairs += 1
                    hops += d
    return total_paths


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--once":
        # One analysis at the given depth, for timing the whole process (import included).
        analyse(int(sys.argv[2]))
        return
    for n, repeats in ((100, 5), (1000, int(sys.argv[1]) if len(sys.argv) > 1 else 3)):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            analyse(n)
            times.append(time.perf_counter() - t)
        print(json.dumps({"peer": "networkx " + nx.__version__, "depth": n,
                          "median_s": statistics.median(times), "repeats": repeats}))


if __name__ == "__main__":
    main()
