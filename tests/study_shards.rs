//! A study cut into shards: run as separate processes into one folder and merged, it gives the
//! rows and checkpoints of the same study run by one process, bit for bit; a killed shard
//! resumes; a shard of another grid is refused; `study slurm`'s script runs the right shard
//! with the Slurm variables set by hand and submits the array and the merge job.

use crate::common::{run, sparsenet, subset, tmp};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STUDY: &str = "study";

const GRID: &str = "--family sparse --depth 10 --growth 4\n--family res --depth 8\n--family dense --depth 10 --growth 4\n";

/// The study's words: the grid file, 2 seeds (6 runs), a small recipe, the folder.
fn args(grid: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "efficiency",
        "--grid",
        grid.to_str().unwrap(),
        "--seeds",
        "1,2",
        "--epochs",
        "2",
        "--max-steps",
        "3",
        "--max-test",
        "100",
        "--data-dir",
        &subset(),
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn spawn(a: &[String]) -> Child {
    sparsenet(STUDY)
        .args(a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("study starts")
}

fn finish(c: Child) -> (i32, String, String) {
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// results.jsonl's rows without their wall-clock seconds (the one field that is a timing).
fn rows(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

fn run_folders(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every run's checkpoints are byte-identical in two study folders.
fn same_checkpoints(a: &Path, b: &Path) {
    let folders = run_folders(a);
    assert_eq!(folders.len(), 6);
    assert_eq!(folders, run_folders(b));
    for f in &folders {
        for ck in ["last.safetensors", "best.safetensors", "metrics.jsonl"] {
            let (x, y) = (
                a.join("runs").join(f).join(ck),
                b.join("runs").join(f).join(ck),
            );
            let (x, y) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
            if ck == "metrics.jsonl" {
                // Rows carry timings; their number must agree.
                assert_eq!(
                    x.iter().filter(|&&c| c == b'\n').count(),
                    y.iter().filter(|&&c| c == b'\n').count()
                );
            } else {
                assert!(x == y, "{f}/{ck} differs");
            }
        }
    }
}

/// The grid's runs in order (networks outer, seeds inner) as folder names.
fn runs_in_order() -> Vec<&'static str> {
    vec![
        "sparsenet-10-4-s1",
        "sparsenet-10-4-s2",
        "resnet-8-s1",
        "resnet-8-s2",
        "densenet-10-4-s1",
        "densenet-10-4-s2",
    ]
}

#[test]
fn shards_in_separate_processes_merge_to_the_one_process_study_bit_for_bit() {
    let dir = tmp("merge");
    std::fs::create_dir_all(&dir).unwrap();
    let grid = dir.join("grid.txt");
    std::fs::write(&grid, GRID).unwrap();
    let one = dir.join("one");
    let (code, _, err) = finish(spawn(&args(&grid, &one, &[])));
    assert_eq!(code, 0, "{err}");

    // Three shards at once into one folder: the last to finish merges.
    let sharded = dir.join("sharded");
    let children: Vec<Child> = (0..3)
        .map(|i| spawn(&args(&grid, &sharded, &["--shard", &format!("{i}/3")])))
        .collect();
    let outs: Vec<(i32, String, String)> = children.into_iter().map(finish).collect();
    for (code, out, err) in &outs {
        assert_eq!(*code, 0, "{out}{err}");
        assert!(out.contains("trains 2 of the 6 runs"), "{out}");
    }
    assert!(
        outs.iter().any(|(_, o, _)| o.contains("results in")),
        "no shard merged"
    );
    assert_eq!(rows(&one), rows(&sharded));
    assert_eq!(rows(&one).len(), 6);
    same_checkpoints(&one, &sharded);
    for f in [
        "summary.json",
        "summary.txt",
        "error_vs_params.png",
        "study.json",
    ] {
        assert!(sharded.join(f).exists(), "{f}");
    }
    assert_eq!(
        std::fs::read(one.join("summary.json")).unwrap(),
        std::fs::read(sharded.join("summary.json")).unwrap()
    );

    // One shard alone writes only its run folders (runs 1 and 4 of 0..6) and no results;
    // `study merge` says what is missing and writes nothing.
    let alone = dir.join("alone");
    let (code, out, err) = finish(spawn(&args(&grid, &alone, &["--shard", "1/3"])));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 of 6 runs"), "{out}");
    let order = runs_in_order();
    assert_eq!(run_folders(&alone), {
        let mut v = vec![order[1].to_string(), order[4].to_string()];
        v.sort();
        v
    });
    assert!(!alone.join("results.jsonl").exists());
    let (code, out, err) = run(STUDY, &["merge", alone.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 of 6 runs") && out.contains(order[0]),
        "{out}"
    );
    assert!(!alone.join("results.jsonl").exists());

    // A shard killed inside its second run resumes and the study still equals the one-process
    // study, bit for bit.
    let killed = dir.join("killed");
    let mut child = spawn(&args(&grid, &killed, &["--shard", "0/2"]));
    let second = killed.join("runs").join(order[2]);
    let t0 = Instant::now();
    loop {
        if second.join("last.safetensors").exists() || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the shard never reached its second run"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    for i in [0, 1] {
        let (code, out, err) = finish(spawn(&args(
            &grid,
            &killed,
            &["--shard", &format!("{i}/2")],
        )));
        assert_eq!(code, 0, "{out}{err}");
    }
    assert_eq!(rows(&one), rows(&killed));
    same_checkpoints(&one, &killed);
}

#[test]
fn a_shard_of_another_grid_or_a_busy_folder_is_refused() {
    let dir = tmp("refuse");
    std::fs::create_dir_all(&dir).unwrap();
    let grid = dir.join("grid.txt");
    std::fs::write(&grid, GRID).unwrap();
    let other = dir.join("other.txt");
    std::fs::write(&other, "--family res --depth 8\n").unwrap();
    let out = dir.join("study");
    let (code, _, err) = finish(spawn(&args(&grid, &out, &["--shard", "2/3"])));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = finish(spawn(&args(&other, &out, &["--shard", "0/3"])));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("holds another study") && err.lines().count() == 1,
        "{err}"
    );
    // Other seeds are another study too.
    let mut a = args(&grid, &out, &[]);
    a[4] = "1,2,3".into();
    let (code, _, err) = finish(spawn(&a));
    assert_eq!(code, 2, "{err}");
    // A run folder that says it belongs to another study.
    let fresh = dir.join("fresh");
    let run_dir = fresh.join("runs").join("resnet-8-s1");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(
        run_dir.join("study-run.json"),
        r#"{"grid_hash":"0123456789abcdef","spec":"--family res --depth 8","seed":1}"#,
    )
    .unwrap();
    let (code, _, err) = finish(spawn(&args(&grid, &fresh, &["--shard", "0/2"])));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("belongs to another study"), "{err}");
    // Bad shards and merges.
    for (s, want) in [
        ("3/2", "does not exist"),
        ("1", "give I/N"),
        ("0/0", "1..=100000"),
        ("a/b", "give I/N"),
    ] {
        let (code, _, err) = finish(spawn(&args(&grid, &dir.join("x"), &["--shard", s])));
        assert_eq!(code, 2, "{s}: {err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{s}: {err}");
    }
    let (code, _, err) = run(STUDY, &["merge", dir.join("nothing").to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("study.json"), "{err}");

    // Two writers of one run folder: a train running there holds its lock, so a second train
    // into it is refused with one line, and so is the shard that owns that run.
    let busy = dir.join("busy");
    let train = |extra: &[&str]| {
        let mut c = sparsenet("train");
        c.args([
            "--family",
            "res",
            "--depth",
            "8",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--max-test",
            "50",
            "--quiet",
            "--data-dir",
            &subset(),
            "--out",
        ])
        .arg(busy.join("runs").join("resnet-8-s1"))
        .args(extra)
        .env("SPARSENET_SLOW_WRITES", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    };
    let first = train(&[]).spawn().unwrap();
    let lock = busy.join("runs/resnet-8-s1/.lock");
    let t0 = Instant::now();
    while !lock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let second = train(&[]).output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains("in use by another") && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = finish(spawn(&args(&grid, &busy, &["--shard", "0/2"])));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("in use by another"), "{err}");
    let o = first.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_slurm_script_runs_its_shard_and_submits_the_array_and_the_merge() {
    let dir = tmp("slurm");
    std::fs::create_dir_all(&dir).unwrap();
    let grid = dir.join("grid.txt");
    std::fs::write(&grid, GRID).unwrap();
    let out = dir.join("study");
    let mut a: Vec<String> = [
        "slurm",
        "--shards",
        "2",
        "--max-running",
        "1",
        "--cpus-per-task",
        "3",
        "--partition",
        "cpu",
        "--time",
        "01:00:00",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(args(&grid, &out, &[]));
    let words: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, script, err) = run(STUDY, &words);
    assert_eq!(code, 0, "{err}");
    for want in [
        "#SBATCH --array=0-1%1",
        "#SBATCH --cpus-per-task=3",
        "#SBATCH --partition=cpu",
        "#SBATCH --time=01:00:00",
        "--shard \"$SLURM_ARRAY_TASK_ID/$SHARDS\"",
        "--dependency=afterok:",
        "%x-%A_%a.out",
    ] {
        assert!(script.contains(want), "{want} missing:\n{script}");
    }
    let job = dir.join("job.sh");
    std::fs::write(&job, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&job).output().unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    // Array task 1, by hand: shard 1/2 trains runs 1, 3, 5 and nothing else.
    let task = |id: &str| {
        Command::new("bash")
            .arg(&job)
            .env("SLURM_ARRAY_TASK_ID", id)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let o = task("1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let order = runs_in_order();
    let mut want: Vec<String> = [1, 3, 5].iter().map(|&i| order[i].to_string()).collect();
    want.sort();
    assert_eq!(run_folders(&out), want);
    assert!(!out.join("results.jsonl").exists());

    // Outside Slurm the script submits itself as the array, then the merge after it.
    let bin = crate::common::stand_in_sbatch(&dir);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .arg(&job)
        .env("PATH", &path)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("job 4242 and the merge as job 4243"));
    let log = std::fs::read_to_string(dir.join("sbatch.log"))
        .unwrap()
        .replace(" token=64", "");
    let calls: Vec<&str> = log.lines().collect();
    assert_eq!(calls.len(), 2, "{log}");
    assert!(
        calls[0].starts_with("--parsable") && calls[0].ends_with("job.sh"),
        "{log}"
    );
    assert!(
        calls[1].contains("--dependency=afterok:4242")
            && calls[1].contains("--partition=cpu")
            && calls[1].contains(&format!("merge {}", out.display())),
        "{log}"
    );
    // Task 0 finishes the study and merges it.
    let o = task("0");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rows(&out).len(), 6);

    // Bad requests: more shards than runs, a study that does not shard, --shard given.
    for (extra, want) in [
        (vec!["--shards", "7", "--"], "only 6 runs"),
        (
            vec!["--shards", "2", "--", "weights", "--checkpoint", "x"],
            "must be `efficiency",
        ),
        (
            vec![
                "--shards",
                "2",
                "--",
                "efficiency",
                "--preset",
                "quick",
                "--shard",
                "0/2",
            ],
            "has --shard",
        ),
        (
            vec![
                "--shards",
                "2",
                "--",
                "efficiency",
                "--grid",
                "/nonexistent",
            ],
            "cannot read",
        ),
    ] {
        let mut w: Vec<String> = vec!["slurm".into()];
        w.extend(extra.iter().map(|s| s.to_string()));
        if extra.len() == 3 {
            w.extend(args(&grid, &out, &[]));
        }
        let words: Vec<&str> = w.iter().map(String::as_str).collect();
        let (code, stdout, err) = run(STUDY, &words);
        assert_ne!(code, 0, "{w:?}");
        assert!(
            stdout.is_empty() && err.contains(want) && err.lines().count() == 1,
            "{w:?}: {err}"
        );
    }
}
