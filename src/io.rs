//! Files written atomically: a temp file in the same folder, synced, then renamed over the
//! target, so a crash or kill never leaves a half-written file. Every output of the trainer,
//! the figures and the commands goes through here.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A temp file for writing `path`: hidden, in the same folder (so the rename is atomic), and
/// named for this process and this write alone (`.name.<pid>-<n>` + `suffix`), so two writers
/// of one file — two processes, or two threads — never write into each other's temp file.
pub fn unique_temp_path(path: &Path, suffix: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}.{}-{n}{suffix}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ))
}

/// The temp file [`write_atomic`] writes before renaming it over `path`
/// ([`unique_temp_path`], ending in [`TEMP_SUFFIX`]).
pub fn temp_path(path: &Path) -> PathBuf {
    unique_temp_path(path, TEMP_SUFFIX)
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

/// An exclusive lock on a folder, held for as long as the value lives: the file `name` inside
/// `dir` (created if missing, never removed, so that every process locks the same inode),
/// locked with `flock`. The operating system releases it when the process ends, however it
/// ends, so a killed writer never leaves a folder locked.
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

fn lock_file(dir: &Path, name: &str) -> Result<(std::fs::File, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    Ok((file, path))
}

/// Take the lock `name` of `dir` or fail at once, naming the folder, when another process
/// holds it (the error is marked as bad input: the command asked to write where another
/// writer is).
pub fn try_lock_folder(dir: &Path, name: &str, holder: &str) -> Result<FolderLock> {
    let (file, path) = lock_file(dir, name)?;
    match file.try_lock() {
        Ok(()) => Ok(FolderLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(crate::error::bad_input(anyhow::anyhow!(
            "{} is in use by another {holder} (it holds {}); wait for it to finish or choose another folder",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow::Error::new(e)
            .context(format!("cannot lock {}", path.display()))),
    }
}

/// Take the lock `name` of `dir`, waiting while another process holds it.
pub fn lock_folder(dir: &Path, name: &str) -> Result<FolderLock> {
    let (file, path) = lock_file(dir, name)?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(FolderLock { _file: file })
}

/// Create `path` with `bytes` only if it does not exist yet, atomically: the file appears
/// whole or not at all, and of several processes creating it at once exactly one succeeds.
/// Returns false (writing nothing) when it already existed.
pub fn create_new_atomic(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // A temp name of this write alone; a hard link never replaces an existing file.
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<bool> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    written.map_err(|e| anyhow::Error::new(e).context(format!("cannot write {}", path.display())))
}

/// Read a whole input file of at most `max` bytes, refusing what is not a regular file (a
/// FIFO would block for ever, `/dev/zero` never ends) and what is larger, before reading.
/// Errors name the file; a refused type or size is bad input, an unreadable file keeps its
/// I/O error.
pub fn read_regular(path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a pipe, socket or device)"
        };
        return Err(crate::error::bad_input(anyhow::anyhow!(
            "{what} {} is {kind}: give a regular file",
            path.display()
        )));
    }
    if meta.len() > max {
        return Err(crate::error::bad_input(anyhow::anyhow!(
            "{what} {} has {} bytes, more than the {max} this tool reads",
            path.display(),
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(crate::error::bad_input(anyhow::anyhow!(
            "{what} {} grew past {max} bytes while being read",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_writes_of_one_file_never_share_a_temp_file() {
        let target = Path::new("/some/dir/metrics.jsonl");
        let a = temp_path(target);
        let b = temp_path(target);
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert_eq!(t.parent(), target.parent());
            let name = t.file_name().unwrap().to_str().unwrap();
            let pid = std::process::id().to_string();
            assert!(
                name.starts_with(".metrics.jsonl.") && name.ends_with(TEMP_SUFFIX),
                "{name}"
            );
            assert!(name.contains(&pid), "{name}");
        }
        // Threads writing one file at once each finish with their own whole contents.
        let dir = std::env::temp_dir().join(format!("sparsenet-io-{}", std::process::id()));
        let path = dir.join("f.txt");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || write_atomic(path, &vec![b'a' + i; 100_000]).unwrap());
            }
        });
        let text = std::fs::read(&path).unwrap();
        assert_eq!(text.len(), 100_000);
        assert!(text.iter().all(|&c| c == text[0]));
        assert_eq!(remove_stale_temps(&dir).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
