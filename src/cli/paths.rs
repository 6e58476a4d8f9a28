//! The `paths` command: compare plain / res / dense / sparse (and custom) blocks at one depth,
//! check the paper's claims, and sweep the sparse base.

use clap::{Parser, ValueEnum};
use prettytable::{format, Cell, Row, Table};
use std::io::Write;

use sparsenet_analysis::report::{Report, ReportOptions, TopologyAnalysis, HISTOGRAM_DEPTH_LIMIT};
use sparsenet_analysis::topology::{Pattern, Topology, MAX_BLOCK_DEPTH};

use super::args::{parse_in_range, parse_range, parse_usize_list, written};
use super::spec::bad;

/// Largest depth `--format dot` draws (dense has N(N+1)/2 edges; beyond this no drawing is legible).
pub const MAX_DOT_DEPTH: usize = 1_000;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// One JSON object (a stable contract, see README).
    Json,
    /// One CSV row per topology.
    Csv,
    /// The DAGs as Graphviz DOT, one cluster per topology.
    Dot,
}

const ABOUT: &str = "Compare the connectivity of plain, ResNet, DenseNet and SparseNet blocks as graphs, and check the claims of 'Sparsely Aggregated Convolutional Networks' (ECCV 2018) in code.";

const LONG_ABOUT: &str = "\
Compare the connectivity of plain, ResNet, DenseNet and SparseNet blocks as graphs, and check the
claims of 'Sparsely Aggregated Convolutional Networks' (ECCV 2018) in code.

A block of depth N has nodes x_0 (input) .. x_N (outputs of layers 1..N); layer l aggregates
  plain  {l-1}            res    {0..l-1} (sum)     dense  {0..l-1} (concatenation)
  sparse {l - c^k : c^k <= l} (concatenation, newest first)   custom {l - o : o in --offsets}

Quantities:
  nodes           N + 1
  connections     aggregation links (edges); conn/NlgN = connections / (N log2 N)
  paths           exact number of paths x_0 -> x_N (arbitrary precision)
  path lengths    histogram of those paths by number of layers passed: min..max, mode, mean
  gradient path   shortest hop count between x_j and x_l over all pairs j < l: max and mean
                  (for sparse base c it is the base-c digit sum of l - j)
  claims          each claim of the paper, checked at this depth and base (exit 1 if one fails)
  base sweep      sparse blocks of base c: connections, worst/mean gradient path, (c-1)/log2 c

Any DAG block: --dag-file F (edge list `j l` per line, or Graphviz DOT) or --random MODEL
(er:p=0.2, ba:m=2, ws:k=4,p=0.25 with --nodes and --seed) reports the same quantities with
general exact algorithms (path counts and histograms by dynamic programming in node order,
gradient paths by breadth-first search); --format dot / csv print the block as DOT / an edge
list. Example: paths --random ba:m=2 --nodes 32 --seed 3

FractalNet's block of C columns (Larsson et al. 2017: joins merged, no residual link):
--topology fractal --columns C, the same report; --format csv writes it as an edge list for
--dag-file. Example: paths --topology fractal --columns 4

Exit status: 0 when every claim holds, 1 when one fails, 2 for bad input, 3 for an unreadable
file.";

/// Arguments of `paths`.
#[derive(Parser, Debug, Clone)]
#[command(name = "paths", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct PathsArgs {
    /// Layers per block, N (1..=100000).
    #[arg(long, short = 'n', default_value = "100", allow_hyphen_values = true,
          value_parser = |s: &str| parse_in_range(s, "depth", 1, MAX_BLOCK_DEPTH))]
    pub depth: usize,

    /// Base c of the sparse pattern (2..=1000000).
    #[arg(long, short = 'c', default_value = "2", allow_hyphen_values = true,
          value_parser = |s: &str| parse_in_range(s, "base", 2, 1_000_000))]
    pub base: usize,

    /// A custom pattern: comma-separated positive offsets, e.g. 1,2,3,5,8.
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_usize_list(s, "offset").map(OffsetList))]
    pub offsets: Option<OffsetList>,

    /// Only show these topologies (comma-separated: plain,res,dense,sparse,custom); or
    /// `fractal` alone, FractalNet's block of --columns C as a DAG block.
    #[arg(long, value_delimiter = ',')]
    pub topology: Vec<String>,

    /// Columns of --topology fractal (1 to 15).
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| parse_in_range(s, "columns", 1, 15))]
    pub columns: Option<usize>,

    /// Bases of the sweep, inclusive (e.g. 2..16).
    #[arg(long, default_value = "2..16", value_parser = |s: &str| parse_range(s, "bases"))]
    pub bases: (usize, usize),

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Compute path-length histograms even above depth 3000 (they cost O(N²) big additions),
    /// and for a DAG block the histogram and all-pairs gradient statistics whatever their cost.
    #[arg(long)]
    pub force_histograms: bool,

    /// Also draw the figures (path-length and gradient-path distributions, base sweep) as PNG
    /// and SVG into this folder.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,

    /// Analyse this DAG block instead: an edge list (`j l` per line, `#` comments) or Graphviz
    /// DOT (`digraph { 0 -> 1; … }`); node 0 is the block input, the highest node its output.
    #[arg(long, conflicts_with_all = ["random", "offsets", "topology"])]
    pub dag_file: Option<std::path::PathBuf>,

    /// Analyse a random DAG block: er:p=P (Erdős–Rényi), ba:m=M (Barabási–Albert) or
    /// ws:k=K,p=P (Watts–Strogatz), turned into a DAG by node order, with an input feeding every
    /// node without a predecessor and an output aggregating every node without a successor.
    #[arg(long, conflicts_with_all = ["offsets", "topology"])]
    pub random: Option<String>,

    /// Random nodes of --random (the block gets 2 more: input and output).
    #[arg(long, default_value = "32", value_parser = |s: &str| parse_in_range(s, "nodes", 1, 999_998))]
    pub nodes: usize,

    /// Seed of --random.
    #[arg(long, default_value = "0")]
    pub seed: u64,
}

/// A parsed `--offsets` list (a newtype so clap takes the whole list as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetList(pub Vec<usize>);

const KNOWN: [&str; 5] = ["plain", "res", "dense", "sparse", "custom"];

/// Validate arguments and compute the report. Errors are one line for the user.
pub fn build_report(args: &PathsArgs) -> anyhow::Result<Report> {
    let custom = match &args.offsets {
        Some(o) => Some(Pattern::custom(&o.0).map_err(bad)?),
        None => None,
    };
    for t in &args.topology {
        if !KNOWN.contains(&t.as_str()) {
            return Err(bad(format!(
                "unknown topology '{t}': accepted plain, res, dense, sparse, custom"
            )));
        }
        if t == "custom" && custom.is_none() {
            return Err(bad(
                "topology 'custom' needs --offsets, e.g. --offsets 1,2,3,5,8",
            ));
        }
    }
    if args.bases.0 < 2 {
        return Err(bad(format!(
            "bases start at {}: the sparse pattern needs a base of at least 2",
            args.bases.0
        )));
    }
    if args.format == Format::Dot && args.depth > MAX_DOT_DEPTH {
        return Err(bad(format!(
            "depth {} is too large to draw: --format dot accepts depth 1..={MAX_DOT_DEPTH}",
            args.depth
        )));
    }
    let opts = ReportOptions {
        depth: args.depth,
        base: args.base,
        custom,
        bases: args.bases.0..=args.bases.1,
        force_histograms: args.force_histograms,
    };
    Report::compute(&opts).map_err(bad)
}

fn selected<'a>(args: &PathsArgs, report: &'a Report) -> Vec<&'a TopologyAnalysis> {
    report
        .topologies
        .iter()
        .filter(|t| args.topology.is_empty() || args.topology.contains(&t.name))
        .collect()
}

/// The report with only the selected topologies (claims and bases are always complete).
fn filtered(args: &PathsArgs, r: &Report) -> Report {
    let mut out = r.clone();
    out.topologies = selected(args, r).into_iter().cloned().collect();
    out
}

/// A big decimal, abbreviated in tables when long (JSON always has every digit).
fn abbreviate(s: &str) -> String {
    if s.len() <= 60 {
        s.to_string()
    } else {
        format!("{}…{} ({} digits)", &s[..12], &s[s.len() - 6..], s.len())
    }
}

/// Render the report as tables.
pub fn write_tables(args: &PathsArgs, r: &Report, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        w,
        "Blocks of depth N = {} (sparse base {})",
        r.depth, r.base
    )?;
    let mut t = Table::new();
    t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
    t.set_titles(Row::new(
        [
            "topology",
            "nodes",
            "connections",
            "conn/NlgN",
            "paths x0→xN (exact)",
            "path lengths min..max (mode, mean)",
            "grad max",
            "grad mean",
        ]
        .iter()
        .map(|h| Cell::new(h))
        .collect(),
    ));
    for a in selected(args, r) {
        let lengths = match &a.path_length_summary {
            Some(s) => format!("{}..{} ({}, {:.2})", s.min, s.max, s.mode, s.mean),
            None if a.path_length_histogram.is_none() => {
                format!("skipped above N = {HISTOGRAM_DEPTH_LIMIT}")
            }
            None => "no path".into(),
        };
        let mut grad_max = a.gradient_path_max.to_string();
        if a.gradient.unreachable > 0 {
            grad_max.push_str(&format!(" ({} pairs unreachable)", a.gradient.unreachable));
        }
        t.add_row(Row::new(vec![
            Cell::new(&a.pattern),
            Cell::new_align(&a.nodes.to_string(), format::Alignment::RIGHT),
            Cell::new_align(&a.connections.to_string(), format::Alignment::RIGHT),
            Cell::new_align(
                &format!("{:.3}", a.connections_per_n_log2_n),
                format::Alignment::RIGHT,
            ),
            Cell::new_align(
                &abbreviate(&a.paths.to_str_radix(10)),
                format::Alignment::RIGHT,
            ),
            Cell::new(&lengths),
            Cell::new_align(&grad_max, format::Alignment::RIGHT),
            Cell::new_align(
                &format!("{:.3}", a.gradient_path_mean),
                format::Alignment::RIGHT,
            ),
        ]));
    }
    t.print(w)?;

    writeln!(w, "\nClaims")?;
    for cl in &r.claims {
        let mark = if cl.holds { "✓" } else { "✗" };
        writeln!(w, " {mark} {}: {}", cl.name, cl.statement)?;
        writeln!(w, "     {}", cl.detail)?;
    }

    writeln!(
        w,
        "\nBase sweep at N = {} (sparse pattern of base c)",
        r.depth
    )?;
    let mut b = Table::new();
    b.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
    b.set_titles(Row::new(
        [
            "c",
            "connections",
            "grad max",
            "grad mean",
            "(c-1)/log2 c",
            "bound (c-1)(⌊log_c N⌋+1)",
        ]
        .iter()
        .map(|h| Cell::new(h))
        .collect(),
    ));
    for row in &r.bases {
        b.add_row(Row::new(
            [
                row.base.to_string(),
                row.connections.to_string(),
                row.gradient_path_max.to_string(),
                format!("{:.3}", row.gradient_path_mean),
                format!("{:.3}", row.factor),
                row.bound.to_string(),
            ]
            .iter()
            .map(|s| Cell::new_align(s, format::Alignment::RIGHT))
            .collect(),
        ));
    }
    b.print(w)?;
    Ok(())
}

/// Render one CSV row per topology.
pub fn write_csv(args: &PathsArgs, r: &Report, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, "name,pattern,depth,nodes,connections,connections_per_n_log2_n,paths,path_length_min,path_length_max,path_length_mode,path_length_mean,gradient_path_max,gradient_path_mean,unreachable_pairs")?;
    for a in selected(args, r) {
        let (mn, mx, mode, mean) = match &a.path_length_summary {
            Some(s) => (
                s.min.to_string(),
                s.max.to_string(),
                s.mode.to_string(),
                format!("{}", s.mean),
            ),
            None => Default::default(),
        };
        writeln!(
            w,
            "{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{}",
            a.name,
            a.pattern,
            r.depth,
            a.nodes,
            a.connections,
            a.connections_per_n_log2_n,
            a.paths,
            mn,
            mx,
            mode,
            mean,
            a.gradient_path_max,
            a.gradient_path_mean,
            a.gradient.unreachable
        )?;
    }
    Ok(())
}

/// Render the selected topologies as one Graphviz digraph with a cluster each, drawn left to
/// right so blocks sit one above another and compare at a glance.
pub fn write_dot(args: &PathsArgs, r: &Report, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, "digraph sparsenet {{")?;
    writeln!(w, "  rankdir=LR; splines=true; nodesep=0.05; ranksep=0.25; node [shape=circle, fontsize=10, width=0.35, fixedsize=true]; edge [arrowsize=0.5];")?;
    // In left-to-right layouts Graphviz stacks clusters bottom-up: emit them in reverse so the
    // first topology is drawn on top.
    for a in selected(args, r).into_iter().rev() {
        let pattern = match a.name.as_str() {
            "plain" => Pattern::Plain,
            "res" => Pattern::Res,
            "dense" => Pattern::Dense,
            "sparse" => Pattern::Sparse { base: r.base },
            _ => match &args.offsets {
                Some(o) => Pattern::custom(&o.0).expect("validated"),
                None => continue,
            },
        };
        let t = Topology::new(pattern, r.depth).expect("validated");
        let g = t.graph().map_err(std::io::Error::other)?;
        let id = &a.name;
        writeln!(w, "  subgraph cluster_{id} {{")?;
        writeln!(
            w,
            "    label=\"{} — {} connections\"; fontsize=12;",
            a.pattern, a.connections
        )?;
        for i in 0..=r.depth {
            writeln!(w, "    {id}_{i} [label=\"{i}\"];")?;
        }
        use petgraph::visit::EdgeRef;
        for e in g.edge_references() {
            let (s, d) = (g[e.source()], g[e.target()]);
            // Adjacent links are the backbone; longer ones are drawn lighter so the pattern shows.
            let style = if d - s == 1 {
                ""
            } else {
                " [color=\"#4477aa80\", constraint=false]"
            };
            writeln!(w, "    {id}_{s} -> {id}_{d}{style};")?;
        }
        writeln!(w, "  }}")?;
    }
    writeln!(w, "}}")
}

/// `paths` on a DAG block (`--dag-file` or `--random`).
fn exec_dag(args: &PathsArgs, w: &mut dyn Write) -> anyhow::Result<()> {
    use super::paths_dag::{load_dag, report, write_table, DagSource};
    use sparsenet_analysis::dag_report::all_hold;
    let src = match (&args.dag_file, &args.random) {
        _ if args.topology == ["fractal"] => DagSource::Fractal {
            columns: args.columns.unwrap_or(3),
        },
        (Some(f), _) => DagSource::File(f),
        (None, Some(m)) => DagSource::Random {
            model: m,
            nodes: args.nodes,
            seed: args.seed,
        },
        (None, None) => unreachable!("exec_dag is called with a DAG"),
    };
    let (dag, source) = load_dag(&src)?;
    match args.format {
        Format::Dot => written(w.write_all(dag.to_dot().as_bytes())),
        Format::Csv => written(w.write_all(dag.to_edge_list().as_bytes())),
        Format::Table | Format::Json => {
            let r = report(&dag, source, true, args.force_histograms);
            written(if args.format == Format::Json {
                serde_json::to_writer_pretty(&mut *w, &r)
                    .map_err(std::io::Error::other)
                    .and_then(|_| writeln!(w))
            } else {
                write_table(&r, w)
            })?;
            if all_hold(&r) {
                Ok(())
            } else {
                Err(claims_failed())
            }
        }
    }
}

/// The failure of a run whose claims do not all hold (status 1).
fn claims_failed() -> anyhow::Error {
    anyhow::anyhow!("a claim does not hold: see the checks marked ✗ in the output")
}

/// Run `paths`, writing to `w`: an error when the input is bad, the output cannot be written,
/// or a claim does not hold.
pub fn exec(args: &PathsArgs, w: &mut dyn Write) -> anyhow::Result<()> {
    if args.topology.iter().any(|t| t == "fractal") {
        if args.topology.len() > 1 || args.dag_file.is_some() || args.random.is_some() {
            return Err(bad(
                "--topology fractal is a DAG block of its own: give it alone (with --columns C), without other topologies, --dag-file or --random",
            ));
        }
        return exec_dag(args, w);
    }
    if args.columns.is_some() {
        return Err(bad("--columns goes with --topology fractal"));
    }
    if args.dag_file.is_some() || args.random.is_some() {
        return exec_dag(args, w);
    }
    let report = build_report(args)?;
    written(match args.format {
        Format::Table => write_tables(args, &report, w),
        Format::Json => serde_json::to_writer_pretty(&mut *w, &filtered(args, &report))
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(w)),
        Format::Csv => write_csv(args, &report, w),
        Format::Dot => write_dot(args, &report, w),
    })?;
    if let Some(dir) = &args.plot {
        let files = crate::plot::figures::paths_figures(&filtered(args, &report), dir)
            .map_err(|e| e.context("could not draw the figures"))?;
        eprintln!("wrote {} figures to {}", files.len() / 2, dir.display());
    }
    if report.all_claims_hold() {
        Ok(())
    } else {
        Err(claims_failed())
    }
}
