//! `export` as a user runs it (issue 24, items 1–3): networks of every family, aggregation
//! operator, a random DAG block and an ImageNet layout are trained briefly and exported, and the
//! exports are run by their runtimes. PyTorch: the module's `state_dict` loads the weights with
//! `strict=True` and its logits equal ours on the sample's test images to 1e-4 relative, with
//! the same classes. onnxruntime: the ONNX model's logits, the same way (`scripts/check-onnx.py`).
//!
//! PyTorch comes from `common::torch_python` (as for `tests/torch_parity.rs`), onnxruntime from
//! `common::ort_python`; without one its half says "skipped", unless `SPARSENET_REQUIRE_TORCH` /
//! `SPARSENET_REQUIRE_ORT` is set (as `.ci/run` sets both).

use crate::common::{fresh_dir, ort_python, run, sparsenet, torch_python};
use std::process::Command;

fn tiny_run(dir: &std::path::Path, spec: &[&str]) -> std::path::PathBuf {
    let out = dir.join("run");
    let mut args: Vec<&str> = spec.to_vec();
    args.extend([
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        "--max-test",
        "20",
        "--data",
        "embedded",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (code, _, err) = run("train", &args);
    assert_eq!(code, 0, "{spec:?}: {err}");
    out.join("last.safetensors")
}

/// A runtime's check of an export (`NAME.py --check`, `scripts/check-onnx.py`): it succeeded,
/// on the 12 sample images, within 1e-4 relative of our logits, with the same classes.
fn assert_agrees(o: &std::process::Output, what: &str) {
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{what}: {report}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(v["images"], 12, "{what}: {report}");
    assert!(
        v["max_rel_err"].as_f64().unwrap() <= 1e-4,
        "{what}: {report}"
    );
    assert_eq!(v["same_classes"], true, "{what}: {report}");
}

#[test]
fn exported_modules_load_strictly_and_give_our_logits_in_pytorch() {
    let python = torch_python();
    if python.is_none() {
        assert!(
            std::env::var_os("SPARSENET_REQUIRE_TORCH").is_none(),
            "SPARSENET_REQUIRE_TORCH is set but no Python imports torch"
        );
        eprintln!("skipped the PyTorch half: no Python imports torch (set SPARSENET_TORCH_PYTHON)");
    }
    let ort = ort_python();
    if ort.is_none() {
        assert!(
            std::env::var_os("SPARSENET_REQUIRE_ORT").is_none(),
            "SPARSENET_REQUIRE_ORT is set but no Python imports onnxruntime"
        );
        eprintln!(
            "skipped the ONNX half: no Python imports onnxruntime (scripts/install-onnxruntime.sh)"
        );
    }
    let specs: [&[&str]; 17] = [
        &["--family", "sparse", "--depth", "10", "--growth", "4"],
        &["--family", "preres", "--depth", "11"],
        &["--family", "plain", "--depth", "8"],
        &[
            "--family", "dense", "--depth", "10", "--growth", "4", "--bc",
        ],
        &["--family", "res", "--depth", "8"],
        &[
            "--family",
            "sparse",
            "--depth",
            "10",
            "--growth",
            "4",
            "--aggregate",
            "sum",
        ],
        &[
            "--family",
            "sparse",
            "--depth",
            "10",
            "--growth",
            "4",
            "--aggregate",
            "mixed",
            "--mix",
            "2,4",
        ],
        &[
            "--family",
            "sparse",
            "--depth",
            "10",
            "--growth",
            "4",
            "--aggregate",
            "dual",
        ],
        &[
            "--family",
            "sparse",
            "--depth",
            "10",
            "--growth",
            "4",
            "--aggregate",
            "max",
        ],
        &["--random", "ba:m=1", "--nodes", "3", "--growth", "4"],
        // The ImageNet layout: a 7×7/2 stem, max pooling with padding, bottlenecks.
        &["--family", "res", "--depth", "50", "--layout", "imagenet"],
        // The comparison systems: biased 5×5 convolutions and fully connected stacks (LeNet-5,
        // an MLP), and dropout, which a trained model exports as the identity (Wide ResNet).
        &["--model", "lenet-5", "--lr", "0.01"],
        &["--family", "mlp", "--hidden", "32,16"],
        &[
            "--family",
            "wide",
            "--depth",
            "10",
            "--widen",
            "1",
            "--dropout",
            "0.5",
        ],
        // Mean joins (ONNX's Mean; drop-path is training's alone).
        &["--family", "fractal", "--columns", "3", "--blocks", "2"],
        // Mixed links (sums onto the last pieces) and DPN's grouped convolutions (ONNX's
        // `group`, PyTorch's `groups`) with dual paths; DPN-68 is the smallest DPN.
        &["--family", "mixnet", "--depth", "10", "--growth", "4"],
        &["--family", "dpn", "--depth", "68"],
    ];
    for (i, spec) in specs.iter().enumerate() {
        let dir = fresh_dir(&format!("net{i}"));
        let ckpt = tiny_run(&dir, spec);
        let module = dir.join("exported.py");
        let (code, out, err) = run(
            "export",
            &[
                "--checkpoint",
                ckpt.to_str().unwrap(),
                "--out",
                module.to_str().unwrap(),
                "--sample",
                "12",
            ],
        );
        assert_eq!(code, 0, "{spec:?}: {err}");
        assert!(out.contains("check it: python3"), "{out}");
        for f in [
            "exported.py",
            "exported.safetensors",
            "exported.sample.safetensors",
        ] {
            assert!(dir.join(f).is_file(), "{spec:?}: no {f}");
        }
        let onnx = dir.join("exported.onnx");
        let (code, out, err) = run(
            "export",
            &[
                "--checkpoint",
                ckpt.to_str().unwrap(),
                "--format",
                "onnx",
                "--out",
                onnx.to_str().unwrap(),
                "--sample",
                "12",
            ],
        );
        assert_eq!(code, 0, "{spec:?}: {err}");
        assert!(out.contains("check-onnx.py"), "{out}");
        if let Some(py) = &ort {
            let o = Command::new(py)
                .args([
                    concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-onnx.py"),
                    onnx.to_str().unwrap(),
                    dir.join("exported.sample.safetensors").to_str().unwrap(),
                ])
                .output()
                .unwrap();
            assert_agrees(&o, &format!("{spec:?} in onnxruntime"));
        }
        let Some(py) = &python else {
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        };
        let o = Command::new(py)
            .current_dir(&dir)
            .args(["exported.py", "--check", "exported.sample.safetensors"])
            .output()
            .unwrap();
        assert_agrees(&o, &format!("{spec:?} in PyTorch"));
        // The keys are the checkpoint's own, every one (strict both ways), and `--to-pt` gives
        // a state dict torch.load reads back into the module.
        let o = Command::new(py)
            .current_dir(&dir)
            .args([
                "-c",
                "import json, struct, torch, exported as m\n\
                 f = open('run/last.safetensors', 'rb'); n = struct.unpack('<Q', f.read(8))[0]\n\
                 ours = {k for k in json.loads(f.read(n)) if k != '__metadata__' and not k.startswith('optimizer.')}\n\
                 theirs = {k for k in m.Net().state_dict() if not k.endswith('num_batches_tracked')}\n\
                 assert ours == theirs, (sorted(ours ^ theirs))[:5]\n\
                 import subprocess, sys\n\
                 subprocess.run([sys.executable, 'exported.py', '--to-pt', 'w.pt'], check=True)\n\
                 net = m.Net(); net.load_state_dict(torch.load('w.pt'), strict=True)\n\
                 print(len(ours))",
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{spec:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if spec.contains(&"imagenet") {
            // The data's one channel: torchvision's first convolution replaced to read it.
            torchvision_twin(
                py,
                &dir,
                spec,
                &TwinCheck {
                    build: "net = torchvision.models.resnet50(num_classes=10)\n\
                            net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)",
                    first_tensor: "conv1.weight",
                    data: &["--data", "embedded"],
                },
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// How a network's torchvision twin is checked: the Python that builds it as `net` (adapted to
/// the data), the name of its first tensor (the first mismatch when a file of our names is read
/// under the torchvision key map), and the flags naming the data.
struct TwinCheck<'a> {
    build: &'a str,
    first_tensor: &'a str,
    data: &'a [&'a str],
}

/// An export under torchvision's names: torchvision's module loads it strictly and gives our
/// logits on the sample (to 1e-4 relative, the same classes); `train --init-from … --key-map
/// torchvision` starts from it; a file of our names under that key map, or the map on a
/// network torchvision does not build, is refused in one line.
fn torchvision_twin(py: &str, dir: &std::path::Path, spec: &[&str], check: &TwinCheck) {
    let has = Command::new(py)
        .args(["-c", "import torchvision"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            std::env::var_os("SPARSENET_REQUIRE_TORCH").is_none(),
            "SPARSENET_REQUIRE_TORCH is set but torchvision does not import"
        );
        eprintln!("skipped the torchvision check: torchvision does not import");
        return;
    }
    let script = format!(
        "import torch, torch.nn as nn, torchvision, exported as m\n\
         {}\n\
         net.load_state_dict(m.load_weights('exported.torchvision.safetensors'), strict=True)\n\
         net.eval()\n\
         s = m.load_weights('exported.sample.safetensors')\n\
         with torch.no_grad():\n    got = net(s['input']).double()\n\
         want = s['logits'].double()\n\
         rel = ((got - want).abs().max() / want.abs().max()).item()\n\
         assert rel <= 1e-4 and bool((got.argmax(1) == want.argmax(1)).all()), rel\n\
         print(rel, len(want))",
        check.build
    );
    let o = Command::new(py)
        .current_dir(dir)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "torchvision on our export of {spec:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let train = |init: &str, net: &[&str]| {
        let mut a: Vec<String> = net.iter().map(|s| s.to_string()).collect();
        let out = dir.join("from-torchvision");
        let _ = std::fs::remove_dir_all(&out);
        a.extend(
            [
                "--epochs",
                "1",
                "--max-steps",
                "1",
                "--batch-size",
                "4",
                "--max-test",
                "8",
                "--quiet",
                "--key-map",
                "torchvision",
            ]
            .map(String::from),
        );
        a.extend(check.data.iter().map(|s| s.to_string()));
        a.push("--init-from".to_string());
        a.push(dir.join(init).display().to_string());
        a.extend(["--out".to_string(), out.display().to_string()]);
        run("train", &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, out, err) = train("exported.torchvision.safetensors", spec);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("init:  weights"), "{out}");
    let (code, _, err) = train("exported.safetensors", spec);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim().lines().count() == 1 && err.contains(check.first_tensor),
        "{err}"
    );
    let (code, _, err) = train(
        "exported.torchvision.safetensors",
        &["--family", "sparse", "--depth", "10", "--growth", "4"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim().lines().count() == 1
            && err.contains("ImageNet ResNets")
            && err.contains("DenseNet-BCs of growth 32"),
        "{err}"
    );
}

/// DenseNet-121 under torchvision's names (issue 24's DenseNet map): trained for a step on
/// 64×64 RGB class folders (the last transition needs more than the 28×28 of Fashion-MNIST),
/// exported, and run by `torchvision.models.densenet121`.
#[test]
fn densenet_121_exports_load_into_torchvisions_densenet121() {
    let Some(py) = torch_python() else {
        assert!(
            std::env::var_os("SPARSENET_REQUIRE_TORCH").is_none(),
            "SPARSENET_REQUIRE_TORCH is set but no Python imports torch"
        );
        eprintln!("skipped: no Python imports torch (set SPARSENET_TORCH_PYTHON)");
        return;
    };
    let root = crate::folder_data::colour_folders("densenet-twin-data", 4, 4);
    let dir = fresh_dir("densenet-twin");
    let spec = [
        "--family", "dense", "--depth", "121", "--growth", "32", "--bc", "--layout", "imagenet",
    ];
    let data = [
        "--dataset",
        "folder",
        "--data-dir",
        root.to_str().unwrap(),
        "--size",
        "64",
    ];
    let ckpt = dir.join("run");
    let mut args: Vec<&str> = spec.to_vec();
    args.extend(data);
    args.extend([
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--batch-size",
        "4",
        "--quiet",
        "--out",
        ckpt.to_str().unwrap(),
    ]);
    let (code, _, err) = run("train", &args);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        "export",
        &[
            "--checkpoint",
            ckpt.join("last.safetensors").to_str().unwrap(),
            "--out",
            dir.join("exported.py").to_str().unwrap(),
            "--sample",
            "12",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported.torchvision.safetensors"), "{out}");
    torchvision_twin(
        &py,
        &dir,
        &spec,
        &TwinCheck {
            build: "net = torchvision.models.densenet121(num_classes=3)",
            first_tensor: "features.conv0.weight",
            data: &data,
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_exports_are_one_line_errors_and_write_nothing() {
    let dir = fresh_dir("bad");
    let ckpt = tiny_run(
        &dir,
        &["--family", "sparse", "--depth", "7", "--growth", "2"],
    );
    let c = ckpt.to_str().unwrap();
    let not_ours = dir.join("not-ours.safetensors");
    std::fs::write(&not_ours, b"this is not a checkpoint").unwrap();
    let cases: [(Vec<&str>, i32, &str); 5] = [
        (vec!["--checkpoint", c, "--out", "net.onnx"], 2, "NAME.py"),
        (
            vec!["--checkpoint", c, "--format", "onnx", "--out", "net.py"],
            2,
            "NAME.onnx",
        ),
        (vec!["--checkpoint", c, "--out", "9lives.py"], 2, "NAME.py"),
        (
            vec!["--checkpoint", not_ours.to_str().unwrap(), "--out", "x.py"],
            2,
            "not-ours.safetensors",
        ),
        (
            vec![
                "--checkpoint",
                c,
                "--out",
                "/proc/sparsenet/x.py",
                "--sample",
                "0",
            ],
            3,
            "/proc/sparsenet",
        ),
    ];
    for (args, status, names) in cases {
        let o = sparsenet("export")
            .current_dir(&dir)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(status), "{args:?}: {err}");
        assert!(
            err.trim().lines().count() == 1 && err.contains(names),
            "{args:?}: {err}"
        );
    }
    // Nothing half-written beside the checkpoint or in the folder.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py") || n.ends_with(".onnx") || n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `train --init-from` (issue 24, item 4): a run started from trained weights — our checkpoint,
/// or the weights file `export` writes — begins where they are (test accuracy far above a fresh
/// network's after the same single tiny step), and weights of another network are refused
/// naming the first tensor that does not fit.
#[test]
fn init_from_starts_a_run_from_given_weights_and_names_the_first_mismatch() {
    let dir = fresh_dir("init");
    let train = |args: &[&str]| run("train", args);
    let net = ["--family", "sparse", "--depth", "10", "--growth", "8"];
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let common = ["--data", "embedded", "--quiet", "--max-test", "500"];
    let with = |extra: &[&str]| -> Vec<String> {
        net.iter()
            .chain(common.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let acc = |folder: &str| -> f64 {
        let rows = crate::common::metrics(&dir.join(folder));
        rows.last().unwrap()["test_acc"].as_f64().unwrap()
    };
    let trained = out("trained");
    let a = with(&["--epochs", "4", "--schedule", "cosine", "--out", &trained]);
    let (code, _, err) = train(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let one_step = ["--epochs", "1", "--max-steps", "1", "--lr", "0.0001"];
    let fresh = out("fresh");
    let mut b = with(&one_step);
    b.extend(["--out".into(), fresh.clone()]);
    let (code, _, err) = train(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    // From the checkpoint, and from an export of it.
    let module = dir.join("trained_net.py");
    let (code, _, err) = run(
        "export",
        &[
            "--checkpoint",
            &format!("{trained}/last.safetensors"),
            "--out",
            module.to_str().unwrap(),
            "--sample",
            "0",
        ],
    );
    assert_eq!(code, 0, "{err}");
    for (name, init) in [
        ("from-checkpoint", format!("{trained}/last.safetensors")),
        (
            "from-export",
            dir.join("trained_net.safetensors").display().to_string(),
        ),
    ] {
        let mut c = with(&one_step);
        c.extend(["--init-from".into(), init, "--out".into(), out(name)]);
        let (code, stdout, err) = train(&c.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains("init:  weights"), "{stdout}");
        let (a, f, c) = (acc("trained"), acc("fresh"), acc(name));
        assert!(
            (c - a).abs() < 0.05 && c > f + 0.2,
            "{name}: trained {a}, fresh after one step {f}, initialised from it after one step {c}"
        );
    }
    // Another network's weights: one line naming the tensor.
    let (code, _, err) = train(&[
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
        "--data",
        "embedded",
        "--quiet",
        "--init-from",
        &format!("{trained}/last.safetensors"),
        "--out",
        &out("mismatch"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim().lines().count() == 1 && err.contains("--init-from") && err.contains("tensor"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
