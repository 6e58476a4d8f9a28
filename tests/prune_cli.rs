//! `study prune` as a user runs it: a trained LeNet-300-100 pruned 4× in two prune–retrain
//! iterations, its pruned weights exactly zero through retraining and after a resume, the
//! pruned checkpoint read by `evaluate`; bad input.

use crate::common::{run, subset, tmp};
use std::collections::HashMap;
use std::path::Path;

fn train(args: &[&str]) -> (i32, String, String) {
    run("train", args)
}

fn study(args: &[&str]) -> (i32, String, String) {
    run("study", args)
}

/// A LeNet-300-100 trained for `steps` steps on the embedded subset into the scratch folder
/// `name`, evaluated on `max_test` images: its `last.safetensors`.
fn trained_lenet(name: &str, steps: &str, max_test: &str) -> std::path::PathBuf {
    let base = tmp(name);
    let (code, _, err) = train(&[
        "--model",
        "lenet-300-100",
        "--epochs",
        "1",
        "--max-steps",
        steps,
        "--max-test",
        max_test,
        "--data-dir",
        &subset(),
        "--quiet",
        "--out",
        base.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    base.join("last.safetensors")
}

/// Every f32 tensor of a safetensors file by name.
fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let t = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    t.names()
        .into_iter()
        .map(|n| {
            let v = t.tensor(n).unwrap();
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n.clone(), vals)
        })
        .collect()
}

/// (pruned elements, of which nonzero) over every `mask.*` of `masks`, read against the weights
/// of `weights`.
fn pruned_and_nonzero(
    masks: &HashMap<String, Vec<f32>>,
    weights: &HashMap<String, Vec<f32>>,
) -> (usize, usize) {
    let (mut pruned, mut nonzero) = (0, 0);
    for (name, m) in masks {
        let Some(param) = name.strip_prefix("mask.") else {
            continue;
        };
        let w = &weights[param];
        for (keep, v) in m.iter().zip(w) {
            if *keep == 0.0 {
                pruned += 1;
                nonzero += usize::from(*v != 0.0);
            }
        }
    }
    (pruned, nonzero)
}

#[test]
fn lenet_300_100_pruned_4x_keeps_its_pruned_weights_at_zero() {
    let data = subset();
    let ckpt = trained_lenet("prune-base", "30", "200");
    let out = tmp("prune-out");
    let (code, stdout, err) = study(&[
        "prune",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--rate",
        "4",
        "--iterations",
        "2",
        "--retrain-epochs",
        "2",
        "--max-steps",
        "5",
        "--max-test",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("iteration 2/2"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prune.json")).unwrap()).unwrap();
    let its = r["iterations"].as_array().unwrap();
    assert_eq!(its.len(), 2);
    // Iteration i of 2 keeps (1/4)^(i/2): 50 %, then 25 % of the prunable weights.
    for (it, want) in its.iter().zip([0.5, 0.25]) {
        let kept = it["kept"].as_f64().unwrap();
        assert!((kept - want).abs() < 0.002, "kept {kept}, want {want}");
        for k in ["acc_pruned", "acc_retrained"] {
            let a = it[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{k} {a}");
        }
    }
    let per_layer = its[1]["kept_per_layer"].as_object().unwrap();
    let mut layers: Vec<&String> = per_layer.keys().collect();
    layers.sort();
    assert_eq!(layers, ["fc1.weight", "fc2.weight", "fc3.weight"]);
    // 784·300 + 300·100 + 100·10 prunable weights; biases stay.
    let prunable = 235_200 + 30_000 + 1_000;
    assert_eq!(r["prunable"], prunable);
    assert_eq!(r["params"], 266_610);
    let kept = its[1]["kept"].as_f64().unwrap();
    let nonzero = its[1]["params_nonzero"].as_u64().unwrap();
    let want_nonzero = 266_610 - ((1.0 - kept) * prunable as f64).round() as u64;
    assert_eq!(nonzero, want_nonzero);
    assert!(its[1]["flops_remaining"].as_u64().unwrap() < r["flops"].as_u64().unwrap() / 3);
    for f in [
        "prune_accuracy.png",
        "prune_layers.png",
        "pruned.safetensors",
    ] {
        assert!(out.join(f).is_file(), "no {f}");
    }
    // The retraining kept every pruned weight at exactly zero, and its checkpoint carries the
    // masks it started from.
    for i in [1, 2] {
        let start = tensors(&out.join(format!("pruned-{i}.safetensors")));
        let end = tensors(&out.join(format!("retrain-{i}/last.safetensors")));
        let (pruned, nonzero) = pruned_and_nonzero(&start, &end);
        assert!(pruned > 0);
        assert_eq!(
            nonzero, 0,
            "iteration {i}: pruned weights moved in retraining"
        );
        for (name, m) in start.iter().filter(|(n, _)| n.starts_with("mask.")) {
            assert_eq!(&end[name], m, "iteration {i}: {name} changed");
        }
        // …and the retraining moved the survivors.
        assert_ne!(start["fc1.weight"], end["fc1.weight"]);
    }
    // A pruned checkpoint is an ordinary one to evaluate.
    let (code, stdout, err) = run(
        "evaluate",
        &[
            "--checkpoint",
            out.join("pruned.safetensors").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("accuracy"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "pruned:     {nonzero} of 266610 parameters nonzero"
        )),
        "{stdout}"
    );

    // A mask that clears a nonzero weight belongs to other weights: refused in one line.
    let bytes = std::fs::read(out.join("pruned-1.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let t = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all = tensors(&out.join("pruned-1.safetensors"));
    let i = all["fc1.weight"].iter().position(|v| *v != 0.0).unwrap();
    all.get_mut("mask.fc1.weight").unwrap()[i] = 0.0;
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = all
        .iter()
        .map(|(n, v)| {
            let shape = t.tensor(n).unwrap().shape().to_vec();
            (
                n.clone(),
                shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = raw
        .iter()
        .map(|(n, s, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (n.clone(), v.unwrap())
        })
        .collect();
    let forged = tmp("prune-forged").with_extension("safetensors");
    std::fs::write(
        &forged,
        safetensors::serialize(views, &meta.metadata().clone()).unwrap(),
    )
    .unwrap();
    let (code, _, err) = run("evaluate", &["--checkpoint", forged.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the mask of other weights"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // The sensitivity scan (the paper's Fig. 6): each layer alone at 90 … 5 %, the pick the
    // smallest fraction within the tolerance, reached in one iteration.
    let sens = tmp("prune-sens");
    let (code, stdout, err) = study(&[
        "prune",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--sensitivity",
        "--tolerance",
        "0.02",
        "--iterations",
        "1",
        "--retrain-epochs",
        "0",
        "--max-test",
        "200",
        "--out",
        sens.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("sensitivity of fc1.weight"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sens.join("prune.json")).unwrap()).unwrap();
    let baseline = r["baseline_acc"].as_f64().unwrap();
    let scan = r["sensitivity"].as_array().unwrap();
    assert_eq!(scan.len(), 3);
    let it = &r["iterations"][0];
    for layer in scan {
        let pts = layer["points"].as_array().unwrap();
        assert_eq!(pts.len(), 6);
        for (p, want) in pts.iter().zip([0.9, 0.75, 0.5, 0.25, 0.1, 0.05]) {
            assert!((p[0].as_f64().unwrap() - want).abs() < 0.01, "{p}");
        }
        let picked = layer["picked"].as_f64().unwrap();
        let ok: Vec<f64> = pts
            .iter()
            .filter(|p| p[1].as_f64().unwrap() >= baseline - 0.02)
            .map(|p| p[0].as_f64().unwrap())
            .collect();
        let want = ok.iter().copied().fold(1.0, f64::min);
        assert_eq!(picked, want, "{layer}");
        let name = layer["layer"].as_str().unwrap();
        let kept = it["kept_per_layer"][name].as_f64().unwrap();
        assert!(
            (kept - picked).abs() < 0.01,
            "{name}: kept {kept}, picked {picked}"
        );
    }
    assert!(sens.join("prune_sensitivity.png").is_file());
    // Per-layer quality parameters: fc1 alone at q = 1, the others untouched.
    let per = tmp("prune-per-layer");
    let (code, _, err) = study(&[
        "prune",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--quality-per-layer",
        "fc1.weight=1.0",
        "--iterations",
        "1",
        "--retrain-epochs",
        "0",
        "--max-test",
        "50",
        "--out",
        per.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(per.join("prune.json")).unwrap()).unwrap();
    let k = &r["iterations"][0]["kept_per_layer"];
    assert_eq!(k["fc2.weight"], 1.0);
    assert_eq!(k["fc3.weight"], 1.0);
    // The trained fc1's weights against its own σ, counted here from the checkpoint.
    let w = &tensors(&ckpt)["fc1.weight"];
    let n = w.len() as f64;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
    let sd = (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let want = w.iter().filter(|&&v| (v as f64).abs() >= sd).count() as f64 / n;
    assert!((k["fc1.weight"].as_f64().unwrap() - want).abs() < 1e-4);
    let (code, _, err) = study(&[
        "prune",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--quality-per-layer",
        "conv9.weight=1.0",
        "--out",
        tmp("prune-per-layer-bad").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not a pruned layer") && err.contains("fc1.weight"),
        "{err}"
    );

    // A retraining killed after an epoch and resumed ends with the uninterrupted run's bytes:
    // the masks come back with the checkpoint.
    let pruned = out.join("pruned-1.safetensors");
    let retrain = |dir: &Path, extra: &[&str]| {
        let resume = extra.contains(&"--resume");
        let mut args = vec!["--model", "lenet-300-100"];
        if !resume {
            args.extend(["--init-from", pruned.to_str().unwrap()]);
        }
        args.extend([
            "--epochs",
            "2",
            "--max-steps",
            "4",
            "--max-test",
            "50",
            "--lr",
            "0.01",
            "--schedule",
            "constant",
            "--data-dir",
            &data,
            "--quiet",
            "--out",
            dir.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        let (code, _, err) = train(&args);
        assert_eq!(code, 0, "{err}");
    };
    let (whole, parts) = (tmp("prune-whole"), tmp("prune-parts"));
    retrain(&whole, &[]);
    retrain(&parts, &["--stop-after", "1"]);
    retrain(&parts, &["--resume"]);
    let a = std::fs::read(whole.join("last.safetensors")).unwrap();
    let b = std::fs::read(parts.join("last.safetensors")).unwrap();
    assert!(
        a == b,
        "a resumed prune retraining differs from the uninterrupted one"
    );
    let t = tensors(&whole.join("last.safetensors"));
    assert_eq!(pruned_and_nonzero(&tensors(&pruned), &t).1, 0);
}

#[test]
fn bad_prune_requests_are_one_line_errors_and_write_nothing() {
    let ckpt = trained_lenet("prune-bad-base", "2", "20");
    let c = ckpt.to_str().unwrap();
    let out = tmp("prune-bad-out");
    let o = out.to_str().unwrap();
    for (args, says) in [
        (vec!["--keep", "0"], "keeps nothing"),
        (vec!["--keep", "1"], "keeps everything"),
        (vec!["--rate", "1"], "above 1"),
        (vec![], "needs a target"),
        (
            vec!["--rate", "4", "--layers", "conv"],
            "no convolution weights",
        ),
        (vec!["--quality", "-1"], "positive"),
    ] {
        let mut a = vec!["prune", "--checkpoint", c, "--out", o];
        a.extend_from_slice(&args);
        let (code, _, err) = study(&a);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
}

#[test]
fn a_densenet_pruned_to_a_sparsenets_count_has_exactly_its_parameters() {
    let data = subset();
    let base = tmp("prune-match-base");
    let (code, _, err) = train(&[
        "--family",
        "dense",
        "--depth",
        "10",
        "--growth",
        "8",
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--max-test",
        "50",
        "--data-dir",
        &data,
        "--quiet",
        "--out",
        base.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let sparse = tmp("prune-match-sparse");
    // The SparseNet's own count, from train on the same data (1×28×28, 10 classes).
    let (code, stdout, err) = train(&[
        "--family",
        "sparse",
        "--depth",
        "10",
        "--growth",
        "4",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--max-test",
        "10",
        "--data-dir",
        &data,
        "--quiet",
        "--out",
        sparse.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let want: u64 = stdout
        .split(" trainable parameters")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {stdout}"));
    let out = tmp("prune-match-out");
    let words = "--family sparse --depth 10 --growth 4";
    let (code, _, err) = study(&[
        "prune",
        "--checkpoint",
        base.join("last.safetensors").to_str().unwrap(),
        "--match",
        words,
        "--iterations",
        "1",
        "--retrain-epochs",
        "0",
        "--max-test",
        "50",
        "--against",
        sparse.join("last.safetensors").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prune.json")).unwrap()).unwrap();
    assert_eq!(r["target"]["match"]["params"], want);
    // The SparseNet trained directly, evaluated beside it on the same images.
    assert_eq!(r["against"][0]["params"], want);
    assert!((0.0..=1.0).contains(&r["against"][0]["acc"].as_f64().unwrap()));
    let got = r["iterations"][0]["params_nonzero"].as_u64().unwrap();
    // Ties at the threshold may keep a weight or two more.
    assert!(got >= want && got <= want + 2, "{got} nonzero, want {want}");
    assert!(r["iterations"][0]["acc_retrained"].is_null());
    // The pruned DenseNet is an ordinary checkpoint to the other studies and to export.
    let pruned = out.join("pruned.safetensors");
    let p = pruned.to_str().unwrap();
    for args in [
        vec![
            "weights",
            "--checkpoint",
            p,
            "--out",
            tmp("prune-match-w").to_str().unwrap(),
        ],
        vec![
            "lesion",
            "--checkpoint",
            p,
            "--max-k",
            "1",
            "--draws",
            "1",
            "--max-test",
            "20",
            "--out",
            tmp("prune-match-l").to_str().unwrap(),
        ],
    ] {
        let (code, _, err) = study(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, _, err) = run(
        "export",
        &[
            "--checkpoint",
            p,
            "--out",
            tmp("prune-match-x").join("m.py").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    // A count the dense network cannot be pruned to is refused.
    let (code, _, err) = study(&[
        "prune",
        "--checkpoint",
        base.join("last.safetensors").to_str().unwrap(),
        "--match",
        "--family dense --depth 40 --growth 12",
        "--out",
        tmp("prune-match-bad").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be reached"), "{err}");
}

/// Issue 40, item 6: a prune folder belongs to one request. The same options again resume
/// (the same pruned network); other options are refused in one line with the folder untouched,
/// or replace it with --overwrite; a target that would empty a layer is refused before
/// anything is written.
#[test]
fn a_prune_folder_holds_one_request() {
    let ckpt = trained_lenet("prune-request-base", "5", "50");
    let out = tmp("prune-request-out");
    let prune = |extra: &[&str]| {
        let mut a = vec![
            "prune",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--iterations",
            "1",
            "--retrain-epochs",
            "1",
            "--max-steps",
            "2",
            "--max-test",
            "50",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        study(&a)
    };
    let (code, _, err) = prune(&["--keep", "0.3"]);
    assert_eq!(code, 0, "{err}");
    let first = std::fs::read(out.join("pruned.safetensors")).unwrap();
    let record = std::fs::read(out.join("prune.json")).unwrap();
    // Other options: refused, nothing changed.
    let (code, _, err) = prune(&["--keep", "0.5"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim().lines().count() == 1
            && err.contains("other options")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("pruned.safetensors")).unwrap(),
        first
    );
    assert_eq!(std::fs::read(out.join("prune.json")).unwrap(), record);
    // The same options: read back, the same pruned network.
    let (code, _, err) = prune(&["--keep", "0.3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(out.join("pruned.safetensors")).unwrap(),
        first
    );
    // --overwrite: the new request, pruned afresh to its own target.
    let (code, _, err) = prune(&["--keep", "0.5", "--overwrite"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prune.json")).unwrap()).unwrap();
    let kept = r["iterations"][0]["kept"].as_f64().unwrap();
    assert!((kept - 0.5).abs() < 0.01, "kept {kept}");
    // A keep so small that a layer would lose every weight: refused, nothing written.
    let empty = tmp("prune-request-empty");
    let (code, _, err) = study(&[
        "prune",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--keep",
        "0.000001",
        "--out",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim().lines().count() == 1 && err.contains("every weight of"),
        "{err}"
    );
    assert!(!empty.exists());
}
