//! The training-memory estimate (`src/train/memory.rs`) against the peak resident memory the
//! trainer reports, and the refusals it makes before anything is allocated (issue 29, item 1).

use super::common::{fresh_dir, run, subset};

const TRAIN: &str = "train";

/// A byte count as `train` prints it (`812 MB`, `3.2 GB`).
fn bytes(text: &str) -> f64 {
    let mut it = text.split_whitespace();
    let v: f64 = it.next().unwrap().parse().unwrap();
    match it.next().unwrap() {
        "MB" => v * 1e6,
        "GB" => v * 1e9,
        "TB" => v * 1e12,
        u => panic!("unit {u}"),
    }
}

fn after<'a>(out: &'a str, prefix: &str) -> &'a str {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in\n{out}"));
    line.split(" (").next().unwrap()
}

#[test]
fn the_estimate_bounds_the_measured_peak_within_the_stated_factor() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return; // the peak is read from Linux's VmHWM
    }
    let data = subset();
    for (i, net) in [
        &["--model", "sparsenet-40-24"][..],
        &["--family", "res", "--depth", "20"],
        &[
            "--family",
            "dense",
            "--depth",
            "40",
            "--growth",
            "12",
            "--batch-size",
            "128",
        ],
    ]
    .iter()
    .enumerate()
    {
        let out = fresh_dir(&format!("peak{i}"));
        let mut args: Vec<&str> = net.to_vec();
        let out_s = out.to_string_lossy().into_owned();
        args.extend([
            "--data-dir",
            &data,
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--max-test",
            "50",
            "--quiet",
            "--threads",
            "2",
            "--out",
            &out_s,
        ]);
        let (code, stdout, stderr) = run(TRAIN, &args);
        assert_eq!(code, 0, "{net:?}: {stderr}");
        let est = bytes(after(&stdout, "memory: about "));
        let peak = bytes(after(&stdout, "peak resident memory: "));
        let ratio = peak / est;
        assert!(
            (0.45..=1.05).contains(&ratio),
            "{net:?}: peak {peak} against estimate {est} (ratio {ratio:.2})"
        );
    }
}

#[test]
fn runs_that_cannot_fit_are_refused_at_once_in_one_line() {
    let data = subset();
    let out = fresh_dir("refused");
    let out_s = out.to_string_lossy().into_owned();
    let common = [
        "--data-dir",
        &data,
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--out",
        &out_s,
    ];
    let t = std::time::Instant::now();
    for net in [
        &["--random", "er:p=1", "--nodes", "300", "--growth", "4"][..],
        &["--family", "dense", "--depth", "10000", "--growth", "1000"],
        &["--model", "sparsenet-40-24", "--max-memory", "100M"],
    ] {
        let mut args = net.to_vec();
        args.extend(common);
        let (code, _, stderr) = run(TRAIN, &args);
        assert_eq!(code, 2, "{net:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{net:?}: {stderr}");
        assert!(
            stderr.contains("needs about") && stderr.contains("--max-memory"),
            "{net:?}: {stderr}"
        );
    }
    // Refused before the network is allocated: seconds, not the minutes of an allocation.
    assert!(t.elapsed().as_secs() < 60);
    let (code, _, stderr) = run(
        TRAIN,
        &["--model", "sparsenet-40-24", "--max-memory", "abc"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("memory size 'abc'"), "{stderr}");
}
