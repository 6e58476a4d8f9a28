//! Helpers shared by every test module: the embedded data, scratch folders, running `sparsenet`.
#![allow(dead_code)] // not every module uses every helper

use std::path::{Path, PathBuf};
use std::process::Command;

/// The embedded Fashion-MNIST subset's folder.
pub const SUBSET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/data/fashion-mnist-subset");

/// [`SUBSET`] as an owned string.
pub fn subset() -> String {
    SUBSET.to_string()
}

/// The scratch path `name` of the calling test file in this process: the file's name is part
/// of it, so modules of the one test binary never share a folder.
#[track_caller]
fn scratch(name: &str) -> PathBuf {
    let file = std::panic::Location::caller().file();
    let module = Path::new(file)
        .file_stem()
        .map_or("tests".into(), |s| s.to_string_lossy().into_owned());
    std::env::temp_dir().join(format!("sparsenet-{}-{module}-{name}", std::process::id()))
}

/// A scratch path, removed first if a previous run left it (not created).
#[track_caller]
pub fn tmp(name: &str) -> PathBuf {
    let d = scratch(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A fresh, empty scratch folder.
#[track_caller]
pub fn fresh_dir(name: &str) -> PathBuf {
    let d = tmp(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A scratch folder created if missing and never removed: for helpers that several tests call
/// at once.
#[track_caller]
pub fn shared_dir(name: &str) -> PathBuf {
    let d = scratch(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The one program, `sparsenet`.
pub const SPARSENET: &str = env!("CARGO_BIN_EXE_sparsenet");

/// `sparsenet <command>` (`"train"`, `"study"`, …), ready for its arguments.
pub fn sparsenet(command: &str) -> Command {
    let mut c = Command::new(SPARSENET);
    c.arg(command);
    c
}

/// Run `sparsenet <command> <args>`: (exit status, stdout, stderr).
pub fn run(command: &str, args: &[&str]) -> (i32, String, String) {
    let out = sparsenet(command).args(args).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `sparsenet <command> <args>`: (exit status, stderr).
pub fn status(command: &str, args: &[&str]) -> (i32, String) {
    let (code, _, err) = run(command, args);
    (code, err)
}

/// The rows of a run folder's `metrics.jsonl`.
pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A Python interpreter that imports torch, if there is one: `$SPARSENET_TORCH_PYTHON`, else
/// the first of `python3` and `/usr/bin/python3` that does.
pub fn torch_python() -> Option<String> {
    let candidates: Vec<String> = match std::env::var("SPARSENET_TORCH_PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec!["python3".into(), "/usr/bin/python3".into()],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import torch"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// A Python interpreter that imports onnxruntime and numpy, if there is one:
/// `$SPARSENET_ORT_PYTHON`, else `python3` or the virtual environment
/// `scripts/install-onnxruntime.sh` makes (`target/ort-venv`).
pub fn ort_python() -> Option<String> {
    let candidates: Vec<String> = match std::env::var("SPARSENET_ORT_PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec![
            "python3".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/ort-venv/bin/python").into(),
        ],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import onnxruntime, numpy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// Make a FIFO at `path` (a reader of it blocks until a writer comes: the file that hangs a
/// careless reader).
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// A stand-in `sbatch` in `dir/bin`: it appends its arguments to `dir/sbatch.log`, one call a
/// line, followed by ` token=N` (the length of the `SPARSENET_DIST_TOKEN` it was given), and
/// answers with job id 4242, then 4243. Returns the folder to put first on `PATH`.
pub fn stand_in_sbatch(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let s = bin.join("sbatch");
    let log = dir.join("sbatch.log");
    std::fs::write(
        &s,
        format!(
            "#!/bin/bash\nprintf '%s token=%s\\n' \"$*\" \"${{#SPARSENET_DIST_TOKEN}}\" >> '{log}'\nif [ $(wc -l < '{log}') -eq 1 ]; then echo 4242; else echo 4243; fi\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}
