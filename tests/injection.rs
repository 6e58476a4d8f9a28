//! Nothing a name, a path or a flag holds runs as code (issue 40, items 1, 2 and 4): the Python
//! module `export` writes and the sbatch script `study slurm` writes are run with hostile names
//! — quotes, triple quotes, backslashes, newlines, `$(…)`, non-UTF-8 bytes — and must run
//! nothing of them; `export` never writes over a file it did not create.

use crate::common::{fresh_dir, run, sparsenet, torch_python, SUBSET};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A name that breaks out of a Python triple-quoted string and of a shell comment, and runs
/// code that leaves the file `PWNED` in the current folder if it ever runs.
const HOSTILE: &str =
    "evil\"\"\"\nimport os; os.system('touch PWNED') #\\x'$(touch PWNED)`touch PWNED`";

fn train_tiny(data_dir: &Path, out: &Path) {
    let o = sparsenet("train")
        .args(["--family", "sparse", "--depth", "7", "--growth", "2"])
        .args(["--epochs", "1", "--max-steps", "2", "--batch-size", "8"])
        .args(["--max-test", "20", "--quiet", "--data-dir"])
        .arg(data_dir)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The data folder, and the checkpoint trained on it, both under hostile names (the
/// checkpoint's with bytes that are not UTF-8).
fn hostile_checkpoint(dir: &Path) -> PathBuf {
    let data = dir.join(HOSTILE);
    std::fs::create_dir_all(&data).unwrap();
    for f in std::fs::read_dir(SUBSET).unwrap().flatten() {
        std::fs::copy(f.path(), data.join(f.file_name())).unwrap();
    }
    let out = dir.join("run");
    train_tiny(&data, &out);
    let mut name: Vec<u8> = HOSTILE.as_bytes().to_vec();
    name.extend_from_slice(b"\xff\xfe\\\\.safetensors");
    let ckpt = dir.join(OsString::from_vec(name));
    std::fs::copy(out.join("last.safetensors"), &ckpt).unwrap();
    ckpt
}

/// The Python literal assigned to `NAME` at module level, read by Python's own parser without
/// running the module.
fn module_constant(module: &Path, name: &str) -> String {
    let code = format!(
        "import ast,sys\nt=ast.parse(open(sys.argv[1],encoding='utf-8').read())\n\
         v=[n.value.value for n in t.body if isinstance(n,ast.Assign) and n.targets[0].id=={name:?}]\n\
         sys.stdout.write(v[0])"
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(code)
        .arg(module)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn exported_modules_hold_hostile_names_as_data() {
    let dir = fresh_dir("export");
    let ckpt = hostile_checkpoint(&dir);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let o = sparsenet("export")
        .current_dir(&work)
        .arg("--checkpoint")
        .arg(&ckpt)
        .args(["--out", "net.py", "--sample", "4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let module = work.join("net.py");
    // The module parses (no SyntaxError from a backslash or a quote), and its constants are
    // the names exactly: data, not source.
    let trained_on = module_constant(&module, "TRAINED_ON");
    assert!(trained_on.contains(HOSTILE), "{trained_on}");
    let from = module_constant(&module, "CHECKPOINT");
    assert!(
        from.contains(HOSTILE) && from.contains("\u{fffd}"),
        "{from}"
    );
    // Imported and run, it runs nothing of them.
    if let Some(py) = torch_python() {
        let o = Command::new(&py)
            .current_dir(&work)
            .args([
                "-c",
                "import net; print(net.TRAINED_ON == net.TRAINED_ON.strip() or True)",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = Command::new(&py)
            .current_dir(&work)
            .args(["net.py", "--check", "net.sample.safetensors"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        assert!(
            std::env::var_os("SPARSENET_REQUIRE_TORCH").is_none(),
            "SPARSENET_REQUIRE_TORCH is set but no Python imports torch"
        );
    }
    // The ONNX export carries the same names as metadata: data that onnxruntime loads and
    // checks like any other model.
    let o = sparsenet("export")
        .current_dir(&work)
        .arg("--checkpoint")
        .arg(&ckpt)
        .args(["--format", "onnx", "--out", "net.onnx", "--sample", "4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if let Some(py) = crate::common::ort_python() {
        let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-onnx.py");
        let o = Command::new(&py)
            .current_dir(&work)
            .arg(&check)
            .args(["net.onnx", "net.sample.safetensors"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let meta = Command::new(&py)
            .current_dir(&work)
            .args([
                "-c",
                "import onnxruntime as o; print(o.InferenceSession('net.onnx').get_modelmeta().description)",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&meta.stdout);
        assert!(text.contains(HOSTILE), "{text}");
    } else {
        assert!(
            std::env::var_os("SPARSENET_REQUIRE_ORT").is_none(),
            "SPARSENET_REQUIRE_ORT is set but no Python imports onnxruntime"
        );
    }
    assert!(!work.join("PWNED").exists() && !dir.join("PWNED").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn module_names_python_would_misread_are_refused() {
    let dir = fresh_dir("names");
    let out = dir.join("run");
    train_tiny(Path::new(SUBSET), &out);
    let ckpt = out.join("last.safetensors");
    for name in ["torch.py", "json.py", "import.py", "sys.py"] {
        let (code, _, err) = run(
            "export",
            &[
                "--checkpoint",
                ckpt.to_str().unwrap(),
                "--out",
                dir.join(name).to_str().unwrap(),
                "--sample",
                "0",
            ],
        );
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.trim().lines().count() == 1 && err.contains(name),
            "{err}"
        );
        assert!(!dir.join(name).exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 4: `export --out RUN/last.py` would write `RUN/last.safetensors`, the run's checkpoint.
/// Refused, the run untouched; and a module over an earlier export is allowed.
#[test]
fn export_never_writes_over_a_runs_files() {
    let dir = fresh_dir("overwrite");
    let out = dir.join("run");
    train_tiny(Path::new(SUBSET), &out);
    let before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    for (stem, format) in [
        ("last", "pytorch"),
        ("best", "pytorch"),
        ("metrics", "pytorch"),
    ] {
        let ext = if format == "onnx" { "onnx" } else { "py" };
        let target = out.join(format!("{stem}.{ext}"));
        let (code, _, err) = run(
            "export",
            &[
                "--checkpoint",
                out.join("last.safetensors").to_str().unwrap(),
                "--format",
                format,
                "--out",
                target.to_str().unwrap(),
            ],
        );
        if stem == "metrics" {
            // metrics.py, metrics.safetensors, metrics.sample.safetensors: all free.
            assert_eq!(code, 0, "{err}");
            for f in [
                "metrics.py",
                "metrics.safetensors",
                "metrics.sample.safetensors",
            ] {
                std::fs::remove_file(out.join(f)).unwrap();
            }
            continue;
        }
        assert_eq!(code, 2, "{stem}.{ext}: {err}");
        assert!(
            err.trim().lines().count() == 1 && err.contains("did not create"),
            "{err}"
        );
        assert!(!target.exists(), "{}: an orphan was left", target.display());
    }
    for (path, bytes) in &before {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
    }
    let after = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .count();
    assert_eq!(after, before.len(), "files were added to the run folder");
    // An export over an earlier export of its own is allowed (the user runs it again).
    let again = dir.join("again.py");
    for _ in 0..2 {
        let (code, _, err) = run(
            "export",
            &[
                "--checkpoint",
                out.join("last.safetensors").to_str().unwrap(),
                "--out",
                again.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const STUDY: &str = "study";

#[test]
fn slurm_fields_that_are_not_slurm_words_are_refused() {
    let dir = fresh_dir("slurm-fields");
    let grid = dir.join("grid.txt");
    std::fs::write(&grid, "--family sparse --depth 7 --growth 2\n").unwrap();
    let study = [
        "efficiency",
        "--grid",
        grid.to_str().unwrap(),
        "--seeds",
        "1,2",
        "--data",
        "embedded",
    ];
    for (flag, value) in [
        ("--partition", "cpu;touch${IFS}x;echo"),
        ("--partition", "cpu$(touch PWNED)"),
        ("--job-name", "x$(touch PWNED)"),
        ("--job-name", "a{b}"),
        ("--account", "lab`touch PWNED`"),
        ("--time", "01:00:00;touch PWNED"),
        ("--time", "1:2:3:4"),
        ("--mem", "4G;x"),
        ("--mem", "lots"),
        ("--logs", "/tmp/a$(touch PWNED)"),
        ("--logs", "/tmp/new\nline"),
    ] {
        let mut a = vec!["slurm", "--shards", "2", flag, value, "--"];
        a.extend(study);
        let (code, script, err) = run(STUDY, &a);
        assert_eq!(code, 2, "{flag} {value:?}: {err}");
        assert!(script.is_empty(), "{flag} {value:?} printed a script");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(flag.trim_start_matches("--")) || err.contains("log folder"),
            "{err}"
        );
    }
    // What Slurm does take passes.
    let mut a = vec![
        "slurm",
        "--shards",
        "2",
        "--partition",
        "cpu,gpu-a100",
        "--account",
        "lab_1.x",
        "--time",
        "1-12:00:00",
        "--mem",
        "16G",
        "--job-name",
        "sparse.net-1",
        "--",
    ];
    a.extend(study);
    let (code, _, err) = run(STUDY, &a);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A grid file and a study folder whose names hold quotes, `$(…)`, backticks and (the grid) a
/// newline: the script quotes every one. Run as array task 0 it trains its shard into the
/// folder so named; run outside Slurm it submits through the stand-in sbatch; neither runs any
/// of the names, and `bash -n` passes.
#[test]
fn slurm_scripts_carry_hostile_study_arguments_as_data() {
    let dir = fresh_dir("slurm-hostile");
    let grid = dir.join("grid\n$(touch PWNED)'`touch PWNED`\".txt");
    std::fs::write(&grid, "--family sparse --depth 7 --growth 2\n").unwrap();
    let out = dir.join("out $(touch PWNED) 'q' `touch PWNED` \"d\"");
    let logs = dir.join("logs");
    let study = [
        "efficiency",
        "--grid",
        grid.to_str().unwrap(),
        "--seeds",
        "1,2",
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--max-test",
        "20",
        "--data",
        "embedded",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut a = vec![
        "slurm",
        "--shards",
        "2",
        "--logs",
        logs.to_str().unwrap(),
        "--",
    ];
    a.extend(study);
    let (code, script, err) = run(STUDY, &a);
    assert_eq!(code, 0, "{err}");
    // Every line is a directive, a comment, or shell the generator wrote: no argument starts a
    // line of its own.
    for line in script.lines() {
        assert!(!line.starts_with("$(touch"), "{line}");
    }
    let job = dir.join("job.sh");
    std::fs::write(&job, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&job).output().unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let o = Command::new("bash")
        .arg(&job)
        .env("SLURM_ARRAY_TASK_ID", "0")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.join("runs").is_dir(),
        "shard 0 did not train into the hostile folder"
    );
    let bin = crate::common::stand_in_sbatch(&dir);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .arg(&job)
        .env("PATH", &path)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = std::fs::read_to_string(dir.join("sbatch.log")).unwrap();
    // Both submissions carry one fresh 64-hex-digit secret for the job's ranks.
    assert_eq!(calls.matches(" token=64").count(), 2, "{calls}");
    let calls = calls.replace(" token=64", "");
    assert!(
        calls.contains(&format!("merge {}", out.display())) || calls.contains("merge '"),
        "{calls}"
    );
    // The merge job's command, as sbatch's /bin/sh would run it, names the folder exactly.
    let wrap = calls
        .lines()
        .find_map(|l| l.split_once("--wrap=").map(|(_, w)| w.to_string()))
        .expect("a --wrap in the merge call");
    let echoed = Command::new("sh")
        .arg("-c")
        .arg(format!("set -- {wrap}; printf '%s' \"$4\""))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&echoed.stdout),
        out.display().to_string()
    );
    let found = walk_for_pwned(&dir);
    assert!(found.is_empty(), "an argument ran as code: {found:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file named `PWNED` under `dir`.
fn walk_for_pwned(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "PWNED") {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found
}
