//! Files written atomically: a temp file in the same folder, synced, then renamed over the
//! target, so a crash or kill never leaves a half-written file. Every output of the trainer,
//! the figures and the commands goes through here.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temp file [`write_atomic`] writes before renaming it over `path`: hidden, in the same
/// folder, ending in [`TEMP_SUFFIX`].
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}{TEMP_SUFFIX}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ))
}

/// How temp files end (also the PNG writer's, `.name.tmp.png`, contains it).
pub const TEMP_SUFFIX: &str = ".tmp";

/// Remove the temp files a killed writer left in `dir` (names `.*.tmp` and `.*.tmp.png`), so
/// that a resumed run leaves none behind. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && (name.ends_with(TEMP_SUFFIX) || name.ends_with(".tmp.png")) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove stale {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Milliseconds to pause half-way through every write, from `SPARSENET_SLOW_WRITES` (fault
/// injection: the kill tests use it to land inside a checkpoint write). Read once.
fn slow_writes() -> Option<std::time::Duration> {
    static MS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    MS.get_or_init(|| {
        std::env::var("SPARSENET_SLOW_WRITES")
            .ok()
            .and_then(|v| v.parse().ok())
    })
    .map(std::time::Duration::from_millis)
}

/// Write `bytes` to `path` atomically: a temp file in the same folder, synced, then renamed
/// over `path`. A crash or kill leaves either the old file or the new one, never a mix; a
/// failed write (full disk, no permission) removes its temp file and names `path` in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half])?;
        if let Some(pause) = slow_writes() {
            f.flush()?;
            std::thread::sleep(pause);
        }
        f.write_all(&bytes[half..])?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("cannot write {}", path.display())));
    }
    Ok(())
}
