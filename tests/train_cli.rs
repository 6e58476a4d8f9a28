//! The trainer as a user runs it: learning, exact resumption, checkpoints, bad input.

use crate::common::{metrics, run, subset, tmp};

fn train(args: &[&str]) -> (i32, String, String) {
    run("train", args)
}

/// A small network of each family learns the embedded subset far above chance (10 %).
#[test]
fn small_sparse_dense_and_res_networks_learn() {
    let data = subset();
    for (i, fam) in [
        ["sparse", "10", "8"],
        ["dense", "10", "8"],
        ["res", "8", ""],
    ]
    .iter()
    .enumerate()
    {
        let out = tmp(&format!("learn{i}"));
        let o = out.to_str().unwrap();
        let mut args = vec![
            "--family",
            fam[0],
            "--depth",
            fam[1],
            "--epochs",
            "5",
            "--lr",
            "0.1",
            "--schedule",
            "cosine",
            "--data-dir",
            &data,
            "--out",
            o,
            "--quiet",
        ];
        if !fam[2].is_empty() {
            args.extend(["--growth", fam[2]]);
        }
        let (code, stdout, err) = train(&args);
        assert_eq!(code, 0, "{fam:?}: {err}");
        assert!(stdout.contains("trainable parameters") && stdout.contains("Fashion-MNIST from"));
        let m = metrics(&out);
        assert_eq!(m.len(), 5);
        for key in [
            "epoch",
            "lr",
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "images_per_sec",
            "seconds",
        ] {
            assert!(m[4][key].is_number(), "{key}");
        }
        let acc = m[4]["test_acc"].as_f64().unwrap();
        assert!(acc > 0.5, "{fam:?} reached only {acc}");
        assert!(out.join("best.safetensors").exists() && out.join("last.json").exists());
        for fig in ["loss.png", "loss.svg", "accuracy.png", "accuracy.svg"] {
            assert!(out.join(fig).exists(), "{fig}");
        }
        assert!(std::fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .starts_with("epoch,lr,train_loss"));
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// Stopping after epoch 1 and resuming gives the same numbers and weights as one run; a fixed
/// seed gives identical runs.
#[test]
fn resume_is_exact_and_seeded_runs_are_identical() {
    let data = subset();
    let (a, b) = (tmp("whole"), tmp("resumed"));
    let common = [
        "--family",
        "sparse",
        "--depth",
        "10",
        "--growth",
        "4",
        "--epochs",
        "3",
        "--max-steps",
        "4",
        "--max-test",
        "100",
        "--batch-size",
        "32",
        "--seed",
        "7",
        "--data-dir",
        &data,
        "--quiet",
    ];
    let mut whole = common.to_vec();
    whole.extend(["--out", a.to_str().unwrap()]);
    assert_eq!(train(&whole).0, 0);
    let mut first = common.to_vec();
    first.extend(["--out", b.to_str().unwrap(), "--stop-after", "1"]);
    let (code, out, _) = train(&first);
    assert_eq!(code, 0);
    assert!(out.contains("continue with --resume"));
    assert_eq!(metrics(&b).len(), 1);
    let mut resumed = common.to_vec();
    resumed.extend(["--out", b.to_str().unwrap(), "--resume"]);
    let (code, out, err) = train(&resumed);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resuming after epoch 1"));
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(ma.len(), 3);
    assert_eq!(mb.len(), 3);
    for (x, y) in ma.iter().zip(&mb) {
        for key in [
            "epoch",
            "lr",
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "steps",
        ] {
            assert_eq!(x[key], y[key], "{key} differs at epoch {}", x["epoch"]);
        }
    }
    // The rows as text too, up to the timing fields: a resumed run re-reads the earlier rows and
    // writes them again, which must not perturb a digit (serde_json parses floats exactly only
    // with its `float_roundtrip` feature).
    let rows = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| l[..l.find("\"images_per_sec\"").expect("timing field")].to_string())
            .collect()
    };
    assert_eq!(rows(&a), rows(&b), "metrics.jsonl rows as written");
    let wa = std::fs::read(a.join("last.safetensors")).unwrap();
    let wb = std::fs::read(b.join("last.safetensors")).unwrap();
    let (ta, tb) = (
        safetensors::SafeTensors::deserialize(&wa).unwrap(),
        safetensors::SafeTensors::deserialize(&wb).unwrap(),
    );
    assert_eq!(ta.names().len(), tb.names().len());
    assert!(
        wa == wb,
        "last.safetensors differs byte for byte (header order?)"
    );
    for name in ta.names() {
        assert_eq!(
            ta.tensor(name).unwrap().data(),
            tb.tensor(name).unwrap().data(),
            "{name}"
        );
    }
    // evaluate reports the accuracy training logged for that checkpoint (on all 500 images).
    let (code, out, err) = run(
        "evaluate",
        &[
            "--checkpoint",
            a.join("last.safetensors").to_str().unwrap(),
            "--data-dir",
            &data,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test accuracy") && out.contains("epoch 3 of 3"));
    // No temp files are left behind by the atomic writes.
    for entry in std::fs::read_dir(&a).unwrap() {
        assert!(!entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"));
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn bad_input_and_failures_are_one_line() {
    let data = subset();
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    // A truncated IDX file and a file with the wrong magic number.
    let trunc = dir.join("trunc");
    std::fs::create_dir_all(&trunc).unwrap();
    let full = std::fs::read(format!("{data}/train-images-idx3-ubyte.gz")).unwrap();
    let mut raw = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&full[..])
        .read_to_end(&mut raw)
        .unwrap();
    std::fs::write(
        trunc.join("train-images-idx3-ubyte"),
        &raw[..raw.len() - 100],
    )
    .unwrap();
    std::fs::copy(
        format!("{data}/train-labels-idx1-ubyte.gz"),
        trunc.join("train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let magic = dir.join("magic");
    std::fs::create_dir_all(&magic).unwrap();
    let mut bad = raw.clone();
    bad[3] = 0x01;
    std::fs::write(magic.join("train-images-idx3-ubyte"), bad).unwrap();
    std::fs::copy(
        format!("{data}/train-labels-idx1-ubyte.gz"),
        magic.join("train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"not a checkpoint").unwrap();
    let o = dir.join("out");
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["--model".into(), "sparsenet-40".into()],
            2,
            "closest names",
        ),
        (
            vec![
                "--family".into(),
                "dense".into(),
                "--depth".into(),
                "41".into(),
                "--growth".into(),
                "12".into(),
            ],
            2,
            "multiple of 3",
        ),
        (vec!["--epochs".into(), "0".into()], 2, "epochs"),
        (vec!["--lr".into(), "-1".into()], 2, "learning rate"),
        (vec!["--dataset".into(), "cifar10".into()], 2, "--data-dir"),
        (
            vec!["--data-dir".into(), "/nonexistent".into()],
            2,
            "missing",
        ),
        (
            vec!["--data-dir".into(), trunc.to_str().unwrap().into()],
            2,
            "truncated",
        ),
        (
            vec!["--data-dir".into(), magic.to_str().unwrap().into()],
            2,
            "magic",
        ),
        (
            vec![
                "--data-dir".into(),
                data.clone(),
                "--out".into(),
                o.to_str().unwrap().into(),
                "--resume".into(),
            ],
            2,
            "no checkpoint",
        ),
    ];
    for (args, want, text) in &cases {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (code, _, err) = train(&a);
        assert_eq!(code, *want, "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    let (code, _, err) = run("evaluate", &["--checkpoint", corrupt.to_str().unwrap()]);
    assert_eq!(code, 2, "a corrupt checkpoint is bad input");
    assert!(err.contains("corrupt") && err.lines().count() == 1, "{err}");
    // A loss that becomes NaN stops the run with a clear message and leaves no partial file.
    let nan = dir.join("nan");
    let (code, _, err) = train(&[
        "--family",
        "sparse",
        "--depth",
        "10",
        "--growth",
        "4",
        "--epochs",
        "1",
        "--lr",
        "1e30",
        "--data-dir",
        &data,
        "--out",
        nan.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("NaN") || err.contains("inf"), "{err}");
    assert!(!nan.join("last.safetensors").exists());
    // Resuming a run with another model is refused.
    let (code, _, _) = train(&[
        "--family",
        "sparse",
        "--depth",
        "10",
        "--growth",
        "4",
        "--epochs",
        "2",
        "--max-steps",
        "1",
        "--max-test",
        "10",
        "--stop-after",
        "1",
        "--data-dir",
        &data,
        "--out",
        o.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0);
    let (code, _, err) = train(&[
        "--family",
        "dense",
        "--depth",
        "10",
        "--growth",
        "4",
        "--epochs",
        "2",
        "--max-steps",
        "1",
        "--data-dir",
        &data,
        "--out",
        o.to_str().unwrap(),
        "--resume",
        "--quiet",
    ]);
    assert_eq!(code, 2, "a checkpoint of another network is bad input");
    assert!(err.contains("another network"), "{err}");
    // Both sides are named: the checkpoint's network and this run's.
    assert!(
        err.contains("sparsenet-10-4") && err.contains("densenet-10-4"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_comparison_systems_train_and_dropout_resumes_bit_for_bit() {
    let data = subset();
    // The named systems train on the embedded 28×28 data (LeNet-5 at the learning rate of
    // Caffe's recipe: at 0.1, without batch norm, it diverges).
    // MixNet-100 and DPN-92 (37.7M parameters, ImageNet's network on 28×28 images: its last
    // stage sees 1×1 maps) take a few steps.
    for (model, lr, steps) in [
        ("lenet-5", "0.01", "8"),
        ("lenet-300-100", "0.1", "8"),
        ("mixnet-100", "0.1", "4"),
        ("dpn-92", "0.1", "2"),
    ] {
        let dir = tmp(model);
        let (code, _, err) = train(&[
            "--model",
            model,
            "--epochs",
            "1",
            "--max-steps",
            steps,
            "--batch-size",
            "16",
            "--max-test",
            "64",
            "--lr",
            lr,
            "--data-dir",
            &data,
            "--out",
            dir.to_str().unwrap(),
            "--quiet",
        ]);
        assert_eq!(code, 0, "{model}: {err}");
        let m = metrics(&dir);
        assert!(m[0]["train_loss"].as_f64().unwrap().is_finite(), "{model}");
    }
    // A Wide ResNet with dropout between its convolutions: interrupted after one epoch and
    // resumed on another thread count, it ends with the uninterrupted run's weights exactly.
    let (a, b, c) = (tmp("drop-whole"), tmp("drop-resumed"), tmp("drop-none"));
    let run = |p: &str, out: &std::path::Path, extra: &[&str]| -> i32 {
        let mut args = vec![
            "--family",
            "wide",
            "--depth",
            "10",
            "--widen",
            "1",
            "--dropout",
            p,
            "--epochs",
            "2",
            "--max-steps",
            "3",
            "--max-test",
            "64",
            "--batch-size",
            "16",
            "--seed",
            "3",
            "--data-dir",
            &data,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = train(&args);
        assert_eq!(code, 0, "{err}");
        code
    };
    run("0.5", &a, &["--threads", "2"]);
    run("0.5", &b, &["--stop-after", "1", "--threads", "1"]);
    run("0.5", &b, &["--resume", "--threads", "2"]);
    let weights = |d: &std::path::Path| std::fs::read(d.join("last.safetensors")).unwrap();
    assert!(weights(&a) == weights(&b), "resumed dropout run differs");
    // The masks do something: without dropout the same seed ends elsewhere.
    run("0", &c, &[]);
    assert!(weights(&a) != weights(&c), "dropout 0.5 changed nothing");
}
