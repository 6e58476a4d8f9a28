//! `sparsenet <command>` (issue 41, item 0): one program whose commands are the per-command
//! binaries', with their outputs and exit statuses unchanged.

use crate::common::run;

const SPARSENET: &str = env!("CARGO_BIN_EXE_sparsenet");

#[test]
fn the_one_program_runs_every_command_as_its_binary_did() {
    // The same bytes as the binaries of their own.
    for (bin, args) in [
        (env!("CARGO_BIN_EXE_paths"), vec!["--depth", "12"]),
        (env!("CARGO_BIN_EXE_zoo"), vec![]),
        (
            env!("CARGO_BIN_EXE_zoo"),
            vec!["--model", "sparsenet-40-24", "--dag"],
        ),
    ] {
        let name = std::path::Path::new(bin)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let (code, want, _) = run(bin, &args);
        let mut with: Vec<&str> = vec![name];
        with.extend(&args);
        let (code2, got, err) = run(SPARSENET, &with);
        assert_eq!((code, &want), (code2, &got), "sparsenet {with:?}: {err}");
    }
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
        let (code, _, err) = run(SPARSENET, &args);
        assert_eq!(code, want, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // Without a command: the list of commands on stderr, status 2.
    let (code, _, err) = run(SPARSENET, &[]);
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
    let (code, out, _) = run(SPARSENET, &["train", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage: sparsenet train"), "{out}");
}
