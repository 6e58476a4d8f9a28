//! Run folders are never mixed or lost (issue 29, item 6), and the small things a new user
//! trips on (item 9): a fresh run into another run's folder is refused, `--overwrite` keeps the
//! old run until the new one has a checkpoint (even when it is killed first), `--resume`
//! continues only the same data and its own metrics rows, a study refuses a reused run whose
//! data changed, `--data` chooses the copy, and a checkpoint's data folder is absolute.

use crate::common::{fresh_dir, metrics, run, sparsenet, subset, tmp};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn train(args: &[&str]) -> (i32, String, String) {
    run("train", args)
}

/// A tiny run of `epochs` (one step each) of a network of `depth` into `out`, plus `extra`.
fn tiny<'a>(out: &'a str, depth: &'a str, epochs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--family",
        "sparse",
        "--depth",
        depth,
        "--growth",
        "2",
        "--epochs",
        epochs,
        "--max-steps",
        "1",
        "--max-test",
        "20",
        "--quiet",
        "--out",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn one_line(err: &str) -> bool {
    err.trim().lines().count() == 1
}

/// A copy of the embedded subset whose first training label is changed: the same shape and
/// counts, other contents. Raw (ungzipped) IDX files, which the reader accepts as well.
fn altered_copy(name: &str) -> PathBuf {
    use std::io::Read;
    let dir = fresh_dir(name);
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let gz = bytes(&Path::new(&subset()).join(format!("{f}.gz")));
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        if f == "train-labels-idx1-ubyte" {
            raw[8] = (raw[8] + 1) % 10;
        }
        std::fs::write(dir.join(f), raw).unwrap();
    }
    dir
}

#[test]
fn a_fresh_run_into_another_runs_folder_is_refused_and_the_folder_is_untouched() {
    let dir = tmp("refused");
    let d = dir.to_str().unwrap();
    let (code, _, err) = train(&tiny(d, "7", "1", &["--data", "embedded"]));
    assert_eq!(code, 0, "{err}");
    let before: Vec<Vec<u8>> = ["last.safetensors", "metrics.jsonl", "best.json"]
        .iter()
        .map(|f| bytes(&dir.join(f)))
        .collect();
    // Another network, fresh: refused, naming the run found and the ways on.
    let (code, _, err) = train(&tiny(d, "10", "1", &["--data", "embedded"]));
    assert_eq!(code, 2, "{err}");
    assert!(one_line(&err), "{err}");
    assert!(
        err.contains("holds a run of") && err.contains("1 of 1 epochs"),
        "{err}"
    );
    assert!(
        err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    let after: Vec<Vec<u8>> = ["last.safetensors", "metrics.jsonl", "best.json"]
        .iter()
        .map(|f| bytes(&dir.join(f)))
        .collect();
    assert!(before == after, "the refused run changed the folder");
    // --overwrite and --resume together make no sense.
    let (code, _, err) = train(&tiny(d, "10", "1", &["--overwrite", "--resume"]));
    assert_eq!(code, 2, "{err}");
    assert!(one_line(&err) && err.contains("--overwrite"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint_even_when_killed() {
    let dir = tmp("overwrite");
    let d = dir.to_str().unwrap();
    let (code, _, err) = train(&tiny(d, "7", "1", &["--data", "embedded"]));
    assert_eq!(code, 0, "{err}");
    let old_last = bytes(&dir.join("last.safetensors"));
    let old_run = metrics(&dir)[0]["run"].as_str().unwrap().to_string();
    // Start replacing it with slowed writes and kill the new run inside its first write (the
    // metrics, which come before the first checkpoint).
    let mut child = sparsenet("train")
        .args(tiny(d, "10", "2", &["--data", "embedded", "--overwrite"]))
        .env("SPARSENET_SLOW_WRITES", "3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let writing = std::fs::read_dir(&dir).unwrap().flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".metrics.jsonl.") && n.ends_with(".tmp")
        });
        if writing {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never saw the write"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let _ = child.wait();
    // The old run is whole, aside; nothing of it is lost.
    assert!(!dir.join("last.safetensors").exists());
    assert_eq!(bytes(&dir.join(".replaced/last.safetensors")), old_last);
    // Without --overwrite the folder is refused, saying where the old run is.
    let (code, _, err) = train(&tiny(d, "10", "2", &["--data", "embedded"]));
    assert_eq!(code, 2, "{err}");
    assert!(one_line(&err) && err.contains(".replaced"), "{err}");
    // --overwrite again finishes the replacement: the new run stands alone, every row its own.
    let (code, _, err) = train(&tiny(d, "10", "2", &["--data", "embedded", "--overwrite"]));
    assert_eq!(code, 0, "{err}");
    assert!(!dir.join(".replaced").exists());
    let r = metrics(&dir);
    assert_eq!(r.len(), 2);
    let new_run = r[0]["run"].as_str().unwrap();
    assert_ne!(new_run, old_run);
    assert!(r.iter().all(|row| row["run"] == new_run), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_continues_only_the_same_data_and_its_own_rows() {
    let dir = tmp("resume-data");
    let d = dir.to_str().unwrap();
    let data = subset();
    let (code, _, err) = train(&tiny(
        d,
        "7",
        "3",
        &["--data", "embedded", "--stop-after", "1"],
    ));
    assert_eq!(code, 0, "{err}");
    // The same images read from their files (by content: the same data) continue the run.
    let (code, out, err) = train(&tiny(
        d,
        "7",
        "3",
        &["--data-dir", &data, "--resume", "--stop-after", "2"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resuming after epoch 1"), "{out}");
    // Other contents of the same shape and counts are refused, naming both.
    let other = altered_copy("resume-other-data");
    let (code, _, err) = train(&tiny(
        d,
        "7",
        "3",
        &["--data-dir", other.to_str().unwrap(), "--resume"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(one_line(&err), "{err}");
    assert!(
        err.contains("trained on other data")
            && err.contains("fashion-mnist-subset, 2000 train / 500 test")
            && err.contains("resume-other-data, 2000 train / 500 test"),
        "{err}"
    );
    // A row of another run in metrics.jsonl is refused (the run's rows are never mixed).
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let run_id = metrics(&dir)[0]["run"].as_str().unwrap().to_string();
    std::fs::write(
        dir.join("metrics.jsonl"),
        text.replacen(&run_id, "0000000000000000", 1),
    )
    .unwrap();
    let (code, _, err) = train(&tiny(d, "7", "3", &["--data", "embedded", "--resume"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        one_line(&err)
            && err.contains("row 1 of")
            && err.contains("belongs to run 0000000000000000"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn a_study_refuses_a_reused_run_whose_data_changed_and_says_what_it_read_back() {
    let dir = fresh_dir("study-data");
    let data = altered_copy("study-data-copy");
    let grid = dir.join("grid.txt");
    std::fs::write(&grid, "--family sparse --depth 7 --growth 2\n").unwrap();
    let out = dir.join("study");
    let args = [
        "efficiency",
        "--grid",
        grid.to_str().unwrap(),
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--max-test",
        "20",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, first, err) = run("study", &args);
    assert_eq!(code, 0, "{err}");
    assert!(!first.contains("read back"), "{first}");
    // Run again unchanged: the run is read back, and the line says so.
    let (code, again, err) = run("study", &args);
    assert_eq!(code, 0, "{err}");
    assert!(again.contains("read back, trained before"), "{again}");
    // Another --data-dir is another study: refused before any run is looked at.
    let subset = subset();
    let mut other = args.to_vec();
    let i = other.iter().position(|a| *a == "--data-dir").unwrap();
    other[i + 1] = &subset;
    let (code, _, err) = run("study", &other);
    assert_eq!(code, 2, "{err}");
    assert!(
        one_line(&err) && err.contains("holds another study"),
        "{err}"
    );
    // The data changes in place (same folder, same shape): the reused run is refused.
    let labels = data.join("train-labels-idx1-ubyte");
    let mut raw = bytes(&labels);
    raw[9] = (raw[9] + 1) % 10;
    std::fs::write(&labels, raw).unwrap();
    let (code, out, err) = run("study", &args);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        one_line(&err) && err.contains("trained on other data"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn data_chooses_the_copy_and_says_what_it_cannot() {
    let dir = tmp("data-choice");
    let d = dir.to_str().unwrap();
    let (code, out, err) = train(&tiny(d, "7", "1", &["--data", "embedded"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("data:  Fashion-MNIST, embedded subset"),
        "{out}"
    );
    let (code, _, err) = train(&tiny(d, "7", "1", &["--data", "installed", "--overwrite"]));
    if Path::new("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists() {
        assert_eq!(code, 0, "{err}");
    } else {
        assert_eq!(code, 2, "{err}");
        assert!(
            one_line(&err)
                && err.contains("dataset-fashion-mnist")
                && err.contains("--data embedded"),
            "{err}"
        );
    }
    let data = subset();
    for bad in [
        vec!["--data", "embedded", "--data-dir", data.as_str()],
        vec!["--data", "everything"],
        vec!["--data", "embedded", "--dataset", "cifar10"],
    ] {
        let mut a = tiny(d, "7", "1", &["--overwrite"]);
        a.extend(bad.iter().copied());
        let (code, _, err) = train(&a);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(one_line(&err), "{bad:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_records_its_data_folder_absolute_and_evaluate_says_where_a_missing_one_came_from() {
    let dir = fresh_dir("absolute");
    let copy = dir.join("data");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(subset()).unwrap().flatten() {
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    // Trained from a relative --data-dir, in `dir`.
    let o = sparsenet("train")
        .current_dir(&dir)
        .args(tiny("run", "7", "1", &["--data-dir", "data"]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = dir.join("run/last.safetensors");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/last.json")).unwrap()).unwrap();
    assert_eq!(meta["data_dir"].as_str(), Some(copy.to_str().unwrap()));
    // Evaluated from elsewhere, it finds its data.
    let (code, out, err) = run("evaluate", &["--checkpoint", ckpt.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test accuracy"), "{out}");
    // Moved away: the error names the folder and that the checkpoint recorded it.
    std::fs::rename(&copy, dir.join("moved")).unwrap();
    let (code, _, err) = run("evaluate", &["--checkpoint", ckpt.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        one_line(&err) && err.contains("recorded in") && err.contains("--data-dir"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_help_offers_only_flags_train_accepts() {
    let (code, help, err) = train(&["--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        help.contains("--data ") && help.contains("--overwrite"),
        "{help}"
    );
    assert!(!help.contains("--classes"), "{help}");
    // Refused all the same, with the reason.
    let (code, _, err) = train(&["--classes", "5"]);
    assert_eq!(code, 2, "{err}");
    assert!(one_line(&err) && err.contains("--classes"), "{err}");
    if !cfg!(feature = "cuda") {
        assert!(
            !help.contains("--gpus") && !help.contains("--dist-timeout"),
            "{help}"
        );
    }
}
