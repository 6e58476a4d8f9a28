//! `study search`: a search over block patterns at a parameter budget, with the graph analysis
//! as a free filter and successive halving (Li et al.: ASHA / Hyperband's inner loop) spending
//! the training.
//!
//! 1. **Draw.** A seeded sampler proposes structures from the space — offset sets (`offsets`:
//!    1 and up to four more offsets below the block depth), random DAG blocks (`dag`: the
//!    Erdős–Rényi, Barabási–Albert and Watts–Strogatz generators with their parameters and a
//!    node count), or operators over the sparse and dense patterns (`aggregate`). Each is sized
//!    to the budget by its growth rate (the smallest growth whose network has at least the
//!    budget, or the one below it, whichever is closer), and kept when within the tolerance,
//!    under the limits (`--max-gradient-path`), and not isomorphic to one already kept (the
//!    aggregation view of every block, with the operator). Nothing is trained to filter.
//! 2. **Baselines.** SparseNet's exponential offsets and DenseNet at the same depth and budget
//!    (growth fitted the same way) and ResNet (depth 8–32 and width, whichever pair is nearest
//!    the budget), where one fits the tolerance.
//! 3. **Rungs.** Rung r trains its networks for `min_epochs · eta^r` epochs, each a run of an
//!    ordinary `study efficiency` in `OUT/rung-r` (so resumable, sharable, nothing trained
//!    twice); the best `1/eta` of the candidates by mean final test accuracy go on, the
//!    baselines always do, until one candidate is left or `--rungs` is reached. Each rung's
//!    runs start from scratch with their own schedule (the step schedule depends on the epochs),
//!    which costs more than continuing and keeps every rung an ordinary, comparable run.
//!
//! Output: `candidates.jsonl` (every candidate: words, params, FLOPs, graph metrics, the rungs
//! it reached with their errors), `search.json` (options, the fronts, the baselines),
//! `front.txt` (the final rung's Pareto front of error against parameters, as grid lines that
//! `train`, `zoo` and `study efficiency --grid` read), `front-<i>.edges` (each front
//! network's first block, as an edge list for `paths --dag-file`) and the figures
//! `search_vs_params` / `search_vs_flops` (the final rung, its front and the baselines).

use anyhow::{anyhow, bail, Result};
use petgraph::algo::is_isomorphic_matching;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;

use sparsenet_analysis::dag::BlockDag;
use sparsenet_net::zoo::{build_and_count, Aggregate};
use sparsenet_net::Shape;

use crate::error::bad_input;
use crate::io::write_atomic;
use crate::study::efficiency::{self, GridEntry, Study};
use crate::study::graph_metrics::{graph_metrics, GraphMetrics};
use sparsenet_net::zoo::AggregateKind;

/// What the sampler proposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// Offset sets `{1, o_2, …}` over the block's layers.
    Offsets,
    /// Random DAG blocks from the three generators.
    Dag,
    /// Aggregation operators (every one of `AggregateKind::ALL`) over the sparse and dense
    /// patterns.
    Aggregate,
}

crate::choice_table!(Space {
    Offsets => "offsets", "Offset sets {1, o2, …} over a block's layers (SparseNet's pattern family)",
    Dag => "dag", "Random DAG blocks (Erdős–Rényi, Barabási–Albert, Watts–Strogatz, with their parameters)",
    Aggregate => "aggregate", "Aggregation operators (concat, sum, mixed, dual, max) over the sparse and dense patterns",
});

impl std::fmt::Display for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::choice::Choice::name(*self))
    }
}

/// What to draw: the space, the budget and the filter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Draw {
    /// The space.
    pub space: Space,
    /// The parameter budget.
    pub budget: u64,
    /// Accepted relative distance from the budget.
    pub tolerance: f64,
    /// Candidates to draw (baselines not counted).
    pub candidates: usize,
    /// The sampler's seed.
    pub seed: u64,
    /// Network depth of the offsets and aggregate spaces (CIFAR layout: 4 + 3L).
    pub depth: usize,
    /// Random nodes per block of the dag space, smallest and largest.
    pub nodes: (usize, usize),
    /// Keep only candidates whose longest gradient path (mean over blocks) is at most this.
    pub max_gradient_path: Option<f64>,
}

/// A search: the draw, the halving, and the study every rung runs as (its recipe, seeds, jobs
/// and folder; its grid is replaced per rung).
#[derive(Clone, Debug)]
pub struct Search {
    /// What to draw.
    pub draw: Draw,
    /// Epochs of rung 0.
    pub min_epochs: usize,
    /// The halving factor.
    pub eta: usize,
    /// Most rungs.
    pub rungs: usize,
    /// The template study (recipe, seeds, jobs, out, device).
    pub study: Study,
}

/// One network of the search.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    /// Its grid line (train's words, growth included).
    pub words: String,
    /// A baseline (exponential offsets, dense, res): trained in every rung. A drawn candidate
    /// that is the same network as a baseline is marked so too.
    pub baseline: bool,
    /// Parameters for the data's input and classes.
    pub params: u64,
    /// FLOPs per image.
    pub flops: u64,
    /// Its graph metrics.
    pub graph: GraphMetrics,
    /// The rungs it was trained in: (rung, epochs, mean final test error %).
    pub rungs: Vec<(usize, usize, f64)>,
}

/// Why drawn structures were not kept.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DrawStats {
    /// Structures proposed.
    pub proposed: usize,
    /// No growth rate within the tolerance of the budget.
    pub off_budget: usize,
    /// Isomorphic to one kept before.
    pub duplicates: usize,
    /// Beyond a limit.
    pub over_limits: usize,
    /// Not buildable (e.g. a DAG the network cannot take).
    pub unbuildable: usize,
}

/// `search.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SearchRecord {
    /// What was drawn.
    pub options: Draw,
    /// How the draw went.
    pub draw: DrawStats,
    /// Epochs per rung, as run.
    pub rung_epochs: Vec<usize>,
    /// The final rung's Pareto front of error against parameters (grid lines).
    pub front_params: Vec<String>,
    /// The final rung's Pareto front of error against FLOPs.
    pub front_flops: Vec<String>,
    /// Every network, in draw order, baselines last.
    pub candidates: Vec<Candidate>,
}

/// The block views of a network and its operator: what two candidates must share to be the
/// same network up to renumbering.
struct Shape_ {
    aggregate: Aggregate,
    views: Vec<BlockDag>,
}

fn same_network(a: &Shape_, b: &Shape_) -> bool {
    a.aggregate == b.aggregate
        && a.views.len() == b.views.len()
        && a.views.iter().zip(&b.views).all(|(x, y)| isomorphic(x, y))
}

/// Isomorphic as blocks: the input maps to the input and the output to the output.
fn isomorphic(a: &BlockDag, b: &BlockDag) -> bool {
    if a.nodes() != b.nodes() || a.edges() != b.edges() {
        return false;
    }
    let (ga, gb) = (a.graph(), b.graph());
    let (na, nb) = (a.nodes() - 1, b.nodes() - 1);
    let role = |n: usize, last: usize| (n == 0, n == last);
    is_isomorphic_matching(
        &ga,
        &gb,
        |x: &usize, y: &usize| role(*x, na) == role(*y, nb),
        |_: &usize, _: &usize| true,
    )
}

/// A structure from the space: train's words without the growth rate.
fn propose(s: &Draw, rng: &mut rand_chacha::ChaCha8Rng) -> String {
    let layers = s.depth.saturating_sub(4) / 3;
    match s.space {
        Space::Offsets => {
            let extra = rng.gen_range(0..=4usize.min(layers.saturating_sub(1)));
            let mut offsets = vec![1usize];
            while offsets.len() < extra + 1 {
                let o = rng.gen_range(2..=layers.max(2));
                if !offsets.contains(&o) {
                    offsets.push(o);
                }
            }
            offsets.sort_unstable();
            let list: Vec<String> = offsets.iter().map(|o| o.to_string()).collect();
            format!(
                "--family sparse --depth {} --offsets {}",
                s.depth,
                list.join(",")
            )
        }
        Space::Dag => {
            let nodes = rng.gen_range(s.nodes.0..=s.nodes.1);
            let model = match rng.gen_range(0..3) {
                0 => format!("er:p={:.2}", rng.gen_range(0.1..0.6)),
                1 => format!("ba:m={}", rng.gen_range(1..=3usize.min(nodes.max(2) - 1))),
                _ => format!(
                    "ws:k={},p={:.2}",
                    2 * rng.gen_range(1..=2usize),
                    rng.gen_range(0.0..0.5)
                ),
            };
            format!(
                "--random {model} --nodes {nodes} --dag-seed {}",
                rng.gen_range(0..1_000_000u32)
            )
        }
        Space::Aggregate => {
            let pattern = match rng.gen_range(0..3) {
                0 => "--family sparse".to_string(),
                1 => "--family sparse --base 3".to_string(),
                _ => "--family dense".to_string(),
            };
            // Every operator the net crate has (concatenation, the default, without a flag).
            let ops = AggregateKind::ALL;
            let op = match ops[rng.gen_range(0..ops.len())] {
                AggregateKind::Concat => String::new(),
                k => format!(" --aggregate {}", k.name()),
            };
            format!("{pattern} --depth {}{op}", s.depth)
        }
    }
}

/// The network of `words` with `knob` (`--growth` or `--stem`) set so that its parameters for
/// `input`/`classes` are nearest the budget; None when no value is within the tolerance.
fn fit(
    words: &str,
    knob: &str,
    s: &Draw,
    input: Shape,
    classes: usize,
) -> Result<Option<(GridEntry, u64, u64)>> {
    let at = |k: usize| -> Result<(GridEntry, u64, u64)> {
        // A mixed link sums as many channels as it concatenates (--mix k,k).
        let line = if words.contains("--aggregate mixed") {
            format!("{words} --mix {k},{k}")
        } else {
            format!("{words} {knob} {k}")
        };
        let mut e = super::grid::parse_line(&line, "search")?;
        e.spec.input = Some(input);
        e.spec.classes = classes;
        let (_, c) = build_and_count(&e.spec)?;
        Ok((e, c.params, c.flops))
    };
    // Parameters grow with the knob: the smallest value at or above the budget.
    let (mut lo, mut hi) = (1usize, 1024usize);
    if at(hi)?.1 < s.budget {
        return Ok(None);
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if at(mid)?.1 >= s.budget {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let above = at(lo)?;
    let best = if lo > 1 {
        let below = at(lo - 1)?;
        if s.budget - below.1 < above.1 - s.budget {
            below
        } else {
            above
        }
    } else {
        above
    };
    let off = (best.1 as f64 - s.budget as f64).abs() / s.budget as f64;
    Ok((off <= s.tolerance).then_some(best))
}

fn candidate(
    e: &GridEntry,
    params: u64,
    flops: u64,
    baseline: bool,
) -> Result<(Candidate, Shape_)> {
    let net = sparsenet_net::zoo::build(&e.spec)?;
    let graph = graph_metrics(&net).ok_or_else(|| anyhow!("{}: no blocks", e.words))?;
    let shape = Shape_ {
        aggregate: e.spec.aggregate,
        views: net.blocks.iter().map(|b| b.view.clone()).collect(),
    };
    Ok((
        Candidate {
            words: e.words.clone(),
            baseline,
            params,
            flops,
            graph,
            rungs: Vec::new(),
        },
        shape,
    ))
}

/// Add a baseline, or mark the drawn candidate that is the same network as one (by structure,
/// not by words: `--offsets 1,2,4` drawn is SparseNet's default pattern).
fn add_baseline(
    all: &mut Vec<(Candidate, Shape_)>,
    e: &GridEntry,
    params: u64,
    flops: u64,
) -> Result<()> {
    let (c, shape) = candidate(e, params, flops, true)?;
    let same = |k: &Candidate, s: &Shape_| k.params == params && same_network(s, &shape);
    match all
        .iter_mut()
        .find(|(k, s)| k.words == e.words || same(k, s))
    {
        Some((k, _)) => k.baseline = true,
        None => all.push((c, shape)),
    }
    Ok(())
}

/// Draw the candidates and the baselines (deterministic in the search's options).
pub fn draw(s: &Draw, input: Shape, classes: usize) -> Result<(Vec<Candidate>, DrawStats)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s.seed);
    let mut stats = DrawStats::default();
    let mut kept: Vec<(Candidate, Shape_)> = Vec::new();
    let attempts = 50 * s.candidates.max(1);
    while kept.len() < s.candidates && stats.proposed < attempts {
        let words = propose(s, &mut rng);
        stats.proposed += 1;
        let fitted = match fit(&words, "--growth", s, input, classes) {
            Ok(f) => f,
            Err(_) => {
                stats.unbuildable += 1;
                continue;
            }
        };
        let Some((e, params, flops)) = fitted else {
            stats.off_budget += 1;
            continue;
        };
        let (c, shape) = candidate(&e, params, flops, false)?;
        if s.max_gradient_path
            .is_some_and(|m| c.graph.max_gradient_path > m)
        {
            stats.over_limits += 1;
            continue;
        }
        if kept.iter().any(|(_, k)| same_network(k, &shape)) {
            stats.duplicates += 1;
            continue;
        }
        kept.push((c, shape));
    }
    if kept.is_empty() {
        return Err(bad_input(anyhow!(
            "no candidate of the {} space fits {} parameters within {:.0} % (and the limits) in {} proposals ({} off budget, {} duplicates, {} over the limits, {} unbuildable): change --budget-params, --tolerance, --depth or the limits",
            s.space,
            s.budget,
            100.0 * s.tolerance,
            stats.proposed,
            stats.off_budget,
            stats.duplicates,
            stats.over_limits,
            stats.unbuildable
        )));
    }
    let mut all = kept;
    for words in [
        format!("--family sparse --depth {}", s.depth),
        format!("--family dense --depth {}", s.depth),
    ] {
        if let Some((e, params, flops)) = fit(&words, "--growth", s, input, classes)? {
            add_baseline(&mut all, &e, params, flops)?;
        }
    }
    // ResNet's width is a coarse knob (parameters grow with its square): of the depths
    // 8, 14, …, 32 with their fitted widths, the one nearest the budget.
    let mut res: Option<(GridEntry, u64, u64)> = None;
    for depth in (8..=32).step_by(6) {
        if let Some(f) = fit(
            &format!("--family res --depth {depth}"),
            "--stem",
            s,
            input,
            classes,
        )? {
            let off = |p: u64| p.abs_diff(s.budget);
            if res.as_ref().is_none_or(|r| off(f.1) < off(r.1)) {
                res = Some(f);
            }
        }
    }
    if let Some((e, params, flops)) = res {
        add_baseline(&mut all, &e, params, flops)?;
    }
    Ok((all.into_iter().map(|(c, _)| c).collect(), stats))
}

/// Run the search: draw, then train rung after rung; writes everything under the study's
/// folder and returns the record.
pub fn run(s: &Search, log: &mut (dyn Write + Send)) -> Result<SearchRecord> {
    if s.eta < 2 {
        bail!("--eta must be at least 2");
    }
    let split = crate::data::load_choice(
        s.study.recipe.dataset,
        s.study.recipe.data_dir.as_deref(),
        s.study.recipe.data,
        s.study.recipe.folder.as_ref(),
    )
    .map_err(bad_input)?;
    let (c, h, w) = split.train.dims();
    let input = Shape::new(c, h, w);
    let classes = split.train.classes();
    drop(split);
    let t0 = std::time::Instant::now();
    let (mut cands, stats) = draw(&s.draw, input, classes)?;
    let drawn = cands.iter().filter(|c| !c.baseline).count();
    writeln!(
        log,
        "search: {drawn} candidates of the {} space at {} parameters (± {:.0} %) from {} proposals ({} off budget, {} duplicates, {} over the limits, {} unbuildable) in {:.2} s, and {} baselines",
        s.draw.space,
        s.draw.budget,
        100.0 * s.draw.tolerance,
        stats.proposed,
        stats.off_budget,
        stats.duplicates,
        stats.over_limits,
        stats.unbuildable,
        t0.elapsed().as_secs_f64(),
        cands.len() - drawn
    )?;
    std::fs::create_dir_all(&s.study.out)?;
    let mut alive: Vec<usize> = (0..cands.len()).collect();
    let mut rung_epochs = Vec::new();
    for rung in 0..s.rungs.max(1) {
        let epochs = s.min_epochs * s.eta.pow(rung as u32);
        rung_epochs.push(epochs);
        let mut st = s.study.clone();
        st.recipe.epochs = epochs;
        st.out = s.study.out.join(format!("rung-{rung}"));
        st.grid = alive
            .iter()
            .map(|&i| super::grid::parse_line(&cands[i].words, "search"))
            .collect::<Result<_>>()?;
        writeln!(
            log,
            "rung {rung}: {} networks × {} seeds, {epochs} epochs each, in {}",
            st.grid.len(),
            st.seeds.len(),
            st.out.display()
        )?;
        let results = efficiency::run(&st, log)?;
        efficiency::merge(&st)?;
        for &i in &alive {
            let errs: Vec<f64> = results
                .iter()
                .filter(|r| r.spec == cands[i].words)
                .map(|r| 100.0 * (1.0 - r.final_test_acc))
                .collect();
            let (mean, _) = efficiency::mean_std(&errs);
            cands[i].rungs.push((rung, epochs, mean));
        }
        let mut drawn_alive: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&i| !cands[i].baseline)
            .collect();
        if drawn_alive.len() <= 1 || rung + 1 == s.rungs.max(1) {
            break;
        }
        let err = |i: usize| cands[i].rungs.last().map_or(f64::INFINITY, |r| r.2);
        drawn_alive.sort_by(|&a, &b| err(a).total_cmp(&err(b)).then(a.cmp(&b)));
        drawn_alive.truncate(drawn_alive.len().div_ceil(s.eta));
        drawn_alive.sort_unstable();
        alive = drawn_alive;
        alive.extend((0..cands.len()).filter(|&i| cands[i].baseline));
    }
    // The final rung's fronts, over the networks it trained.
    let last = rung_epochs.len() - 1;
    let final_rung: Vec<&Candidate> = cands
        .iter()
        .filter(|c| c.rungs.last().is_some_and(|r| r.0 == last))
        .collect();
    let front = |cost: fn(&Candidate) -> f64| -> Vec<String> {
        let pts: Vec<(f64, f64)> = final_rung
            .iter()
            .map(|c| (cost(c), c.rungs.last().map_or(f64::NAN, |r| r.2)))
            .collect();
        let f = efficiency::pareto_front(&pts);
        final_rung
            .iter()
            .zip(&pts)
            .filter(|(_, p)| f.contains(p))
            .map(|(c, _)| c.words.clone())
            .collect()
    };
    let record = SearchRecord {
        options: s.draw.clone(),
        draw: stats,
        rung_epochs,
        front_params: front(|c| c.params as f64),
        front_flops: front(|c| c.flops as f64),
        candidates: cands,
    };
    write_outputs(s, &record, input, classes)?;
    Ok(record)
}

fn write_outputs(
    s: &Search,
    r: &SearchRecord,
    input: Shape,
    classes: usize,
) -> Result<Vec<PathBuf>> {
    let out = &s.study.out;
    let mut files = Vec::new();
    let mut text = String::new();
    for c in &r.candidates {
        text.push_str(&serde_json::to_string(c)?);
        text.push('\n');
    }
    write_atomic(&out.join("candidates.jsonl"), text.as_bytes())?;
    files.push(out.join("candidates.jsonl"));
    write_atomic(
        &out.join("search.json"),
        serde_json::to_string_pretty(r)?.as_bytes(),
    )?;
    files.push(out.join("search.json"));
    let mut front = String::from(
        "# the search's Pareto front of error against parameters (final rung), as grid lines\n",
    );
    for (i, words) in r.front_params.iter().enumerate() {
        front.push_str(words);
        front.push('\n');
        let mut e = super::grid::parse_line(words, "front")?;
        e.spec.input = Some(input);
        e.spec.classes = classes;
        let net = sparsenet_net::zoo::build(&e.spec)?;
        if let Some(b) = net.blocks.first() {
            let path = out.join(format!("front-{}.edges", i + 1));
            write_atomic(&path, b.view.to_edge_list().as_bytes())?;
            files.push(path);
        }
    }
    write_atomic(&out.join("front.txt"), front.as_bytes())?;
    files.push(out.join("front.txt"));
    files.extend(figures(r, out)?);
    Ok(files)
}

/// `search_vs_params` and `search_vs_flops` (PNG + SVG): the final rung's candidates, their
/// Pareto front and the baselines, error against cost.
fn figures(r: &SearchRecord, out: &std::path::Path) -> Result<Vec<PathBuf>> {
    use crate::plot::{self, Chart, Mark, Series};
    let last = r.rung_epochs.len().saturating_sub(1);
    let epochs = r.rung_epochs.last().copied().unwrap_or(0);
    let mut files = Vec::new();
    for (stem, what, cost) in [
        (
            "search_vs_params",
            "parameters",
            (|c: &Candidate| c.params as f64) as fn(&Candidate) -> f64,
        ),
        ("search_vs_flops", "FLOPs per image", |c: &Candidate| {
            c.flops as f64
        }),
    ] {
        let point = |c: &Candidate| {
            c.rungs
                .last()
                .filter(|x| x.0 == last)
                .map(|x| (cost(c).log10(), x.2))
        };
        let drawn: Vec<(f64, f64)> = r
            .candidates
            .iter()
            .filter(|c| !c.baseline)
            .filter_map(point)
            .collect();
        let all: Vec<(f64, f64)> = r.candidates.iter().filter_map(point).collect();
        let mut series = vec![
            Series::new(format!("candidates, rung {last}"), drawn, Mark::Points).colour(0),
            Series::new("Pareto front", efficiency::pareto_front(&all), Mark::Thin).colour(6),
        ];
        for (i, c) in r.candidates.iter().filter(|c| c.baseline).enumerate() {
            if let Some(p) = point(c) {
                let name = c
                    .words
                    .split_whitespace()
                    .skip_while(|w| *w != "--family")
                    .nth(1)
                    .unwrap_or("baseline");
                series.push(
                    Series::new(format!("baseline: {name}"), vec![p], Mark::Points).colour(i + 1),
                );
            }
        }
        let chart = Chart {
            title: format!(
                "Search at {} parameters: test error after {epochs} epochs against {what}",
                r.options.budget
            ),
            x_label: format!("log10 {what}"),
            y_label: "final test error (%), mean over seeds".into(),
            series,
        };
        plot::save(&chart, out, stem)?;
        files.push(out.join(format!("{stem}.png")));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(space: Space, depth: usize, budget: u64) -> Draw {
        Draw {
            space,
            budget,
            tolerance: 0.1,
            candidates: 6,
            seed: 3,
            depth,
            nodes: (3, 8),
            max_gradient_path: None,
        }
    }

    #[test]
    fn candidates_meet_the_budget_are_distinct_and_the_draw_is_seeded() {
        let input = Shape::new(1, 28, 28);
        for space in [Space::Offsets, Space::Dag, Space::Aggregate] {
            let s = search(space, 22, 60_000);
            let (c, stats) = draw(&s, input, 10).unwrap();
            let drawn: Vec<&Candidate> = c.iter().filter(|c| !c.baseline).collect();
            assert!(!drawn.is_empty(), "{space:?}: {stats:?}");
            for x in &c {
                let off = (x.params as f64 - 60_000.0).abs() / 60_000.0;
                assert!(
                    off <= 0.1,
                    "{space:?}: {} has {} parameters",
                    x.words,
                    x.params
                );
            }
            let mut words: Vec<&str> = c.iter().map(|x| x.words.as_str()).collect();
            words.sort_unstable();
            words.dedup();
            assert_eq!(words.len(), c.len(), "{space:?}");
            assert_eq!(
                draw(&s, input, 10).unwrap().0,
                c,
                "{space:?}: the same seed, another draw"
            );
            assert_eq!(c.iter().filter(|x| x.baseline).count(), 3, "{space:?}");
        }
    }

    #[test]
    fn isomorphic_blocks_are_one_candidate() {
        // Depth 10: two layers per block, so the offset sets are {1} and {1, 2} (and {1, 2}
        // again with offsets beyond the block, which add nothing): at most two candidates.
        let mut s = search(Space::Offsets, 10, 3_000);
        s.tolerance = 0.5;
        s.candidates = 5;
        let (c, stats) = draw(&s, Shape::new(1, 28, 28), 10).unwrap();
        let drawn = c.iter().filter(|x| !x.baseline).count();
        assert!(drawn <= 2, "{c:?}");
        assert!(stats.duplicates > 0, "{stats:?}");
        // {1, 2} is also SparseNet's own pattern at this depth: the baseline marks that
        // candidate instead of joining as a third copy of a sparse network.
        let sparse: Vec<&Candidate> = c
            .iter()
            .filter(|x| x.words.starts_with("--family sparse"))
            .collect();
        assert_eq!(sparse.len(), 2, "{c:?}");
        assert_eq!(sparse.iter().filter(|x| x.baseline).count(), 1, "{c:?}");
    }

    #[test]
    fn blocks_renumbered_are_isomorphic_and_others_are_not() {
        let dag = |e: &[(usize, usize)]| BlockDag::from_edges(Some(5), e).unwrap();
        // Nodes 1 and 2 swapped: 1 feeds 3 and 4 in one, 2 does in the other.
        let a = dag(&[(0, 1), (0, 2), (1, 3), (2, 4), (3, 4), (1, 4)]);
        let b = dag(&[(0, 2), (0, 1), (2, 3), (1, 4), (3, 4), (2, 4)]);
        let c = dag(&[(0, 1), (0, 2), (1, 3), (2, 4), (3, 4), (0, 4)]);
        assert!(a.edge_list() != b.edge_list());
        assert!(isomorphic(&a, &b));
        assert!(!isomorphic(&a, &c));
    }

    #[test]
    fn limits_filter_before_training() {
        let mut s = search(Space::Offsets, 22, 60_000);
        s.max_gradient_path = Some(2.0);
        let (c, _) = draw(&s, Shape::new(1, 28, 28), 10).unwrap();
        for x in c.iter().filter(|x| !x.baseline) {
            assert!(x.graph.max_gradient_path <= 2.0, "{}", x.words);
        }
    }
}
