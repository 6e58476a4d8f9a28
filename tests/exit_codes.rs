//! The exit-status table of the README ("Exit codes"), command by command: 0 success, 1 a
//! failed check or run, 2 bad input, 3 a file that could not be read or written. Every error
//! is one line on stderr.

use crate::common::{fresh_dir as tmp, status, SUBSET};

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
    let (paths, zoo, train, evaluate, study, dist_check) = (
        env!("CARGO_BIN_EXE_paths"),
        env!("CARGO_BIN_EXE_zoo"),
        env!("CARGO_BIN_EXE_train"),
        env!("CARGO_BIN_EXE_evaluate"),
        env!("CARGO_BIN_EXE_study"),
        env!("CARGO_BIN_EXE_dist-check"),
    );
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
        err.contains("Usage: study")
            && err.trim_end().ends_with("give a subcommand (listed above)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
