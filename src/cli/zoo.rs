//! The `zoo` command: whole networks as DAGs, exact parameter and FLOP counts beside the
//! paper's tables.

use clap::{Parser, ValueEnum};
use prettytable::{format, Cell, Row, Table};
use std::io::Write;

use sparsenet_net::zoo::{depth_sweep, fit_exponent, model_row, named_row, ModelRow, ZOO};

use super::args::written;
use super::spec::bad;
use super::spec::SpecArgs;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// A JSON list of rows (a stable contract, see README).
    Json,
    /// One CSV row per model.
    Csv,
}

const LONG_ABOUT: &str = "\
Whole networks (stem, blocks, transitions, head) as DAGs with channel widths and spatial sizes,
and their exact parameter and FLOP counts beside the figures printed in the SparseNet, DenseNet
and ResNet papers.

With no options: every named model, ✓ where our exact count rounds to the paper's figure at its
printed precision, ✗ with the difference where it does not.

Counting: trainable parameters as PyTorch counts them (conv weights without bias, BN gamma and
beta, linear weight and bias); BN running statistics separately; MACs of convolutions and linear
layers at batch 1; FLOPs as the paper counts them: 2 x MACs + 2 x elements entering every BN.
Inputs: 32x32x3 (cifar) or 224x224x3 (imagenet).

Stems: CIFAR DenseNet (non-BC) 16 channels, DenseNet-BC and SparseNet 2k; ImageNet DenseNet 2k
(64), ImageNet SparseNet k. Heads: global average pool + linear, except ImageNet SparseNet whose
'paper' head pools the final 7x7 map to 3x3 (9C inputs); --stem and --head override.

DAG blocks: --dag-file F (an edge list `j l` per line, `#` comments, or Graphviz DOT
`digraph { 0 -> 1; … }`) or --random er:p=P | ba:m=M | ws:k=K,p=P (--nodes, --seed) makes a
CIFAR network whose three blocks are that DAG: node 0 the block input, the highest node its
output, each layer concatenating its sources (newest first); the family is sparse, the depth
follows (4 + 3N), the growth defaults to 12. Example: zoo --random ba:m=2 --nodes 32 --seed 3";

/// Arguments of `zoo`.
#[derive(Parser, Debug, Clone)]
#[command(name = "zoo", version, about = "Exact parameter and FLOP counts of whole networks, beside the paper's tables.", long_about = LONG_ABOUT)]
pub struct ZooArgs {
    /// Which network(s).
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Free spec: layout cifar|imagenet (default cifar), as in `train`.
    #[arg(long)]
    pub layout: Option<String>,

    /// List the named models and exit.
    #[arg(long)]
    pub list: bool,

    /// Parameters against depth for CIFAR DenseNet vs SparseNet at fixed growth (default k = 12),
    /// with the fitted exponent (O(n²) against O(n lg n)).
    #[arg(long)]
    pub sweep_depth: bool,

    /// Also draw the figures (parameters against depth, parameter efficiency) as PNG and SVG
    /// into this folder.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,

    /// Print the network's DAG as JSON (nodes with op, shape and inputs) instead of counts;
    /// needs one model (`--model` or a free spec).
    #[arg(long)]
    pub dag: bool,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Seed of the random DAG of --random (the same as --dag-seed).
    #[arg(long, conflicts_with = "dag_seed")]
    pub seed: Option<u64>,

    /// Batch size of the training-memory estimate (the `train mem` column, `train_memory_bytes`
    /// in JSON and CSV): what `train` on the CPU would hold at that batch with SGD, data aside.
    #[arg(long, default_value = "64", value_parser = |s: &str| super::args::parse_in_range(s, "batch size", 1, 65_536))]
    pub batch_size: usize,
}

/// A row with the training-memory estimate beside the counts.
#[derive(serde::Serialize)]
struct RowOut<'a> {
    #[serde(flatten)]
    row: &'a ModelRow,
    /// [`crate::train::memory::estimate`] at the row's batch size, in bytes.
    train_memory_bytes: u64,
    /// That batch size.
    train_memory_batch: usize,
}

/// The training-memory estimate of each row's network at `batch` (SGD, no data).
fn train_memory(specs: &[sparsenet_net::zoo::NetSpec], batch: usize) -> anyhow::Result<Vec<u64>> {
    specs
        .iter()
        .map(|spec| {
            let net = sparsenet_net::zoo::build(spec).map_err(bad)?;
            Ok(
                crate::train::memory::estimate(&net, batch, crate::optim::Optimizer::Sgd, 0)
                    .total_bytes,
            )
        })
        .collect()
}

fn millions(v: u64) -> String {
    format!("{:.3}M", v as f64 / 1e6)
}

fn verdict(ours: u64, printed: &Option<String>, agree: Option<bool>, unit: f64) -> String {
    match (printed, agree) {
        (Some(p), Some(true)) => format!("{p} ✓"),
        (Some(p), Some(false)) => {
            let paper: f64 = p.parse().unwrap_or(f64::NAN);
            format!("{p} ✗ ({:+.3})", ours as f64 / unit - paper)
        }
        _ => "—".into(),
    }
}

/// Render rows as a table, with each network's training-memory estimate at `batch`.
pub fn write_table(
    rows: &[ModelRow],
    memory: &[u64],
    batch: usize,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    let mem_title = format!("train mem (b{batch})");
    let mut t = Table::new();
    t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
    t.set_titles(Row::new(
        [
            "model",
            "stem",
            "head",
            "classes",
            "params",
            "paper (M)",
            "BN running",
            "MACs",
            "GFLOPs",
            "paper GFLOPs",
            &mem_title,
        ]
        .iter()
        .map(|h| Cell::new(h))
        .collect(),
    ));
    for (r, &mem) in rows.iter().zip(memory) {
        let head = r
            .head
            .map_or("—".to_string(), |h| format!("{h:?}").to_lowercase());
        t.add_row(Row::new(vec![
            Cell::new(&r.name),
            Cell::new_align(
                &r.stem.map_or("—".to_string(), |s| s.to_string()),
                format::Alignment::RIGHT,
            ),
            Cell::new(&head),
            Cell::new_align(&r.classes.to_string(), format::Alignment::RIGHT),
            Cell::new_align(
                &format!("{} ({})", r.params, millions(r.params)),
                format::Alignment::RIGHT,
            ),
            Cell::new(&verdict(r.params, &r.paper_printed.0, r.params_agree, 1e6)),
            Cell::new_align(&r.bn_running.to_string(), format::Alignment::RIGHT),
            Cell::new_align(
                &format!("{:.3}G", r.macs as f64 / 1e9),
                format::Alignment::RIGHT,
            ),
            Cell::new_align(
                &format!("{:.3}", r.flops as f64 / 1e9),
                format::Alignment::RIGHT,
            ),
            Cell::new(&verdict(r.flops, &r.paper_printed.1, r.flops_agree, 1e9)),
            Cell::new_align(
                &crate::train::memory::human_bytes(mem),
                format::Alignment::RIGHT,
            ),
        ]));
    }
    t.print(w)?;
    Ok(())
}

/// Render rows as CSV.
pub fn write_csv(
    rows: &[ModelRow],
    memory: &[u64],
    batch: usize,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(w, "name,family,dataset,depth,growth,bc,classes,stem,head,params,bn_running,macs,flops,paper_params,paper_flops,params_agree,flops_agree,train_memory_bytes,train_memory_batch")?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for (r, mem) in rows.iter().zip(memory) {
        let growth: Vec<String> = r.growth.iter().map(|k| k.to_string()).collect();
        writeln!(
            w,
            "\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{mem},{batch}",
            r.name.replace('"', "\"\""),
            r.family.name(),
            r.layout.name(),
            r.depth,
            growth.join("-"),
            r.bc,
            r.classes,
            r.stem.map_or(String::new(), |s| s.to_string()),
            r.head
                .map_or(String::new(), |h| format!("{h:?}").to_lowercase()),
            r.params,
            r.bn_running,
            r.macs,
            r.flops,
            opt(r.paper_params.map(|v| v.to_string())),
            opt(r.paper_flops.map(|v| v.to_string())),
            opt(r.params_agree.map(|v| v.to_string())),
            opt(r.flops_agree.map(|v| v.to_string())),
        )?;
    }
    Ok(())
}

/// The depths of the sweep: CIFAR non-BC depths 3n + 4.
pub const SWEEP_DEPTHS: [usize; 10] = [16, 28, 40, 64, 100, 160, 250, 400, 640, 1000];

/// The growth rate of `--sweep-depth` and its rows (bad input is an error message).
/// A depth sweep: the growth rate and (depth, DenseNet params, SparseNet params) rows.
type Sweep = (usize, Vec<(usize, u64, u64)>);

fn sweep_rows(args: &ZooArgs) -> anyhow::Result<Sweep> {
    let k = match &args.spec.growth {
        Some(g) if g.0.len() == 1 && g.0[0] > 0 => g.0[0],
        Some(_) => {
            return Err(bad(
                "--sweep-depth takes one positive growth rate, e.g. --growth 12",
            ))
        }
        None => 12,
    };
    Ok((k, depth_sweep(k, &SWEEP_DEPTHS).map_err(bad)?))
}

fn write_sweep(args: &ZooArgs, (k, rows): Sweep, w: &mut dyn Write) -> std::io::Result<()> {
    let xs: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
    let dense: Vec<f64> = rows.iter().map(|r| r.1 as f64).collect();
    let sparse: Vec<f64> = rows.iter().map(|r| r.2 as f64).collect();
    // Fit over the deep end, where the leading term dominates.
    let tail = xs.len() / 2;
    let (ed, es) = (
        fit_exponent(&xs[tail..], &dense[tail..]),
        fit_exponent(&xs[tail..], &sparse[tail..]),
    );
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "growth": k,
                "rows": rows.iter().map(|r| serde_json::json!({"depth": r.0, "dense_params": r.1, "sparse_params": r.2})).collect::<Vec<_>>(),
                "dense_exponent": ed, "sparse_exponent": es,
            });
            writeln!(
                w,
                "{}",
                serde_json::to_string_pretty(&v).map_err(std::io::Error::other)?
            )?;
        }
        Format::Csv => {
            writeln!(w, "depth,dense_params,sparse_params")?;
            for r in &rows {
                writeln!(w, "{},{},{}", r.0, r.1, r.2)?;
            }
        }
        Format::Table => {
            writeln!(
                w,
                "Parameters against depth, CIFAR, growth k = {k}, 10 classes"
            )?;
            let mut t = Table::new();
            t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            t.set_titles(Row::new(
                ["depth", "DenseNet", "SparseNet", "dense / sparse"]
                    .iter()
                    .map(|h| Cell::new(h))
                    .collect(),
            ));
            for r in &rows {
                t.add_row(Row::new(
                    [
                        r.0.to_string(),
                        r.1.to_string(),
                        r.2.to_string(),
                        format!("{:.1}×", r.1 as f64 / r.2 as f64),
                    ]
                    .iter()
                    .map(|s| Cell::new_align(s, format::Alignment::RIGHT))
                    .collect(),
                ));
            }
            t.print(w)?;
            writeln!(
                w,
                "fitted exponent (params ∝ depth^a, depths ≥ {}): DenseNet a = {ed:.2} (O(n²)), SparseNet a = {es:.2} (O(n lg n): slightly above 1)",
                rows[tail].0
            )
            ?;
        }
    }
    Ok(())
}

/// The rows to show and the spec of each.
fn rows_for(args: &ZooArgs) -> anyhow::Result<(Vec<ModelRow>, Vec<sparsenet_net::zoo::NetSpec>)> {
    match args.spec.to_spec(args.layout.as_deref())? {
        Some(spec) => {
            let row = match &args.spec.model {
                Some(m) => {
                    let named = sparsenet_net::zoo::named(m).map_err(bad)?;
                    let mut r = named_row(named, args.spec.classes).map_err(bad)?;
                    if spec.stem.is_some() || spec.head.is_some() {
                        // A changed stem or head is a different network: drop the paper's figures.
                        r = model_row(named.name, &spec, (None, None)).map_err(bad)?;
                    }
                    r
                }
                None => model_row(&spec.to_string(), &spec, (None, None)).map_err(bad)?,
            };
            Ok((vec![row], vec![spec]))
        }
        None => {
            let rows = ZOO
                .iter()
                .map(|m| named_row(m, args.spec.classes).map_err(bad))
                .collect::<anyhow::Result<_>>()?;
            Ok((
                rows,
                ZOO.iter().map(|m| m.spec(args.spec.classes)).collect(),
            ))
        }
    }
}

/// Run `zoo`, writing to `w`.
pub fn exec(args: &ZooArgs, w: &mut dyn Write) -> anyhow::Result<()> {
    let mut owned;
    let args = if args.seed.is_some() {
        owned = args.clone();
        owned.spec.dag_seed = args.seed;
        &owned
    } else {
        args
    };
    if args.list {
        let mut out = String::new();
        for m in ZOO {
            let g: Vec<String> = m.growth.iter().map(|k| k.to_string()).collect();
            out.push_str(&format!(
                "{:28} {:8} {:9} depth {:5} growth {:10} bc {:5} classes {}\n",
                m.name,
                m.family.name(),
                m.layout.name(),
                m.depth,
                if g.is_empty() {
                    "-".into()
                } else {
                    g.join(",")
                },
                m.bc,
                m.classes
            ));
        }
        return written(w.write_all(out.as_bytes()));
    }
    if args.dag {
        let spec = args
            .spec
            .to_spec(args.layout.as_deref())?
            .ok_or_else(|| bad("--dag needs one model: --model NAME or a free spec"))?;
        let net = sparsenet_net::zoo::build(&spec).map_err(bad)?;
        return written(
            serde_json::to_writer(&mut *w, &net.export())
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(w)),
        );
    }
    let result = if args.sweep_depth {
        write_sweep(args, sweep_rows(args)?, w)
    } else {
        let (rows, specs) = rows_for(args)?;
        let memory = train_memory(&specs, args.batch_size)?;
        write_rows(args, &rows, &memory, w)
    };
    if let (Ok(()), Some(dir)) = (&result, &args.plot) {
        let k = args
            .spec
            .growth
            .as_ref()
            .and_then(|g| g.0.first().copied())
            .unwrap_or(12);
        let files = crate::plot::figures::zoo_figures(dir, k, &SWEEP_DEPTHS)
            .map_err(|e| e.context("could not draw the figures"))?;
        eprintln!("wrote {} figures to {}", files.len() / 2, dir.display());
    }
    // A closed pipe (e.g. `| head`) is not an error of the counts.
    written(result)
}

/// The rows in `--format`.
fn write_rows(
    args: &ZooArgs,
    rows: &[ModelRow],
    memory: &[u64],
    w: &mut dyn Write,
) -> std::io::Result<()> {
    let batch = args.batch_size;
    match args.format {
        Format::Table => write_table(rows, memory, batch, w).and_then(|_| {
            let bad = rows
                .iter()
                .filter(|r| r.params_agree == Some(false) || r.flops_agree == Some(false))
                .count();
            if rows.len() > 1 {
                writeln!(w, "\n{} models; {bad} differ from the paper's printed figure (✗). Counts are exact and not tuned to the paper; see README for the known mismatches.", rows.len())
            } else {
                Ok(())
            }
        }),
        Format::Json => {
            let out: Vec<RowOut> = rows
                .iter()
                .zip(memory)
                .map(|(row, &m)| RowOut {
                    row,
                    train_memory_bytes: m,
                    train_memory_batch: batch,
                })
                .collect();
            serde_json::to_writer_pretty(&mut *w, &out)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(w))
        }
        Format::Csv => write_csv(rows, memory, batch, w),
    }
}
