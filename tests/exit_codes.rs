//! The exit-status table of the README ("Exit codes"), command by command: 0 success, 1 a
//! failed check or run, 2 bad input, 3 a file that could not be read or written. Every error
//! is one line on stderr.

use crate::common::{fresh_dir as tmp, sparsenet, status, SUBSET};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn every_command_follows_the_table() {
    let dir = tmp("table");
    // A path under a regular file can be neither created nor written, even by root.
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let blocked = file.join("sub");
    let blocked = blocked.to_str().unwrap();
    // A tiny run; `set` replaces flags (clap refuses a flag given twice).
    let tiny = |set: &[(&'static str, String)]| -> Vec<String> {
        let mut flags: Vec<(&str, String)> = vec![
            ("--family", "sparse".into()),
            ("--depth", "7".into()),
            ("--growth", "2".into()),
            ("--epochs", "1".into()),
            ("--max-steps", "1".into()),
            ("--max-test", "10".into()),
            ("--data-dir", SUBSET.into()),
        ];
        for (k, v) in set {
            match flags.iter_mut().find(|(f, _)| f == k) {
                Some(slot) => slot.1 = v.clone(),
                None => flags.push((k, v.clone())),
            }
        }
        let mut out = vec!["--quiet".to_string()];
        for (k, v) in flags {
            out.push(k.to_string());
            out.push(v);
        }
        out
    };
    let run_dir = dir.join("run");
    let out_of = |p: &std::path::Path| ("--out", p.to_str().unwrap().to_string());
    let good = tiny(&[out_of(&run_dir)]);
    let zero_epochs = tiny(&[out_of(&dir.join("z")), ("--epochs", "0".into())]);
    let no_data = tiny(&[
        out_of(&dir.join("d")),
        ("--data-dir", "/nonexistent".into()),
    ]);
    let blocked_run = tiny(&[("--out", blocked.to_string())]);
    let gpus_on_cpu = tiny(&[out_of(&dir.join("g")), ("--gpus", "2".into())]);
    let diverges = tiny(&[
        out_of(&dir.join("nan")),
        ("--lr", "1e30".into()),
        ("--max-steps", "5".into()),
        ("--depth", "10".into()),
        ("--growth", "4".into()),
    ]);
    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"not a checkpoint").unwrap();
    let (paths, zoo, train, evaluate, study, dist_check) =
        ("paths", "zoo", "train", "evaluate", "study", "dist-check");
    let nowhere = dir.join("nowhere");
    let last = run_dir.join("last.safetensors");
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        (paths, vec!["--depth", "12"], 0),
        (paths, vec!["--depth", "0"], 2),
        (paths, vec!["--depth", "12", "--bogus"], 2),
        (paths, vec!["--depth", "12", "--plot", blocked], 3),
        (zoo, vec!["--model", "sparsenet-40-24"], 0),
        (zoo, vec!["--model", "sparsenet-40"], 2),
        (
            zoo,
            vec!["--family", "dense", "--depth", "41", "--growth", "12"],
            2,
        ),
        (zoo, vec!["--model", "nope", "--dag"], 2),
        (
            zoo,
            vec!["--model", "sparsenet-40-24", "--plot", blocked],
            3,
        ),
        (train, strs(&good), 0),
        (train, strs(&zero_epochs), 2),
        (train, strs(&no_data), 2),
        (train, strs(&blocked_run), 3),
        (train, strs(&gpus_on_cpu), 2),
        (train, strs(&diverges), 1),
        (evaluate, vec!["--checkpoint", last.to_str().unwrap()], 0),
        (evaluate, vec!["--checkpoint", corrupt.to_str().unwrap()], 2),
        (
            evaluate,
            vec!["--checkpoint", "/nonexistent/x.safetensors"],
            3,
        ),
        (study, vec![], 2),
        (
            study,
            vec!["slurm", "--", "efficiency", "--preset", "quick"],
            2,
        ),
        (
            study,
            vec!["efficiency", "--preset", "quick", "--shard", "3/2"],
            2,
        ),
        (study, vec!["merge", nowhere.to_str().unwrap()], 3),
        (dist_check, vec![], 2),
    ];
    for (bin, args, want) in &cases {
        let (code, err) = status(bin, args);
        let name = bin.rsplit('/').next().unwrap();
        assert_eq!(code, *want, "{name} {args:?}: {err}");
        if *want != 0 && !args.is_empty() {
            assert_eq!(err.trim_end().lines().count(), 1, "{name} {args:?}: {err}");
            assert!(!err.contains("panicked"), "{name} {args:?}: {err}");
        }
    }
    // A missing argument is named on the one line; a command without its subcommand shows
    // its help and says so last.
    let (_, err) = status(study, &["slurm", "--", "efficiency", "--preset", "quick"]);
    assert!(err.contains("--shards <SHARDS>"), "{err}");
    let (_, err) = status(study, &[]);
    assert!(
        err.contains("Usage: sparsenet study")
            && err.trim_end().ends_with("give a subcommand (listed above)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Standard output that cannot be written (`/dev/full`) is status 3 with one line in every
/// binary, whatever the command printed — tables, JSON, DOT, help, version — while a closed
/// pipe (`| head`) stays success (issue 29, item 8).
#[test]
fn a_failed_stdout_write_is_status_3_in_every_binary() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full here");
        return;
    };
    let out = tmp("stdout");
    let out = out.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("zoo", vec![]),
        ("zoo", vec!["--list"]),
        ("zoo", vec!["--model", "sparsenet-40-24", "--dag"]),
        ("zoo", vec!["--sweep-depth", "-f", "csv"]),
        ("paths", vec!["--depth", "10"]),
        (
            "paths",
            vec!["--random", "ba:m=2", "--nodes", "20", "-f", "dot"],
        ),
        ("paths", vec!["--random", "ba:m=2", "--nodes", "20"]),
        ("train", vec!["--help"]),
        (
            "train",
            vec![
                "--family",
                "sparse",
                "--depth",
                "7",
                "--growth",
                "2",
                "--epochs",
                "1",
                "--max-steps",
                "1",
                "--max-test",
                "10",
                "--quiet",
                "--data-dir",
                SUBSET,
                "--out",
                out,
            ],
        ),
        ("evaluate", vec!["--version"]),
        ("export", vec!["--help"]),
        ("study", vec!["--help"]),
        ("dist-check", vec!["--help"]),
    ];
    for (bin, args) in cases {
        let o = sparsenet(bin)
            .args(&args)
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{bin} {args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{bin} {args:?}: {err}");
        assert!(err.contains("could not write"), "{bin} {args:?}: {err}");
    }
}

/// The hostile sweep of issue 29 as a regression test: each command line, run under a 1.5 GB
/// address-space limit (`ulimit -v`) and a 60 s time limit, ends by itself with its status from
/// the table and one line on stderr — never a signal, an allocation abort or a hang.
#[test]
fn hostile_command_lines_end_in_one_line_within_limits() {
    if !std::path::Path::new("/bin/sh").exists() {
        return;
    }
    let dir = tmp("hostile");
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let fifo = fifo.to_str().unwrap().to_string();
    let out = dir.join("run").to_str().unwrap().to_string();
    let command = |c: &str| format!("{} {c}", crate::common::SPARSENET);
    let (paths, zoo, train, evaluate) = (
        command("paths"),
        command("zoo"),
        command("train"),
        command("evaluate"),
    );
    let run_flags = format!("--epochs 1 --max-steps 1 --data-dir {SUBSET} --out {out}");
    let mut rows: Vec<(String, i32)> = vec![
        (format!("{paths} --random er:p=1 --nodes 100000"), 2),
        (format!("{paths} --random er:p=1 --nodes 25000"), 2),
        (format!("{zoo} --random er:p=1 --nodes 100000"), 2),
        (
            format!("{train} --random er:p=1 --nodes 300 --growth 4 {run_flags}"),
            2,
        ),
        (
            format!("{train} --family dense --depth 10000 --growth 1000 {run_flags}"),
            2,
        ),
        (format!("{paths} --dag-file /dev/zero"), 2),
        (format!("{paths} --dag-file /dev/urandom"), 2),
        (format!("{evaluate} --checkpoint /dev/zero"), 2),
        (format!("{train} --max-memory lots {run_flags}"), 2),
    ];
    if made.is_ok_and(|s| s.success()) {
        rows.push((format!("{evaluate} --checkpoint {fifo}"), 2));
        rows.push((format!("{paths} --dag-file {fifo}"), 2));
    }
    for (cmd, want) in rows {
        let t = std::time::Instant::now();
        let o = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("ulimit -v 1500000; exec timeout 60 {cmd}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(want), "{cmd}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{cmd}: {err}");
        assert!(t.elapsed().as_secs() < 30, "{cmd}: {:?}", t.elapsed());
    }
}
