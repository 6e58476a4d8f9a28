//! `sparsenet <command>` (issue 41, item 0): one program whose commands are the per-command
//! binaries' were, with their outputs and exit statuses unchanged; the per-command binaries are
//! gone, since their generic names (`export`, `train`, `study`) collide once installed.

use crate::common::{run, SPARSENET};
use std::process::Command;

#[test]
fn the_one_program_runs_every_command_and_paths_is_also_its_own() {
    // `paths` is also a binary of its own (the design card's `cargo run --bin paths`): the same
    // bytes either way. (Every other command's outputs are tests/baseline's, through `sparsenet`.)
    let paths = Command::new(env!("CARGO_BIN_EXE_paths"))
        .args(["--depth", "12"])
        .output()
        .unwrap();
    let (code, got, err) = run("paths", &["--depth", "12"]);
    assert_eq!(
        (
            paths.status.code(),
            String::from_utf8_lossy(&paths.stdout).into_owned()
        ),
        (Some(code), got),
        "{err}"
    );
    // Statuses: bad input 2, a missing file 3, each on one line.
    for (args, want) in [
        (vec!["train", "--epochs", "0"], 2),
        (
            vec!["evaluate", "--checkpoint", "/nonexistent/x.safetensors"],
            3,
        ),
        (vec!["study", "merge", "/nonexistent"], 3),
        (vec!["bogus"], 2),
    ] {
        let out = Command::new(SPARSENET).args(&args).output().unwrap();
        let (code, err) = (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(code, want, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // Without a command: the list of commands on stderr, status 2.
    let out = Command::new(SPARSENET).output().unwrap();
    let (code, err) = (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(code, 2);
    for c in [
        "paths",
        "zoo",
        "train",
        "evaluate",
        "study",
        "export",
        "dist-check",
    ] {
        assert!(err.contains(&format!("  {c} ")), "{c}: {err}");
    }
    let (code, out, _) = run("train", &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage: sparsenet train"), "{out}");
}
