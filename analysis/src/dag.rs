//! Arbitrary DAG blocks: read from an edge list or Graphviz DOT, or generated at random
//! (Erdős–Rényi, Barabási–Albert, Watts–Strogatz, each turned into a DAG by node order, as in
//! Xie et al. 2019, "Exploring randomly wired neural networks"), validated, and written back.
//!
//! A DAG block has nodes `0 … N`: node 0 is the block input, node `N` the block's output (its
//! last layer), and every other node a layer. An edge `j → ℓ` means layer `ℓ` aggregates
//! `x_j`. Nodes are numbered in a topological order (every edge goes from a lower to a higher
//! number), every node is reachable from the input and reaches the output; anything else is
//! rejected with a message saying what is wrong. A layer aggregates its sources newest first
//! (highest number first), the order the offset patterns use.
//!
//! Generated graphs get the input and output of Xie et al.: the `n` random nodes become layers
//! `1 … n`, the input feeds every layer without a predecessor and the output (node `n + 1`)
//! aggregates every layer without a successor.

use petgraph::graph::{DiGraph, NodeIndex};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

use crate::block_graph::BlockGraph;
use crate::GraphError;

/// Most nodes a DAG block may have.
pub const MAX_DAG_NODES: usize = 1_000_000;
/// Most edges a DAG block may have.
pub const MAX_DAG_EDGES: usize = 20_000_000;

/// A validated DAG block: for each node, the nodes it aggregates, newest first. Read back
/// from JSON (e.g. a checkpoint's description) it is validated again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawDag")]
pub struct BlockDag {
    sources: Vec<Vec<usize>>,
}

/// The serialised form, validated into a [`BlockDag`].
#[derive(serde::Deserialize)]
struct RawDag {
    sources: Vec<Vec<usize>>,
}

impl TryFrom<RawDag> for BlockDag {
    type Error = GraphError;
    fn try_from(r: RawDag) -> Result<Self, GraphError> {
        if r.sources.len() > MAX_DAG_NODES {
            return Err(dag_err("too many nodes"));
        }
        let edges: Vec<(usize, usize)> = r
            .sources
            .iter()
            .enumerate()
            .flat_map(|(l, s)| s.iter().map(move |&j| (j, l)))
            .collect();
        BlockDag::from_edges(Some(r.sources.len()), &edges)
    }
}

fn dag_err(msg: impl Into<String>) -> GraphError {
    GraphError::Dag(msg.into())
}

impl BlockDag {
    /// A block from its edges `(j, ℓ)`, validated. `nodes` fixes the node count (else the
    /// largest number + 1).
    pub fn from_edges(nodes: Option<usize>, edges: &[(usize, usize)]) -> Result<Self, GraphError> {
        let n = nodes.unwrap_or_else(|| edges.iter().map(|e| e.0.max(e.1) + 1).max().unwrap_or(0));
        if n < 2 {
            return Err(dag_err(
                "a block needs an input (node 0) and at least one layer: give at least one edge `0 1`",
            ));
        }
        if n > MAX_DAG_NODES || edges.len() > MAX_DAG_EDGES {
            return Err(dag_err(format!(
                "{n} nodes and {} edges: this tool takes at most {MAX_DAG_NODES} nodes and {MAX_DAG_EDGES} edges",
                edges.len()
            )));
        }
        if let Some(&(j, l)) = edges.iter().find(|e| e.0 >= n || e.1 >= n) {
            return Err(dag_err(format!(
                "edge {j} → {l} names a node beyond the block's {n} nodes (0 … {})",
                n - 1
            )));
        }
        // Cycles first (a cycle is what makes a numbering impossible), then the numbering.
        let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n, edges.len());
        for _ in 0..n {
            g.add_node(());
        }
        for &(j, l) in edges {
            g.add_edge(NodeIndex::new(j), NodeIndex::new(l), ());
        }
        if let Err(c) = petgraph::algo::toposort(&g, None) {
            return Err(dag_err(format!(
                "the graph has a cycle through node {}: a block must be acyclic",
                c.node_id().index()
            )));
        }
        if let Some(&(j, l)) = edges.iter().find(|e| e.0 > e.1) {
            return Err(dag_err(format!(
                "edge {j} → {l} points backwards: number the nodes in a topological order (every edge from a lower to a higher number; 0 is the block input, {} its output)",
                n - 1
            )));
        }
        let mut sources: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(j, l) in edges {
            sources[l].push(j);
        }
        for (l, s) in sources.iter_mut().enumerate() {
            s.sort_unstable_by(|a, b| b.cmp(a));
            if let Some(w) = s.windows(2).find(|w| w[0] == w[1]) {
                return Err(dag_err(format!("edge {} → {l} appears twice", w[0])));
            }
        }
        let d = BlockDag { sources };
        d.check_reachability()?;
        Ok(d)
    }

    fn check_reachability(&self) -> Result<(), GraphError> {
        let n = self.nodes();
        // Forward from 0: nodes are topologically numbered, so one pass in order suffices.
        let mut from_input = vec![false; n];
        from_input[0] = true;
        for l in 1..n {
            from_input[l] = self.sources[l].iter().any(|&j| from_input[j]);
        }
        let lost: Vec<usize> = (1..n).filter(|&l| !from_input[l]).collect();
        if !lost.is_empty() {
            return Err(dag_err(format!(
                "{} cannot be reached from the block input 0: give each layer a path from 0",
                list(&lost)
            )));
        }
        let mut to_output = vec![false; n];
        to_output[n - 1] = true;
        for l in (1..n).rev() {
            if to_output[l] {
                for &j in &self.sources[l] {
                    to_output[j] = true;
                }
            }
        }
        let dead: Vec<usize> = (0..n - 1).filter(|&l| !to_output[l]).collect();
        if !dead.is_empty() {
            return Err(dag_err(format!(
                "{} {} not reach the block output {}: every layer must feed the output (the highest-numbered node)",
                list(&dead),
                if dead.len() == 1 { "does" } else { "do" },
                n - 1
            )));
        }
        Ok(())
    }

    /// Parse an edge list: one edge `j ℓ` per line (whitespace or a comma between), `#` starts
    /// a comment. `file` names the text in errors.
    pub fn parse_edge_list(text: &str, file: &str) -> Result<Self, GraphError> {
        let mut edges = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .collect();
            let parsed: Vec<Option<usize>> = parts.iter().map(|p| p.parse().ok()).collect();
            match parsed.as_slice() {
                [Some(j), Some(l)] => edges.push((*j, *l)),
                _ => {
                    return Err(dag_err(format!(
                        "{file} line {}: '{line}' is not an edge: write two node numbers `j ℓ` (layer ℓ aggregates x_j)",
                        i + 1
                    )))
                }
            }
        }
        if edges.is_empty() {
            return Err(dag_err(format!(
                "{file}: no edges (one `j ℓ` per line, e.g. `0 1`)"
            )));
        }
        Self::from_edges(None, &edges).map_err(|e| dag_err(format!("{file}: {}", inner(&e))))
    }

    /// Parse the Graphviz DOT subset that describes a DAG of numbered nodes: `digraph … { 0 -> 1;
    /// 1 -> 2 -> 3; 4; }`, with attributes in `[…]` and comments (`//`, `#`, `/* */`) ignored.
    pub fn parse_dot(text: &str, file: &str) -> Result<Self, GraphError> {
        let body = strip_dot_comments(text);
        let open = body.find('{');
        let close = body.rfind('}');
        let (Some(open), Some(close)) = (open, close) else {
            return Err(dag_err(format!(
                "{file}: not a DOT graph: expected `digraph {{ 0 -> 1; … }}`"
            )));
        };
        if !body[..open].contains("digraph") {
            return Err(dag_err(format!(
                "{file}: a block is directed: write `digraph {{ … }}`, not `graph`"
            )));
        }
        let mut inner_text = String::new();
        let mut depth = 0;
        for c in body[open + 1..close].chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ if depth == 0 => inner_text.push(c),
                _ => {}
            }
        }
        let mut edges = Vec::new();
        let mut max_node = 0;
        for stmt in inner_text.split([';', '\n']) {
            let stmt = stmt.trim();
            if stmt.is_empty() || stmt.contains('=') {
                continue; // attribute statements (rankdir=LR, node [..] leftovers)
            }
            if stmt == "node" || stmt == "edge" || stmt == "graph" {
                continue;
            }
            let ids: Vec<&str> = stmt.split("->").map(str::trim).collect();
            let mut nums = Vec::new();
            for id in &ids {
                let id = id.trim_matches('"');
                match id.parse::<usize>() {
                    Ok(v) => nums.push(v),
                    Err(_) => {
                        return Err(dag_err(format!(
                            "{file}: '{stmt}': node names must be numbers 0 … N (0 the block input, N its output)"
                        )))
                    }
                }
            }
            for &v in &nums {
                max_node = max_node.max(v);
            }
            for w in nums.windows(2) {
                edges.push((w[0], w[1]));
            }
        }
        if edges.is_empty() {
            return Err(dag_err(format!(
                "{file}: no edges (e.g. `digraph {{ 0 -> 1; }}`)"
            )));
        }
        Self::from_edges(Some(max_node + 1), &edges)
            .map_err(|e| dag_err(format!("{file}: {}", inner(&e))))
    }

    /// Read a file: DOT when it ends in `.dot`/`.gv` or starts with `digraph`/`strict`, else
    /// an edge list.
    pub fn parse_file(text: &str, file: &str) -> Result<Self, GraphError> {
        let head = text.trim_start();
        if file.ends_with(".dot")
            || file.ends_with(".gv")
            || head.starts_with("digraph")
            || head.starts_with("strict")
        {
            Self::parse_dot(text, file)
        } else {
            Self::parse_edge_list(text, file)
        }
    }

    /// Number of nodes `N + 1`.
    pub fn nodes(&self) -> usize {
        self.sources.len()
    }

    /// Number of layers `N` (the output is layer `N`).
    pub fn depth(&self) -> usize {
        self.nodes() - 1
    }

    /// The nodes layer `ℓ` aggregates, newest first (empty for the input).
    pub fn sources(&self, l: usize) -> &[usize] {
        &self.sources[l]
    }

    /// A stable 64-bit fingerprint of the wiring (FNV-1a over the source lists), so that two
    /// blocks of equal size get different names.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for s in &self.sources {
            for &j in s.iter().chain(std::iter::once(&usize::MAX)) {
                for b in (j as u64).to_le_bytes() {
                    h ^= b as u64;
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        h
    }

    /// Number of edges ("connections").
    pub fn edges(&self) -> usize {
        self.sources.iter().map(Vec::len).sum()
    }

    /// The edges `(j, ℓ)` by target, then newest source first.
    pub fn edge_list(&self) -> Vec<(usize, usize)> {
        self.sources
            .iter()
            .enumerate()
            .flat_map(|(l, s)| s.iter().map(move |&j| (j, l)))
            .collect()
    }

    /// The block as an edge list file (what [`BlockDag::parse_edge_list`] reads).
    pub fn to_edge_list(&self) -> String {
        let mut s = format!(
            "# DAG block: {} nodes (0 = input, {} = output), {} edges; `j l` = layer l aggregates x_j\n",
            self.nodes(),
            self.depth(),
            self.edges()
        );
        for (j, l) in self.edge_list() {
            s.push_str(&format!("{j} {l}\n"));
        }
        s
    }

    /// The block as Graphviz DOT (what [`BlockDag::parse_dot`] reads).
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph block {\n  rankdir=LR;\n");
        for (j, l) in self.edge_list() {
            s.push_str(&format!("  {j} -> {l};\n"));
        }
        s.push_str("}\n");
        s
    }

    /// The block as a petgraph DAG (node weight = node number, edge weight = slot).
    pub fn graph(&self) -> BlockGraph {
        let mut g = BlockGraph::with_capacity(self.nodes(), self.edges());
        for i in 0..self.nodes() {
            g.add_node(i);
        }
        for (l, s) in self.sources.iter().enumerate() {
            for (slot, &j) in s.iter().enumerate() {
                g.add_edge(NodeIndex::new(j), NodeIndex::new(l), slot);
            }
        }
        g
    }

    /// A generated block: `n` random nodes of model `model` (seeded), plus the input and output.
    pub fn random(model: RandomModel, n: usize, seed: u64) -> Result<Self, GraphError> {
        model.check(n)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Undirected edges among 0..n, oriented from the lower to the higher number.
        let raw: Vec<(usize, usize)> = match model {
            RandomModel::ErdosRenyi { p } => {
                // Batagelj & Brandes (2005): jump straight to the next pair that gets an edge
                // (geometric gaps), so the work is the edges drawn, not the n²/2 pairs.
                let mut e = Vec::new();
                if p >= 1.0 {
                    for v in 1..n {
                        e.extend((0..v).map(|u| (u, v)));
                    }
                } else if p > 0.0 {
                    let log_q = (1.0 - p).ln();
                    let (mut v, mut u) = (1usize, 0usize);
                    loop {
                        let r: f64 = rng.gen();
                        let gap = ((1.0 - r).ln() / log_q).floor();
                        // Pairs (u, v) in order: u from 0 to v − 1, then the next v.
                        let mut skip = if gap.is_finite() && gap < (n * n) as f64 {
                            gap as usize
                        } else {
                            n * n
                        };
                        while v < n && u + skip >= v {
                            skip -= v - u;
                            u = 0;
                            v += 1;
                        }
                        if v >= n {
                            break;
                        }
                        u += skip;
                        e.push((u, v));
                        u += 1;
                        if u == v {
                            u = 0;
                            v += 1;
                        }
                    }
                }
                e
            }
            RandomModel::BarabasiAlbert { m } => {
                let mut e = Vec::new();
                let mut targets: Vec<usize> = (0..m).collect();
                let mut repeated: Vec<usize> = Vec::new();
                for v in m..n {
                    for &t in &targets {
                        e.push((t, v));
                    }
                    repeated.extend_from_slice(&targets);
                    repeated.extend(std::iter::repeat_n(v, m));
                    // m distinct targets, chosen with probability proportional to degree.
                    let mut next: Vec<usize> = Vec::with_capacity(m);
                    while next.len() < m {
                        let t = *repeated.choose(&mut rng).expect("non-empty after one step");
                        if !next.contains(&t) {
                            next.push(t);
                        }
                    }
                    targets = next;
                }
                e
            }
            RandomModel::WattsStrogatz { k, p } => {
                let mut adj = vec![std::collections::BTreeSet::new(); n];
                for i in 0..n {
                    for j in 1..=k / 2 {
                        let t = (i + j) % n;
                        adj[i].insert(t);
                        adj[t].insert(i);
                    }
                }
                for j in 1..=k / 2 {
                    for i in 0..n {
                        let t = (i + j) % n;
                        if rng.gen::<f64>() < p && adj[i].contains(&t) {
                            let w = rng.gen_range(0..n);
                            if w != i && !adj[i].contains(&w) {
                                adj[i].remove(&t);
                                adj[t].remove(&i);
                                adj[i].insert(w);
                                adj[w].insert(i);
                            }
                        }
                    }
                }
                let mut e = Vec::new();
                for (i, s) in adj.iter().enumerate() {
                    for &t in s {
                        if i < t {
                            e.push((i, t));
                        }
                    }
                }
                e
            }
        };
        // Layers 1..=n; input 0; output n + 1.
        let mut has_in = vec![false; n];
        let mut has_out = vec![false; n];
        let mut edges: Vec<(usize, usize)> = Vec::with_capacity(raw.len() + n);
        for &(u, v) in &raw {
            has_out[u] = true;
            has_in[v] = true;
            edges.push((u + 1, v + 1));
        }
        for v in 0..n {
            if !has_in[v] {
                edges.push((0, v + 1));
            }
            if !has_out[v] {
                edges.push((v + 1, n + 1));
            }
        }
        Self::from_edges(Some(n + 2), &edges)
    }
}

fn inner(e: &GraphError) -> String {
    match e {
        GraphError::Dag(m) => m.clone(),
        other => other.to_string(),
    }
}

fn list(v: &[usize]) -> String {
    let shown: Vec<String> = v.iter().take(8).map(|x| x.to_string()).collect();
    let more = if v.len() > 8 {
        format!(" and {} more", v.len() - 8)
    } else {
        String::new()
    };
    if v.len() == 1 {
        format!("node {}", shown[0])
    } else {
        format!("nodes {}{more}", shown.join(", "))
    }
}

fn strip_dot_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else if rest.starts_with("//") || rest.starts_with('#') {
            rest = rest.find('\n').map_or("", |i| &rest[i..]);
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// A random-graph model (`er:p=0.1`, `ba:m=2`, `ws:k=4,p=0.25`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RandomModel {
    /// Erdős–Rényi: each pair joined with probability `p`.
    ErdosRenyi {
        /// Edge probability.
        p: f64,
    },
    /// Barabási–Albert: each new node attaches to `m` earlier ones, preferring high degree.
    BarabasiAlbert {
        /// Edges per new node.
        m: usize,
    },
    /// Watts–Strogatz: a ring where each node joins its `k` nearest, each edge rewired with
    /// probability `p`.
    WattsStrogatz {
        /// Ring neighbours (even).
        k: usize,
        /// Rewiring probability.
        p: f64,
    },
}

impl RandomModel {
    /// Parse `er:p=P`, `ba:m=M` or `ws:k=K,p=P`.
    pub fn parse(s: &str) -> Result<Self, GraphError> {
        let usage = "give er:p=0.2, ba:m=2 or ws:k=4,p=0.25";
        let (kind, params) = s.split_once(':').unwrap_or((s, ""));
        let mut p = None;
        let mut m = None;
        let mut k = None;
        for kv in params.split(',').filter(|x| !x.trim().is_empty()) {
            let (key, val) = kv.split_once('=').ok_or_else(|| {
                dag_err(format!(
                    "random graph '{s}': '{kv}' is not key=value; {usage}"
                ))
            })?;
            let bad = || {
                dag_err(format!(
                    "random graph '{s}': {key}={val} is not a number; {usage}"
                ))
            };
            match key.trim() {
                "p" => p = Some(val.trim().parse::<f64>().map_err(|_| bad())?),
                "m" => m = Some(val.trim().parse::<usize>().map_err(|_| bad())?),
                "k" => k = Some(val.trim().parse::<usize>().map_err(|_| bad())?),
                other => {
                    return Err(dag_err(format!(
                        "random graph '{s}': unknown parameter '{other}'; {usage}"
                    )))
                }
            }
        }
        let need = |what: &str| dag_err(format!("random graph '{s}' needs {what}; {usage}"));
        let model = match kind.trim() {
            "er" => RandomModel::ErdosRenyi {
                p: p.ok_or_else(|| need("p"))?,
            },
            "ba" => RandomModel::BarabasiAlbert {
                m: m.ok_or_else(|| need("m"))?,
            },
            "ws" => RandomModel::WattsStrogatz {
                k: k.ok_or_else(|| need("k"))?,
                p: p.ok_or_else(|| need("p"))?,
            },
            other => {
                return Err(dag_err(format!(
                    "unknown random graph model '{other}'; {usage}"
                )))
            }
        };
        if let RandomModel::ErdosRenyi { p } | RandomModel::WattsStrogatz { p, .. } = model {
            if !(0.0..=1.0).contains(&p) {
                return Err(dag_err(format!(
                    "random graph '{s}': p = {p} is not a probability in [0, 1]"
                )));
            }
        }
        Ok(model)
    }

    /// The edges a graph of `n` nodes is expected to have before the input and output are
    /// wired (ER `p·n(n−1)/2`, BA `m·(n−m)`, WS `n·k/2`).
    pub fn expected_edges(&self, n: usize) -> f64 {
        let n = n as f64;
        match *self {
            RandomModel::ErdosRenyi { p } => p * n * (n - 1.0) / 2.0,
            RandomModel::BarabasiAlbert { m } => m as f64 * (n - m as f64),
            RandomModel::WattsStrogatz { k, .. } => n * (k / 2) as f64,
        }
    }

    fn check(&self, n: usize) -> Result<(), GraphError> {
        if n == 0 || n + 2 > MAX_DAG_NODES {
            return Err(dag_err(format!(
                "{n} random nodes: give 1 to {}",
                MAX_DAG_NODES - 2
            )));
        }
        // Refuse before drawing (and allocating) what the block limit would refuse after;
        // the input and output add at most 2n edges.
        let expected = self.expected_edges(n);
        if expected + 2.0 * n as f64 > MAX_DAG_EDGES as f64 {
            return Err(dag_err(format!(
                "{self} on {n} nodes gives about {expected:.0} edges; this tool takes at most {MAX_DAG_EDGES} edges: use fewer nodes or a sparser model"
            )));
        }
        match *self {
            RandomModel::BarabasiAlbert { m } if m == 0 || m >= n => {
                Err(dag_err(format!("ba:m={m} needs 1 ≤ m < nodes ({n})")))
            }
            RandomModel::WattsStrogatz { k, .. } if k == 0 || k % 2 == 1 || k >= n => Err(dag_err(
                format!("ws:k={k} needs an even k with 2 ≤ k < nodes ({n})"),
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for RandomModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RandomModel::ErdosRenyi { p } => write!(f, "er:p={p}"),
            RandomModel::BarabasiAlbert { m } => write!(f, "ba:m={m}"),
            RandomModel::WattsStrogatz { k, p } => write!(f, "ws:k={k},p={p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_lists_and_dot_are_read_and_checked() {
        let d = BlockDag::parse_edge_list("# a diamond\n0 1\n0 2\n1 3\n2,3\n", "d.edges").unwrap();
        assert_eq!((d.nodes(), d.edges(), d.depth()), (4, 4, 3));
        assert_eq!(d.sources(3), &[2, 1]);
        let again = BlockDag::parse_dot(&d.to_dot(), "d.dot").unwrap();
        assert_eq!(again, d);
        assert_eq!(
            BlockDag::parse_edge_list(&d.to_edge_list(), "x").unwrap(),
            d
        );
        let dot = "/* c */ digraph g { rankdir=LR; node [shape=box]; 0 -> 1 -> 2 [color=red]; // x\n 0 -> 2; }";
        let g = BlockDag::parse_dot(dot, "g.dot").unwrap();
        assert_eq!(g.edge_list(), vec![(0, 1), (1, 2), (0, 2)]);

        let err = |t: &str| BlockDag::parse_edge_list(t, "f").unwrap_err().to_string();
        assert!(
            err("0 1\n1 2\n2 1\n").contains("cycle"),
            "{}",
            err("0 1\n1 2\n2 1\n")
        );
        assert!(err("0 2\n2 1\n1 3\n").contains("points backwards"));
        assert!(err("0 1\n0 1\n").contains("twice"));
        assert!(
            err("0 1\n2 3\n1 3\n").contains("node 2 cannot be reached"),
            "{}",
            err("0 1\n2 3\n1 3\n")
        );
        assert!(
            err("0 1\n0 2\n1 3\n").contains("node 2 does not reach"),
            "{}",
            err("0 1\n0 2\n1 3\n")
        );
        assert!(err("0 x\n").contains("line 1"));
        assert!(err("# nothing\n").contains("no edges"));
        assert!(err("3 3\n").contains("cycle"));
        let e = BlockDag::parse_dot("graph { 0 -- 1 }", "u.dot")
            .unwrap_err()
            .to_string();
        assert!(e.contains("directed"), "{e}");
        let e = BlockDag::parse_dot("digraph { a -> b }", "n.dot")
            .unwrap_err()
            .to_string();
        assert!(e.contains("numbers"), "{e}");
    }

    #[test]
    fn erdos_renyi_draws_each_pair_with_probability_p() {
        // The gaps method must give the binomial count of edges among the n(n−1)/2 pairs:
        // mean p·pairs, sd √(p(1−p)·pairs); checked within 5 sd over several seeds.
        let (n, p) = (2000usize, 0.01);
        let pairs = (n * (n - 1) / 2) as f64;
        let sd = (p * (1.0 - p) * pairs).sqrt();
        let mut total = 0.0;
        for seed in 0..4 {
            let d = BlockDag::random(RandomModel::ErdosRenyi { p }, n, seed).unwrap();
            // Edges among the layers (those not from the input or to the output).
            let inner = d
                .edge_list()
                .iter()
                .filter(|&&(j, l)| j != 0 && l != n + 1)
                .count() as f64;
            assert!(
                (inner - p * pairs).abs() < 5.0 * sd,
                "seed {seed}: {inner} edges"
            );
            total += inner;
        }
        assert!((total / 4.0 - p * pairs).abs() < 5.0 * sd / 2.0);
        // p = 1 joins every pair; p = 0 none (the layers hang between input and output).
        let full = BlockDag::random(RandomModel::ErdosRenyi { p: 1.0 }, 30, 1).unwrap();
        assert_eq!(full.edges(), 30 * 29 / 2 + 2);
        let empty = BlockDag::random(RandomModel::ErdosRenyi { p: 0.0 }, 30, 1).unwrap();
        assert_eq!(empty.edges(), 60);
    }

    #[test]
    fn graphs_over_the_edge_limit_are_refused_before_they_are_drawn() {
        let t = std::time::Instant::now();
        for (m, n) in [
            (RandomModel::ErdosRenyi { p: 1.0 }, 100_000),
            (RandomModel::BarabasiAlbert { m: 50 }, 999_000),
            (RandomModel::WattsStrogatz { k: 100, p: 0.1 }, 999_000),
        ] {
            let e = BlockDag::random(m, n, 1).unwrap_err().to_string();
            assert!(
                e.contains("edges") && e.contains(&MAX_DAG_EDGES.to_string()),
                "{e}"
            );
        }
        // Refused at once, not after drawing (a drawn 5·10⁹-edge graph would take minutes).
        assert!(t.elapsed().as_secs() < 5);
    }

    #[test]
    fn random_models_are_seeded_and_valid() {
        for model in ["er:p=0.3", "ba:m=2", "ws:k=4,p=0.25"] {
            let m = RandomModel::parse(model).unwrap();
            assert_eq!(m.to_string(), model);
            let a = BlockDag::random(m, 32, 3).unwrap();
            assert_eq!(a, BlockDag::random(m, 32, 3).unwrap(), "{model}: seeded");
            assert_ne!(
                a,
                BlockDag::random(m, 32, 4).unwrap(),
                "{model}: seed matters"
            );
            assert_eq!(a.nodes(), 34);
        }
        // BA: every node after the first m attaches to m earlier ones.
        let ba = BlockDag::random(RandomModel::BarabasiAlbert { m: 2 }, 20, 1).unwrap();
        for l in 3..=20 {
            assert!(
                ba.sources(l).iter().filter(|&&j| j >= 1).count() == 2,
                "layer {l}"
            );
        }
        // WS without rewiring is the ring lattice: 20·4/2 = 40 undirected edges.
        let ws = BlockDag::random(RandomModel::WattsStrogatz { k: 4, p: 0.0 }, 20, 1).unwrap();
        let inner = ws
            .edge_list()
            .iter()
            .filter(|e| e.0 >= 1 && e.1 <= 20)
            .count();
        assert_eq!(inner, 40);
        for bad in ["ba", "ws:k=3,p=0.1", "er:p=2", "xx:p=1", "er:q=1"] {
            let r = RandomModel::parse(bad).and_then(|m| BlockDag::random(m, 10, 1));
            assert!(r.is_err(), "{bad}");
        }
    }
}
