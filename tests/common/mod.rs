//! Helpers shared by the command-line tests: the embedded data, scratch folders, running a
//! binary.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::PathBuf;
use std::process::Command;

/// The embedded Fashion-MNIST subset's folder.
pub fn subset() -> String {
    format!(
        "{}/src/data/fashion-mnist-subset",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A scratch path for this test process, removed first if a previous run left it.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sparsenet-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Run a binary: (exit status, stdout, stderr).
pub fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
