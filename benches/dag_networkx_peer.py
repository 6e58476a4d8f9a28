"""networkx doing what `paths --dag-file` does on a DAG block: the exact number of paths from the
input (node 0) to the output (the highest node) by dynamic programming in topological order, and
the shortest-path statistics over all pairs j < l (one BFS per node).

usage: python3 benches/dag_networkx_peer.py FILE.edges
prints one JSON line: nodes, edges, paths (decimal), gradient max / mean / unreachable, seconds."""
import json
import sys
import time

import networkx as nx


def main(path):
    t0 = time.perf_counter()
    g = nx.DiGraph()
    for line in open(path):
        line = line.split("#")[0].strip()
        if line:
            j, l = map(int, line.replace(",", " ").split())
            g.add_edge(j, l)
    n = max(g.nodes) + 1
    count = {v: 0 for v in g.nodes}
    count[0] = 1
    for v in nx.topological_sort(g):
        for w in g.successors(v):
            count[w] += count[v]
    hist = {}
    reached = 0
    for s in range(n):
        for t, d in nx.single_source_shortest_path_length(g, s).items():
            if t > s:
                hist[d] = hist.get(d, 0) + 1
                reached += 1
    pairs = (n - 1) * n // 2
    total = sum(k * c for k, c in hist.items())
    print(json.dumps({
        "nodes": n, "edges": g.number_of_edges(), "paths": str(count[n - 1]),
        "gradient_max": max(hist), "gradient_mean": total / reached,
        "unreachable": pairs - reached, "seconds": time.perf_counter() - t0,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
