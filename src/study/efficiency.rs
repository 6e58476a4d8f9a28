//! `study efficiency`: train a grid of networks under one recipe, several seeds each, through
//! the same training library as `train`, and compare test error against parameters and FLOPs.
//!
//! Layout of `--out`: `runs/<network>-s<seed>/` (each a `train` folder: metrics, checkpoints,
//! description, plus `train.log`), `results.jsonl` (one object per finished run, in grid
//! order), `summary.json` and `summary.txt` (mean ± std over seeds per network) and the figures
//! `error_vs_params` and `error_vs_flops` (PNG + SVG). Everything is written atomically and the
//! study is resumable: a finished run is read back, an interrupted one resumes from its last
//! checkpoint, nothing is trained twice.
//!
//! Several processes share one study (`--shard I/N`, on one machine or a cluster): run `i` of
//! the grid (networks outer, seeds inner) belongs to shard `i mod N`, a fixed assignment. A
//! shard writes only its own run folders — each run's `result.json` (its row), under the run
//! folder's lock — and [`merge`] turns the finished folders into `results.jsonl`, the summary
//! and the figures, under the study's merge lock, once every run is done. `study.json` records
//! the grid, the seeds and the recipe with their hash; it is created once, by whichever process
//! comes first, and every later process checks it, as every run folder's `study-run.json`
//! records the hash of the study it belongs to, so runs of two grids never mix in one folder.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sparsenet_net::zoo::{build_and_count, named, Family, NetSpec};

use crate::data::DatasetKind;
use crate::error::bad_input;
use crate::io::write_atomic;
use crate::plot::{self, Chart, Mark, Series};
use crate::study::graph_metrics::{graph_metrics, GraphMetrics};
use crate::train::{self, checkpoint, TrainOptions};

/// One network of a grid: the words it was given in, its display name and its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct GridEntry {
    /// The line as written (normalised whitespace), e.g. `--family sparse --depth 16 --growth 12`.
    pub words: String,
    /// The name runs and tables use: the model's name, or the free spec's description.
    pub name: String,
    /// The network.
    pub spec: NetSpec,
}

/// What a study trains: the grid, the seeds, and the recipe every run shares (a template of
/// `train`'s options whose spec, name, seed and folder each run replaces).
#[derive(Clone, Debug)]
pub struct Study {
    /// The networks.
    pub grid: Vec<GridEntry>,
    /// Seeds; every network is trained once per seed.
    pub seeds: Vec<u64>,
    /// The shared recipe (data, epochs, optimiser, device, …).
    pub recipe: TrainOptions,
    /// Runs at once.
    pub jobs: usize,
    /// The study folder.
    pub out: PathBuf,
    /// The runs this process trains ([`Shard::WHOLE`]: all of them).
    pub shard: Shard,
}

/// Which runs of a study one process trains: shard `index` of `count` owns the runs whose
/// position in grid order (networks outer, seeds inner) is `index` modulo `count`. The
/// assignment depends on the grid and seeds alone, never on timing, and interleaving spreads
/// each network's sizes over the shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Shards of the study.
    pub count: usize,
}

impl Shard {
    /// The whole study in one process.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parse `I/N` (shards are numbered from 0, as Slurm numbers array tasks).
    pub fn parse(s: &str) -> std::result::Result<Shard, String> {
        let t = s.trim();
        let bad = || format!("--shard '{t}': give I/N, shard I of N counted from 0 (0/4 … 3/4)");
        let (i, n) = t.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || n > 100_000 {
            return Err(format!("--shard {t}: N must be in 1..=100000"));
        }
        if i >= n {
            return Err(format!(
                "--shard {t}: shard {i} does not exist, shards of {n} are numbered 0..={}",
                n - 1
            ));
        }
        Ok(Shard { index: i, count: n })
    }

    /// Whether run `i` (grid order) is this shard's.
    pub fn owns(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `study.json`: what a study folder holds, so that every shard and `study merge` agree on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudyRecord {
    /// [`STUDY_FORMAT`].
    pub format: u32,
    /// [`grid_hash`] of the grid, seeds and recipe.
    pub grid_hash: String,
    /// The grid's lines, in order.
    pub grid: Vec<String>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// The recipe every run shares (its spec, name and folder are placeholders).
    pub recipe: TrainOptions,
}

/// The version of `study.json`.
pub const STUDY_FORMAT: u32 = 1;

/// The identity of a study: the first 16 hex digits of the SHA-256 of its grid lines, seeds
/// and recipe. Where and how the runs execute — device, GPUs, progress bars, folders — is left
/// out, so shards of one study may run on different machines.
pub fn grid_hash(grid: &[String], seeds: &[u64], recipe: &TrainOptions) -> String {
    use sha2::Digest;
    let mut r = recipe.clone();
    r.name = String::new();
    r.out = PathBuf::new();
    r.progress = false;
    r.resume = false;
    r.overwrite = false;
    r.stop_after = None;
    r.device = Default::default();
    r.gpus = None;
    r.max_memory = None;
    let text = serde_json::to_string(&(grid, seeds, &r)).expect("a recipe serialises");
    let digest = sha2::Sha256::digest(text.as_bytes());
    crate::dist::store::hex(&digest[..8])
}

impl Study {
    /// The record of this study (`study.json`).
    pub fn record(&self) -> StudyRecord {
        let grid: Vec<String> = self.grid.iter().map(|e| e.words.clone()).collect();
        StudyRecord {
            format: STUDY_FORMAT,
            grid_hash: grid_hash(&grid, &self.seeds, &self.recipe),
            grid,
            seeds: self.seeds.clone(),
            recipe: self.recipe.clone(),
        }
    }

    /// Every run of the study in grid order: (network, seed).
    fn runs(&self) -> Vec<(&GridEntry, u64)> {
        self.grid
            .iter()
            .flat_map(|e| self.seeds.iter().map(move |&s| (e, s)))
            .collect()
    }
}

/// The largest study file a command reads (`results.jsonl` of a large study is a few MB).
pub const MAX_STUDY_FILE: u64 = 256 << 20;

/// A study file's text: a regular file (a FIFO would hang, `/dev/zero` never ends) of at most
/// [`MAX_STUDY_FILE`] bytes, in UTF-8.
pub fn read_study_file(path: &Path, what: &str) -> Result<String> {
    let bytes = crate::io::read_regular(path, what, MAX_STUDY_FILE)?;
    String::from_utf8(bytes)
        .map_err(|_| bad_input(anyhow!("{what} {} is not UTF-8 text", path.display())))
}

impl RunResult {
    /// Refuse values no run produces: accuracies outside [0, 1], a non-finite or absurd loss,
    /// time or graph metric (a metric of 1.7·10³⁰⁸ once sent `correlate`'s figure into an
    /// endless loop). Returns what is wrong.
    pub fn check(&self) -> std::result::Result<(), String> {
        const ABSURD: f64 = 1e12;
        let sane = |v: f64| v.is_finite() && v.abs() <= ABSURD;
        for (what, v) in [
            ("final_test_acc", self.final_test_acc),
            ("best_test_acc", self.best_test_acc),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{what} {v} is not an accuracy in [0, 1]"));
            }
        }
        for (what, v) in [
            ("final_test_loss", self.final_test_loss),
            ("seconds", self.seconds),
        ] {
            if !(sane(v) && v >= 0.0) {
                return Err(format!(
                    "{what} {v} is not a non-negative number below {ABSURD:e}"
                ));
            }
        }
        if self.params == 0 || self.params as f64 > ABSURD || self.flops as f64 > 1e18 {
            return Err(format!(
                "{} parameters and {} FLOPs are not a network's",
                self.params, self.flops
            ));
        }
        if let Some(g) = &self.graph {
            for (name, _) in super::graph_metrics::METRICS {
                let v = g.get(name).unwrap_or(0.0);
                if !(sane(v) && v >= 0.0) {
                    return Err(format!(
                        "graph metric {name} {v} is not a non-negative number below {ABSURD:e}"
                    ));
                }
            }
            for b in &g.blocks {
                let m = &b.metrics;
                for v in [
                    m.log10_paths,
                    m.mean_path_length,
                    m.mean_gradient_path,
                    m.output_reads,
                ] {
                    if !(sane(v) && v >= 0.0) {
                        return Err(format!(
                            "block {}'s metric {v} is not a non-negative number below {ABSURD:e}",
                            b.block
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A run's row from `text` (one JSON object), checked ([`RunResult::check`]); `place` names it
/// in errors.
fn parse_row(text: &str, place: &str) -> Result<RunResult> {
    let r: RunResult = serde_json::from_str(text)
        .with_context(|| format!("{place}: not a study result"))
        .map_err(bad_input)?;
    r.check()
        .map_err(|why| bad_input(anyhow!("{place}: {why}")))?;
    Ok(r)
}

/// Read a study folder's `study.json`.
pub fn read_record(out: &Path) -> Result<StudyRecord> {
    let path = out.join("study.json");
    // A missing record keeps its io::Error (exit 3, as any unreadable file).
    std::fs::symlink_metadata(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a study folder?)",
            path.display(),
            out.display()
        )
    })?;
    let text = read_study_file(&path, "study record")?;
    let r: StudyRecord = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a study record", path.display()))
        .map_err(bad_input)?;
    if r.format != STUDY_FORMAT {
        return Err(bad_input(anyhow!(
            "{}: study format {} is not this version's ({STUDY_FORMAT})",
            path.display(),
            r.format
        )));
    }
    Ok(r)
}

/// Claim the study folder for this study: create `study.json` if it is absent (one process
/// wins when several start at once), or check that the one there is this study's. Returns the
/// study's grid hash.
fn claim(study: &Study) -> Result<String> {
    let mine = study.record();
    let path = study.out.join("study.json");
    let text = serde_json::to_string_pretty(&mine)?;
    if crate::io::create_new_atomic(&path, text.as_bytes())? {
        return Ok(mine.grid_hash);
    }
    let there = read_record(&study.out)?;
    if there.grid_hash != mine.grid_hash {
        return Err(bad_input(anyhow!(
            "{} holds another study (grid hash {}, {} networks × {} seeds; this one is {}, {} × {}): the grid, seeds and recipe must be the same in every shard — use another --out",
            study.out.display(),
            there.grid_hash,
            there.grid.len(),
            there.seeds.len(),
            mine.grid_hash,
            mine.grid.len(),
            mine.seeds.len()
        )));
    }
    Ok(mine.grid_hash)
}

/// `study-run.json` in a run folder: the study it belongs to.
#[derive(Serialize, Deserialize)]
struct RunRecord {
    grid_hash: String,
    spec: String,
    seed: u64,
}

/// One finished run: the row of `results.jsonl`.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct RunResult {
    /// The grid line.
    pub spec: String,
    /// The network's name.
    pub name: String,
    /// Its family (`sparse`, `dense`, `res`, `preres`, `plain`).
    pub family: String,
    /// Trainable parameters of the network as trained (the data's input and classes).
    pub params: u64,
    /// FLOPs per image as the paper counts them, for the data's input.
    pub flops: u64,
    /// The seed.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Test accuracy after the last epoch.
    pub final_test_acc: f64,
    /// Best test accuracy over the epochs.
    pub best_test_acc: f64,
    /// Test loss after the last epoch.
    pub final_test_loss: f64,
    /// Wall-clock seconds of training and evaluation, summed over epochs (a resumed run counts
    /// each epoch once).
    pub seconds: f64,
    /// The data it was trained and tested on.
    pub data: String,
    /// The graph metrics of the network's blocks, computed from the DAG that was trained (each
    /// value the mean over the blocks, the blocks' own beside them); absent for a network
    /// without blocks and in rows written before they existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphMetrics>,
}

/// A network's results over its seeds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NetworkSummary {
    /// The network's name.
    pub name: String,
    /// Its family.
    pub family: String,
    /// Parameters.
    pub params: u64,
    /// FLOPs per image.
    pub flops: u64,
    /// Seeds finished.
    pub seeds: usize,
    /// Final test error (%), mean over seeds.
    pub error_mean: f64,
    /// Its sample standard deviation (0 for one seed).
    pub error_std: f64,
    /// Best-epoch test error (%), mean over seeds.
    pub best_error_mean: f64,
    /// The network's graph metrics (as in its rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphMetrics>,
}

/// A file-system-safe folder name for a network and seed.
pub fn run_dir(out: &Path, name: &str, seed: u64) -> PathBuf {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.join("runs")
        .join(format!("{}-s{seed}", slug.trim_matches('_')))
}

/// The name a grid entry's runs use: the model name, or the free spec without its data suffix.
pub fn short_name(e: &GridEntry) -> String {
    match e.name.find(" (") {
        Some(i) => e.name[..i].to_string(),
        None => e.name.clone(),
    }
}

/// Check (or write) a run folder's `study-run.json`: a folder of another study is refused.
fn claim_run(dir: &Path, hash: &str, e: &GridEntry, seed: u64) -> Result<()> {
    let path = dir.join("study-run.json");
    if std::fs::symlink_metadata(&path).is_ok() {
        let text = read_study_file(&path, "run record")?;
        let r: RunRecord = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a run record", path.display()))
            .map_err(bad_input)?;
        if r.grid_hash != hash {
            return Err(bad_input(anyhow!(
                "{} belongs to another study (grid hash {}, this one {hash}): use another --out",
                dir.display(),
                r.grid_hash
            )));
        }
        return Ok(());
    }
    let r = RunRecord {
        grid_hash: hash.to_string(),
        spec: e.words.clone(),
        seed,
    };
    write_atomic(&path, serde_json::to_string_pretty(&r)?.as_bytes())
}

/// Train (or resume, or read back) one run, holding its folder's lock, advancing `bar` as its
/// epochs finish; its row is written to the folder's `result.json`. Returns the row and the
/// epochs trained now (0: the run had finished before and was read back).
fn one_run(
    study: &Study,
    hash: &str,
    e: &GridEntry,
    seed: u64,
    bar: indicatif::ProgressBar,
) -> Result<(RunResult, usize)> {
    let dir = run_dir(&study.out, &short_name(e), seed);
    let _lock = crate::io::try_lock_folder(&dir, train::FOLDER_LOCK, "study shard or train run")?;
    claim_run(&dir, hash, e, seed)?;
    let mut opts = study.recipe.clone();
    opts.spec = e.spec.clone();
    opts.name = short_name(e);
    opts.seed = seed;
    opts.out = dir.clone();
    opts.progress = false;
    opts.epoch_bar = Some(bar);
    opts.stop_after = None;
    let (last, _) = checkpoint::paths(&dir, "last");
    opts.resume = last.exists();
    let mut log: Vec<u8> = Vec::new();
    let summary = train::run_holding_lock(&opts, &mut log);
    // The run's own log, whole or not at all.
    let log_path = dir.join("train.log");
    let mut previous = match std::fs::symlink_metadata(&log_path) {
        Ok(_) => crate::io::read_regular(&log_path, "run log", MAX_STUDY_FILE)?,
        Err(_) => Vec::new(),
    };
    previous.extend_from_slice(&log);
    write_atomic(&log_path, &previous)?;
    let summary = summary.with_context(|| format!("{} (seed {seed})", opts.name))?;
    let meta = checkpoint::load_meta(&last)?;
    let last_epoch = summary
        .epochs
        .last()
        .with_context(|| format!("{}: no epoch finished", dir.display()))?;
    let (net, count) = build_and_count(&meta.spec)?;
    let row = RunResult {
        spec: e.words.clone(),
        name: opts.name,
        family: e.spec.family.name().to_string(),
        params: summary.params,
        flops: count.flops,
        seed,
        epochs: summary.epochs.len(),
        final_test_acc: last_epoch.test_acc,
        best_test_acc: summary.best.map_or(last_epoch.test_acc, |b| b.0),
        final_test_loss: last_epoch.test_loss,
        seconds: summary.epochs.iter().map(|m| m.seconds).sum(),
        data: meta.data_source,
        graph: graph_metrics(&net),
    };
    write_atomic(
        &dir.join(RESULT_FILE),
        serde_json::to_string_pretty(&row)?.as_bytes(),
    )?;
    Ok((row, summary.trained_now))
}

/// A finished run's row, in its folder.
pub const RESULT_FILE: &str = "result.json";

/// The lock `merge` holds in the study folder.
const MERGE_LOCK: &str = ".merge.lock";

/// Read a study's `results.jsonl` (the rows of its finished runs).
pub fn read_results(out: &Path) -> Result<Vec<RunResult>> {
    read_results_file(&out.join("results.jsonl"))
}

/// Read a `results.jsonl` file.
pub fn read_results_file(path: &Path) -> Result<Vec<RunResult>> {
    let text = read_study_file(path, "results file")?;
    text.lines()
        .enumerate()
        .map(|(i, l)| parse_row(l, &format!("{} line {}", path.display(), i + 1)))
        .collect()
}

/// Write `results.jsonl`: the finished runs in grid order.
fn write_results<'a>(out: &Path, rows: impl IntoIterator<Item = &'a RunResult>) -> Result<()> {
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    write_atomic(&out.join("results.jsonl"), text.as_bytes())
}

/// Train this process's runs of the study (all of them, or its [`Shard`]'s), printing a line
/// per finished run to `log`; returns their results in grid order (networks outer, seeds
/// inner). Runs that fail are reported and the others go on; the study then fails naming them.
/// Without shards `results.jsonl` is rewritten after every run, so the finished ones can be
/// looked at while the others train; shards leave it to [`merge`].
pub fn run(study: &Study, log: &mut (dyn Write + Send)) -> Result<Vec<RunResult>> {
    if study.seeds.is_empty() || study.grid.is_empty() {
        bail!("a study needs at least one network and one seed");
    }
    let hash = claim(study)?;
    let all = study.runs();
    let mine: Vec<usize> = (0..all.len()).filter(|&i| study.shard.owns(i)).collect();
    let total = mine.len();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let rows: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; all.len()]);
    let failures: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    let log = Mutex::new(log);
    let shard = if study.shard == Shard::WHOLE {
        String::new()
    } else {
        format!(
            "; shard {} trains {total} of the {} runs",
            study.shard,
            all.len()
        )
    };
    writeln!(
        log.lock().expect("log"),
        "study: {} networks × {} seeds = {} runs, {} at once, in {}{shard}",
        study.grid.len(),
        study.seeds.len(),
        all.len(),
        study.jobs.max(1),
        study.out.display()
    )?;
    // One line per run in progress on stderr, when it is a terminal (indicatif hides them
    // otherwise, so logs and pipes get only the lines above).
    let bars = indicatif::MultiProgress::new();
    let bar_style = indicatif::ProgressStyle::with_template(
        "{prefix}: epoch {pos}/{len} [{bar:24}] {msg} {elapsed}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    std::thread::scope(|scope| {
        for _ in 0..study.jobs.clamp(1, total.max(1)) {
            scope.spawn(|| loop {
                let j = next.fetch_add(1, Ordering::SeqCst);
                if j >= total {
                    break;
                }
                let i = mine[j];
                let (e, seed) = all[i];
                let t0 = std::time::Instant::now();
                let bar = bars.add(
                    indicatif::ProgressBar::new(study.recipe.epochs as u64)
                        .with_style(bar_style.clone())
                        .with_prefix(format!("{} seed {seed}", short_name(e))),
                );
                let r = one_run(study, &hash, e, seed, bar.clone());
                bar.finish_and_clear();
                bars.remove(&bar);
                let k = done.fetch_add(1, Ordering::SeqCst) + 1;
                let mut w = log.lock().expect("log");
                match r {
                    Ok((r, trained_now)) => {
                        let how = if trained_now == 0 {
                            "read back, trained before".to_string()
                        } else if trained_now < r.epochs {
                            format!("{trained_now} of {} epochs now, resumed", r.epochs)
                        } else {
                            format!("{:.0} s", t0.elapsed().as_secs_f64())
                        };
                        let _ = bars.suspend(|| writeln!(
                            w,
                            "[{k}/{total}] {} seed {seed}: test error {:.2} % ({} parameters, {how})",
                            r.name,
                            100.0 * (1.0 - r.final_test_acc),
                            r.params,
                        ));
                        let mut rows = rows.lock().expect("rows");
                        rows[i] = Some(r);
                        if study.shard == Shard::WHOLE {
                            let written = crate::io::lock_folder(&study.out, MERGE_LOCK)
                                .and_then(|_lock| write_results(&study.out, rows.iter().flatten()));
                            if let Err(e) = written {
                                failures.lock().expect("failures").push(e);
                            }
                        }
                    }
                    Err(err) => {
                        let _ = bars.suspend(|| writeln!(w, "[{k}/{total}] {} seed {seed}: failed: {err:#}", short_name(e)));
                        failures.lock().expect("failures").push(err);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    if !failures.is_empty() {
        let msg = anyhow!(
            "{} of {total} runs failed (the others are kept; run again to retry): {}",
            failures.len(),
            failures
                .iter()
                .map(|e| format!("{e:#}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        // Bad input (a folder of another study, one in use) keeps its status.
        let bad = failures
            .iter()
            .any(|e| e.downcast_ref::<crate::error::BadInput>().is_some());
        return Err(if bad { bad_input(msg) } else { msg });
    }
    Ok(rows
        .into_inner()
        .expect("rows")
        .into_iter()
        .flatten()
        .collect())
}

/// What [`merge`] found.
#[derive(Debug)]
pub enum Merge {
    /// Every run was done: `results.jsonl`, the summary and the figures are written.
    Done {
        /// Every run's row, in grid order.
        results: Vec<RunResult>,
        /// The summary table with its note (as `summary.txt`).
        table: String,
    },
    /// Some runs are not done yet; nothing was written.
    Waiting {
        /// Runs done.
        done: usize,
        /// Runs of the study.
        total: usize,
        /// The first run not done (its folder).
        first_missing: PathBuf,
    },
}

/// Gather the study's runs from their folders' `result.json` and, when every run is done,
/// write `results.jsonl` (grid order), `summary.json`, `summary.txt` and the figures, holding
/// the study's merge lock, so that shards finishing at once never write a file together.
pub fn merge(study: &Study) -> Result<Merge> {
    let _lock = crate::io::lock_folder(&study.out, MERGE_LOCK)?;
    // Only a merge writes in the study folder itself, so its stale temps are a merge's.
    crate::io::remove_stale_temps(&study.out)?;
    let runs = study.runs();
    let mut results = Vec::with_capacity(runs.len());
    let mut first_missing = None;
    for &(e, seed) in &runs {
        let path = run_dir(&study.out, &short_name(e), seed).join(RESULT_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => results.push(parse_row(
                &read_study_file(&path, "run result")?,
                &path.display().to_string(),
            )?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                first_missing
                    .get_or_insert(path.parent().map(Path::to_path_buf).unwrap_or_default());
            }
            Err(err) => {
                return Err(
                    anyhow::Error::new(err).context(format!("cannot read {}", path.display()))
                )
            }
        }
    }
    if let Some(first_missing) = first_missing {
        return Ok(Merge::Waiting {
            done: results.len(),
            total: runs.len(),
            first_missing,
        });
    }
    write_results(&study.out, &results)?;
    let table = report(study, &results)?;
    Ok(Merge::Done { results, table })
}

/// Mean ± standard deviation over seeds, per network, in grid order.
pub fn summarise(results: &[RunResult]) -> Vec<NetworkSummary> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    names
        .iter()
        .map(|&name| {
            let rs: Vec<&RunResult> = results.iter().filter(|r| r.name == name).collect();
            let errs: Vec<f64> = rs
                .iter()
                .map(|r| 100.0 * (1.0 - r.final_test_acc))
                .collect();
            let best: Vec<f64> = rs.iter().map(|r| 100.0 * (1.0 - r.best_test_acc)).collect();
            let (mean, std) = mean_std(&errs);
            NetworkSummary {
                name: name.to_string(),
                family: rs[0].family.clone(),
                params: rs[0].params,
                flops: rs[0].flops,
                seeds: rs.len(),
                error_mean: mean,
                error_std: std,
                best_error_mean: mean_std(&best).0,
                graph: rs[0].graph.clone(),
            }
        })
        .collect()
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The points of a family that no other point of the family beats: lower error at no more cost
/// (cost ascending).
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for q in p {
        if front.last().is_none_or(|l| q.1 < l.1) {
            front.push(q);
        }
    }
    front
}

/// The table of a summary, as text.
pub fn table(summary: &[NetworkSummary]) -> String {
    use prettytable::{format, Cell, Row, Table};
    let mut t = Table::new();
    t.set_format(*format::consts::FORMAT_BOX_CHARS);
    t.set_titles(Row::new(
        [
            "network",
            "family",
            "params",
            "MFLOPs",
            "seeds",
            "test error % (mean ± std)",
            "best-epoch error %",
        ]
        .iter()
        .map(|s| Cell::new(s))
        .collect(),
    ));
    for s in summary {
        t.add_row(Row::new(vec![
            Cell::new(&s.name),
            Cell::new(&s.family),
            Cell::new(&s.params.to_string()),
            Cell::new(&format!("{:.1}", s.flops as f64 / 1e6)),
            Cell::new(&s.seeds.to_string()),
            Cell::new(&format!("{:.2} ± {:.2}", s.error_mean, s.error_std)),
            Cell::new(&format!("{:.2}", s.best_error_mean)),
        ]));
    }
    t.to_string()
}

/// The paper's printed CIFAR error (%) and parameters of a named network, for an overlay on a
/// CIFAR study (`None` for other data or unnamed networks).
fn paper_point(name: &str, dataset: DatasetKind) -> Option<(f64, f64)> {
    let m = named(name).ok()?;
    let err = match dataset {
        DatasetKind::Cifar10 => m.paper_c10_error?,
        DatasetKind::Cifar100 => m.paper_c100_error?,
        _ => return None,
    };
    let params: f64 = m.paper_params?.parse().ok()?;
    Some((params * 1e6, err))
}

/// Write the summary files and the two figures; returns the table.
pub fn report(study: &Study, results: &[RunResult]) -> Result<String> {
    let summary = summarise(results);
    let text = table(&summary);
    write_atomic(
        &study.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let data = results.first().map_or("", |r| r.data.as_str());
    let note = format!(
        "{} epochs, seeds {:?}; data: {data}",
        study.recipe.epochs, study.seeds
    );
    write_atomic(
        &study.out.join("summary.txt"),
        format!("{text}{note}\n").as_bytes(),
    )?;
    for (stem, axis, cost) in [
        (
            "error_vs_params",
            "log10 parameters",
            (|s: &NetworkSummary| s.params as f64) as fn(&NetworkSummary) -> f64,
        ),
        (
            "error_vs_flops",
            "log10 FLOPs per image",
            |s: &NetworkSummary| s.flops as f64,
        ),
    ] {
        let mut families: Vec<&str> = Vec::new();
        for s in &summary {
            if !families.contains(&s.family.as_str()) {
                families.push(&s.family);
            }
        }
        let mut series = Vec::new();
        for (fi, fam) in families.iter().enumerate() {
            let pts: Vec<(f64, f64)> = summary
                .iter()
                .filter(|s| s.family == *fam)
                .map(|s| (cost(s).log10(), s.error_mean))
                .collect();
            let label =
                Family::parse(fam).map_or(fam.to_string(), |f| f.display_name().to_string());
            series.push(Series::new(label, pts.clone(), Mark::Points).colour(fi));
            series.push(Series::new("", pareto_front(&pts), Mark::Line).colour(fi));
        }
        if stem == "error_vs_params" {
            let paper: Vec<(f64, f64)> = summary
                .iter()
                .filter_map(|s| paper_point(&s.name, study.recipe.dataset))
                .map(|(p, e)| (p.log10(), e))
                .collect();
            if !paper.is_empty() {
                series.push(
                    Series::new("paper, as printed (C10+/C100+)", paper, Mark::Points)
                        .colour(families.len()),
                );
            }
        }
        let chart = Chart {
            title: format!(
                "Test error against {} (mean over seeds; lines: Pareto fronts)",
                if stem == "error_vs_params" {
                    "parameters"
                } else {
                    "FLOPs"
                }
            ),
            x_label: axis.into(),
            y_label: "test error (%)".into(),
            series,
        };
        plot::save(&chart, &study.out, stem)?;
    }
    Ok(format!("{text}{note}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_what_nothing_cheaper_beats() {
        let pts = [
            (3.0, 5.0),
            (1.0, 9.0),
            (2.0, 7.0),
            (2.5, 8.0),
            (4.0, 5.5),
            (5.0, 4.0),
        ];
        assert_eq!(
            pareto_front(&pts),
            vec![(1.0, 9.0), (2.0, 7.0), (3.0, 5.0), (5.0, 4.0)]
        );
        assert!(pareto_front(&[]).is_empty());
    }

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12 && (s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    /// A study folder written by an earlier build (issue 42's first converged study, kept in
    /// the repository) still has its hash: the recipe reads back and serialises as it did, so
    /// the folder resumes under this build.
    #[test]
    fn a_recorded_study_keeps_its_grid_hash() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("notebooks/figures/converged/study/c77-s1/study.json");
        let rec: StudyRecord =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(rec.grid_hash, "70c779a721d39865");
        assert_eq!(grid_hash(&rec.grid, &rec.seeds, &rec.recipe), rec.grid_hash);
    }

    #[test]
    fn run_dirs_are_safe_names() {
        let d = run_dir(Path::new("o"), "sparsenet-22-12 [offsets 1,2]", 3);
        assert_eq!(d, Path::new("o/runs/sparsenet-22-12__offsets_1_2-s3"));
    }
}
