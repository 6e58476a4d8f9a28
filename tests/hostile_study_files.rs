//! The files the study commands read, crafted to hang or flood them (issue 40, item 8): a FIFO
//! or `/dev/zero` where `results.jsonl`, `study.json`, a run's `result.json` or
//! `study-run.json` should be, a metric of 1.7·10³⁰⁸, a number JSON cannot hold, and a
//! `--bootstrap` whose work no machine finishes. Each is refused in one line (exit 2), within
//! seconds; none hangs.

use crate::common::{fresh_dir, sparsenet, subset};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const STUDY: &str = "study";

/// A real results file: the full-data search's first rung (27 runs).
const RUNG0: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/notebooks/figures/search-77k/rung-0/results.jsonl"
);

/// Run `study` with `args` in `dir`, killing it after 30 s: (status, stderr). A hang fails the
/// test instead of stalling the suite.
fn study_within(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = sparsenet(STUDY)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("study {args:?} hung for 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn refused(code: i32, err: &str, says: &str) {
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim().lines().count() == 1 && err.contains(says),
        "{says}: {err}"
    );
}

#[test]
fn results_files_that_hang_flood_or_lie_are_refused() {
    let dir = fresh_dir("results");
    let rows = std::fs::read_to_string(RUNG0).unwrap();
    // A FIFO and /dev/zero as the results file.
    crate::common::mkfifo(&dir.join("fifo.jsonl"));
    let (code, err) = study_within(&dir, &["correlate", "fifo.jsonl", "--out", "o"]);
    refused(code, &err, "not a regular file");
    let (code, err) = study_within(&dir, &["correlate", "/dev/zero", "--out", "o"]);
    refused(code, &err, "not a regular file");
    // A FIFO as a study folder's results.jsonl.
    std::fs::create_dir_all(dir.join("study")).unwrap();
    crate::common::mkfifo(&dir.join("study/results.jsonl"));
    let (code, err) = study_within(&dir, &["correlate", "study", "--out", "o"]);
    refused(code, &err, "not a regular file");
    // Values no run produces: a metric of 1.7e308, an accuracy of 2, a number past f64.
    for (from, to, says) in [
        (
            "\"log10_paths\":1.556302500767287",
            "\"log10_paths\":1.7e308",
            "log10_paths",
        ),
        (
            "\"final_test_acc\":0.7417",
            "\"final_test_acc\":2.0",
            "final_test_acc",
        ),
        (
            "\"final_test_acc\":0.7417",
            "\"final_test_acc\":1e400",
            "not a study result",
        ),
    ] {
        assert!(rows.contains(from));
        std::fs::write(dir.join("bad.jsonl"), rows.replacen(from, to, 1)).unwrap();
        let (code, err) = study_within(&dir, &["correlate", "bad.jsonl", "--out", "o"]);
        refused(code, &err, says);
        assert!(err.contains("bad.jsonl line 1"), "{err}");
    }
    // A request whose work is out of reach: refused before resampling.
    let many: String = rows
        .lines()
        .cycle()
        .take(20_000)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("many.jsonl"), many).unwrap();
    let (code, err) = study_within(
        &dir,
        &[
            "correlate",
            "many.jsonl",
            "--bootstrap",
            "1000000",
            "--out",
            "o",
        ],
    );
    refused(code, &err, "smaller --bootstrap");
    // The real file still correlates.
    std::fs::write(dir.join("good.jsonl"), &rows).unwrap();
    let (code, err) = study_within(&dir, &["correlate", "good.jsonl", "--out", "o"]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn study_folders_with_fifos_for_records_are_refused() {
    let dir = fresh_dir("folders");
    let grid = dir.join("grid.txt");
    std::fs::write(&grid, "--family sparse --depth 7 --growth 2\n").unwrap();
    let data = subset();
    let study = |out: &str| {
        vec![
            "efficiency".to_string(),
            "--grid".into(),
            grid.to_str().unwrap().into(),
            "--seeds".into(),
            "1".into(),
            "--epochs".into(),
            "1".into(),
            "--max-steps".into(),
            "2".into(),
            "--max-test".into(),
            "20".into(),
            "--data-dir".into(),
            data.clone(),
            "--out".into(),
            out.into(),
        ]
    };
    let run = |v: Vec<String>| {
        let args: Vec<&str> = v.iter().map(String::as_str).collect();
        study_within(&dir, &args)
    };
    // A finished study, then its records replaced by FIFOs one at a time.
    let (code, err) = run(study("s"));
    assert_eq!(code, 0, "{err}");
    let run_dir = std::fs::read_dir(dir.join("s/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (file, cmd) in [
        (
            dir.join("s/study.json"),
            vec!["merge".to_string(), "s".into()],
        ),
        (
            run_dir.join("result.json"),
            vec!["merge".to_string(), "s".into()],
        ),
        (run_dir.join("study-run.json"), study("s")),
        (run_dir.join("train.log"), study("s")),
    ] {
        let saved = std::fs::read(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        crate::common::mkfifo(&file);
        let (code, err) = run(cmd);
        refused(code, &err, "not a regular file");
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, saved).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
