//! A training run killed with SIGKILL at arbitrary instants, resumed each time with `--resume`,
//! ends exactly where an uninterrupted run ends: the same `metrics.jsonl` rows and the same
//! weights bit for bit, and no temporary or half-written file left behind.
//!
//! The instants are drawn from a seeded generator over the run's duration. Every write pauses
//! half-way (`SPARSENET_SLOW_WRITES`, the trainer's fault-injection knob), so a good share of
//! the kills land inside a checkpoint or metrics write; the test counts how many did.

use crate::common::{sparsenet, tmp};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Milliseconds each write pauses half-way.
const SLOW_WRITE_MS: u64 = 15;

/// The run under test: a small SparseNet, 4 epochs of 3 steps on the embedded subset.
fn command(out: &Path, resume: bool) -> Command {
    let mut c = sparsenet("train");
    c.args([
        "--family",
        "sparse",
        "--depth",
        "10",
        "--growth",
        "4",
        "--epochs",
        "4",
        "--max-steps",
        "3",
        "--max-test",
        "100",
        "--seed",
        "11",
        "--threads",
        "1",
        "--quiet",
        "--data-dir",
        crate::common::SUBSET,
        "--out",
    ])
    .arg(out)
    .env("SPARSENET_SLOW_WRITES", SLOW_WRITE_MS.to_string())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if resume {
        c.arg("--resume");
    }
    c
}

/// The metrics rows without their timing fields (`images_per_sec`, `seconds`).
fn rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON row");
            format!(
                "{} {} {} {} {} {} {}",
                v["epoch"],
                v["lr"],
                v["train_loss"],
                v["train_acc"],
                v["test_loss"],
                v["test_acc"],
                v["steps"]
            )
        })
        .collect()
}

/// Every tensor of a checkpoint, by name.
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("a whole safetensors file");
    let mut v: Vec<(String, Vec<u8>)> = st
        .names()
        .into_iter()
        .map(|n| (n.clone(), st.tensor(n).unwrap().data().to_vec()))
        .collect();
    v.sort();
    v
}

/// Hidden temp files left in `dir`.
fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') && n.contains(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the temp file of a write of `target` (`.target.<pid>-<n>.tmp`) is in `dir`.
fn writing(dir: &Path, target: &str) -> bool {
    let prefix = format!(".{target}.");
    temps(dir)
        .iter()
        .any(|n| n.starts_with(&prefix) && n.ends_with(".tmp"))
}

/// Start (or resume) the run and kill it while `target` is half-written in epoch `epoch`
/// (metrics are written first, so `metrics.jsonl` then holds `epoch` rows, or `epoch − 1`
/// while it is itself the file being written). False if the run ended without reaching that
/// point.
fn kill_inside(dir: &Path, target: &str, epoch: usize) -> bool {
    let epoch = if target == "metrics.jsonl" {
        epoch - 1
    } else {
        epoch
    };
    let resume = dir.join("last.safetensors").exists();
    let mut child = command(dir, resume).spawn().expect("train starts");
    loop {
        if child.try_wait().expect("poll").is_some() {
            return false;
        }
        let rows_now = std::fs::read_to_string(dir.join("metrics.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if rows_now == epoch && writing(dir, target) {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The epoch whose checkpoint is `best` in a finished run.
fn best_epoch(dir: &Path) -> usize {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("best.json")).unwrap()).unwrap();
    meta["epoch"].as_u64().unwrap() as usize
}

#[test]
fn killed_inside_each_write_of_the_last_epochs_and_resumed_equals_uninterrupted() {
    let whole = tmp("whole-targeted");
    assert!(command(&whole, false)
        .status()
        .expect("train runs")
        .success());
    let best = best_epoch(&whole);
    let dir = tmp("targeted");
    // The writes of one epoch in order: metrics, figures, best (when it improved), last. Killing
    // inside `best` after `last` already claims the epoch would leave `best` behind for good.
    let targets = [
        ("metrics.jsonl", 2),
        ("last.safetensors", best),
        ("best.safetensors", best),
        ("accuracy.svg", 4),
        ("last.safetensors", 4),
    ];
    for (target, epoch) in targets {
        assert!(
            kill_inside(&dir, target, epoch),
            "never saw {target} in epoch {epoch}"
        );
    }
    let out = command(&dir, true).output().expect("train resumes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows(&whole), rows(&dir), "metrics.jsonl rows");
    for stem in ["last", "best"] {
        let (a, b) = (
            tensors(&whole.join(format!("{stem}.safetensors"))),
            tensors(&dir.join(format!("{stem}.safetensors"))),
        );
        assert!(
            a == b,
            "{stem}.safetensors differs from the uninterrupted run's"
        );
    }
    assert_eq!(temps(&dir), Vec::<String>::new(), "temp files left");
    let _ = std::fs::remove_dir_all(&whole);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn killed_at_twenty_instants_and_resumed_equals_uninterrupted() {
    // The reference: one run, never interrupted.
    let whole = tmp("whole");
    let t0 = Instant::now();
    let status = command(&whole, false).status().expect("train runs");
    assert!(status.success());
    let duration = t0.elapsed();

    // The same run, killed at seeded instants across its length and resumed each time.
    let killed = tmp("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let (mut kills, mut during_write, mut attempts) = (0, 0, 0);
    let finished = loop {
        attempts += 1;
        assert!(attempts < 200, "the run never finished");
        let resume = killed.join("last.safetensors").exists();
        let mut child = command(&killed, resume).spawn().expect("train starts");
        if kills >= 20 {
            let out = child.wait_with_output().expect("train ends");
            break out;
        }
        // Mostly within the first half (a resumed run has less left to do), sometimes later.
        let span = duration.as_millis() as u64;
        let at = Duration::from_millis(rng.gen_range(span / 20..=span * 3 / 4));
        let start = Instant::now();
        loop {
            if child.try_wait().expect("poll").is_some() || start.elapsed() >= at {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().expect("poll").is_some() {
            // It finished before the instant: start again from the top.
            let _ = std::fs::remove_dir_all(&killed);
            continue;
        }
        if !temps(&killed).is_empty() {
            during_write += 1;
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        kills += 1;
    };
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert!(
        during_write >= 3,
        "only {during_write} of {kills} kills landed inside a write"
    );

    assert_eq!(rows(&whole), rows(&killed), "metrics.jsonl rows");
    for stem in ["last", "best"] {
        let (a, b) = (
            tensors(&whole.join(format!("{stem}.safetensors"))),
            tensors(&killed.join(format!("{stem}.safetensors"))),
        );
        assert_eq!(a.len(), b.len(), "{stem}: tensor count");
        for ((na, da), (nb, db)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert!(da == db, "{stem}: tensor {na} differs");
        }
    }
    assert_eq!(temps(&killed), Vec::<String>::new(), "temp files left");
    eprintln!(
        "{kills} kills ({during_write} inside a write) over {attempts} starts; uninterrupted run {:.2}s",
        duration.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&whole);
    let _ = std::fs::remove_dir_all(&killed);
}

/// `study search` killed with SIGKILL at seeded instants (in the first half of an uninterrupted
/// search's time: each run again has less left to do) and run again each time ends with the
/// record and candidates of an uninterrupted search, byte for byte, and no temporary file: its
/// bookkeeping is the rungs' studies and two files written atomically at the end (issue 26).
#[test]
fn a_search_killed_at_eight_instants_and_run_again_equals_an_uninterrupted_one() {
    let dir = tmp("search-kill");
    let _ = std::fs::remove_dir_all(&dir);
    let search = |out: &Path| {
        let mut c = sparsenet("study");
        c.args([
            "search",
            "--budget-params",
            "3000",
            "--tolerance",
            "0.5",
            "--depth",
            "13",
            "--candidates",
            "3",
            "--rungs",
            "2",
            "--max-steps",
            "3",
            "--max-test",
            "100",
            "--threads",
            "1",
            "--data-dir",
            crate::common::SUBSET,
            "--out",
        ])
        .arg(out)
        .env("SPARSENET_SLOW_WRITES", SLOW_WRITE_MS.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    };
    let whole = dir.join("whole");
    let t0 = Instant::now();
    let o = search(&whole).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let span = t0.elapsed();
    let killed = dir.join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(26);
    let mut kills = 0;
    for _ in 0..8 {
        let mut child = search(&killed).spawn().unwrap();
        let at = Duration::from_millis(rng.gen_range(0..(span.as_millis() as u64 / 2).max(1)));
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
    }
    let o = search(&killed).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        kills >= 4,
        "only {kills} of the 8 instants found the search running"
    );
    for f in ["search.json", "candidates.jsonl", "front.txt"] {
        assert_eq!(
            std::fs::read_to_string(whole.join(f)).unwrap(),
            std::fs::read_to_string(killed.join(f)).unwrap(),
            "{f} after {kills} kills"
        );
    }
    for d in [killed.clone(), killed.join("rung-0"), killed.join("rung-1")] {
        assert!(
            temps(&d).is_empty(),
            "{:?} left in {}",
            temps(&d),
            d.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
