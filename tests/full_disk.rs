//! Writing into a full filesystem and a read-only one: the run stops with exit status 3 and a
//! one-line error naming the file, no temp file is left, and the previous checkpoint is intact
//! and loadable. The filesystems are small tmpfs mounts (CI runs as root); where mounting is
//! not permitted the test says so and skips.

use crate::common::{fresh_dir, sparsenet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `kib` KiB mounted on a fresh folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, kib: usize) -> Option<Tmpfs> {
        let dir = fresh_dir(name);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); full-disk checks not run");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two epochs of a tiny network; `first_only` stops after the first (as if interrupted),
/// `resume` continues.
fn train(out: &Path, first_only: bool, resume: bool) -> (i32, String) {
    let mut c = sparsenet("train");
    c.args([
        "--family",
        "sparse",
        "--depth",
        "7",
        "--growth",
        "2",
        "--epochs",
        "2",
        "--max-steps",
        "1",
        "--max-test",
        "50",
        "--quiet",
        "--data-dir",
        crate::common::SUBSET,
        "--out",
    ])
    .arg(out);
    if first_only {
        c.args(["--stop-after", "1"]);
    }
    if resume {
        c.arg("--resume");
    }
    let o = c.output().expect("train runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `evaluate` on a checkpoint: its exit status and printed accuracy line.
fn evaluate(st: &Path) -> (i32, String) {
    let o = sparsenet("evaluate")
        .arg("--checkpoint")
        .arg(st)
        .output()
        .expect("evaluate runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.contains("test accuracy"))
            .unwrap_or("")
            .to_string(),
    )
}

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".tmp"))
        .collect()
}

/// Fill the filesystem holding `dir` until a write fails.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).and_then(|_| f.sync_all()).is_ok() {}
}

/// One epoch fits, then the disk fills: the second epoch's writes fail.
#[test]
fn a_full_disk_stops_the_run_cleanly_and_keeps_the_last_checkpoint() {
    let Some(fs) = Tmpfs::mount("full", 512) else {
        return;
    };
    let out = fs.0.join("run");
    let (code, err) = train(&out, true, false);
    assert_eq!(code, 0, "{err}");
    let st = out.join("last.safetensors");
    let before = std::fs::read(&st).unwrap();
    let (code, acc) = evaluate(&st);
    assert_eq!(code, 0);
    fill(&fs.0);
    let (code, err) = train(&out, false, true);
    assert_eq!(code, 3, "exit status for a failed write: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot write") && err.contains(&out.display().to_string()),
        "{err}"
    );
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(temps(&out), Vec::<String>::new(), "temp files left");
    assert_eq!(
        std::fs::read(&st).unwrap(),
        before,
        "last checkpoint changed"
    );
    assert_eq!(
        evaluate(&st),
        (0, acc),
        "the kept checkpoint still evaluates the same"
    );
}

#[test]
fn a_read_only_folder_stops_the_run_cleanly_and_keeps_the_last_checkpoint() {
    let Some(fs) = Tmpfs::mount("ro", 1024) else {
        return;
    };
    let out = fs.0.join("run");
    assert_eq!(train(&out, true, false).0, 0);
    let st = out.join("last.safetensors");
    let before = std::fs::read(&st).unwrap();
    fs.remount_read_only();
    let (code, err) = train(&out, false, true);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(std::fs::read(&st).unwrap(), before);
    assert_eq!(evaluate(&st).0, 0);
    // A fresh run into the read-only folder fails the same way.
    let (code, err) = train(&fs.0.join("new"), true, false);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot create"), "{err}");
}
