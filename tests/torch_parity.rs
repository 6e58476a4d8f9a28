//! The PyTorch peer builds every exported network (`zoo --dag`) with exactly the parameter count
//! that `zoo` reports, and its forward pass yields logits of the head's shape: the export is a
//! complete description of the network, for named models and for every aggregation operator and
//! DAG block alike.
//!
//! Needs a Python with PyTorch: `$SPARSENET_TORCH_PYTHON`, else the first of `python3` and
//! `/usr/bin/python3` that imports torch (Debian's `python3-torch` is enough; `.ci/run` installs
//! it through `scripts/install-torch-peer.sh`). Without one the test says so and passes, unless
//! `SPARSENET_REQUIRE_TORCH` is set, as `.ci/run` sets it: there a missing PyTorch fails the run.
use crate::common::{run, tmp, torch_python};
use std::process::Command;

const ZOO: &str = "zoo";

/// `zoo`'s exact parameter count and class count for these spec arguments.
fn zoo_counts(spec: &[&str]) -> (u64, u64) {
    let mut args = spec.to_vec();
    args.extend(["--format", "json"]);
    let (code, out, err) = run(ZOO, &args);
    assert_eq!(code, 0, "zoo {spec:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("zoo json");
    let row = &v[0];
    (
        row["params"].as_u64().expect("params"),
        row["classes"].as_u64().expect("classes"),
    )
}

/// What the peer prints for the DAG in `path` (`--count`): parameters and logits shape.
fn peer_count(python: &str, path: &std::path::Path) -> serde_json::Value {
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_peer.py");
    let o = Command::new(python)
        .args([peer, path.to_str().unwrap(), "--count", "--threads", "2"])
        .output()
        .expect("run the peer");
    assert!(
        o.status.success(),
        "peer failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("peer prints one JSON line")
}

#[test]
fn pytorch_counts_the_comparison_systems_as_published() {
    // The zoo's rows of the systems the paper compares against, exported and built by PyTorch,
    // against their counts worked out by hand (LeNets, WRN-16-8) or as torchvision documents
    // them (AlexNet, VGG-16): biased convolutions of 5×5 and 11×11/4, max pooling,
    // dropout, stacks of fully connected layers, 1×1 projections of pre-activated inputs,
    // mixed links, grouped convolutions and dual paths.
    let Some(python) = torch_python() else {
        assert!(std::env::var_os("SPARSENET_REQUIRE_TORCH").is_none());
        eprintln!("skipped: no Python with torch");
        return;
    };
    let dir = tmp("systems");
    std::fs::create_dir_all(&dir).unwrap();
    for (model, by_hand, classes) in [
        // 784·300 + 300, 300·100 + 100, 100·10 + 10.
        ("lenet-300-100", 266_610, 10),
        // 20·25 + 20, 50·20·25 + 50, 800·500 + 500, 500·10 + 10.
        ("lenet-5", 520 + 25_050 + 400_500 + 5_010, 10),
        ("wrn-16-8", 10_961_370, 10),
        // Mean joins: 5 blocks × (3 input-reading + 4 width-reading 3×3 convolutions, 7 BNs) + fc.
        ("fractalnet-21", 33_724_618, 10),
        ("alexnet", 61_100_840, 1000),
        ("vgg-16", 138_357_544, 1000),
        // net/src/zoo/tests.rs works both out unit by unit (mixnet_by_hand, dpn_by_hand); DPN's
        // 3×3 layers are grouped convolutions (32 groups).
        ("mixnet-100", 1_464_202, 10),
        ("dpn-92", 37_668_392, 1000),
    ] {
        assert_eq!(
            zoo_counts(&["--model", model]),
            (by_hand, classes),
            "zoo's count of {model}"
        );
        let (code, out, err) = run(ZOO, &["--model", model, "--dag"]);
        assert_eq!(code, 0, "{model}: {err}");
        let path = dir.join(format!("{model}.json"));
        std::fs::write(&path, out).unwrap();
        let v = peer_count(&python, &path);
        assert_eq!(
            v["params"].as_u64(),
            Some(by_hand),
            "PyTorch's count of {model}"
        );
        assert_eq!(
            v["logits_shape"],
            serde_json::json!([2, classes]),
            "{model}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pytorch_builds_every_exported_network_with_the_same_parameter_count() {
    let Some(python) = torch_python() else {
        assert!(
            std::env::var_os("SPARSENET_REQUIRE_TORCH").is_none(),
            "SPARSENET_REQUIRE_TORCH is set but no Python imports torch \
             (run scripts/install-torch-peer.sh, or set SPARSENET_TORCH_PYTHON)"
        );
        eprintln!("skipped: no Python with torch (scripts/install-torch-peer.sh installs one)");
        return;
    };
    let dir = tmp("parity");
    std::fs::create_dir_all(&dir).unwrap();
    // A hand-written DAG block: a skip from the input to the output and a diamond.
    let edges = dir.join("block.edges");
    std::fs::write(
        &edges,
        "# a diamond with a long skip\n0 1\n0 2\n1 3\n2 3\n3 4\n0 4\n",
    )
    .unwrap();
    let edges = edges.to_str().unwrap().to_string();
    // One network per line, as its `zoo` arguments.
    let lines = [
        // Named models: every family and stem/head kind, including ResNet's option-A shortcut.
        "--model densenet-40-12".to_string(),
        "--model sparsenet-40-24".into(),
        "--model sparsenet-bc-100-24".into(),
        "--model densenet-bc-100-12".into(),
        "--model resnet-20".into(),
        "--model preresnet-164".into(),
        "--model sparsenet-121-32".into(),
        // The comparison systems' free specs beyond their named rows.
        "--family wide --depth 22 --widen 2 --dropout 0.3 --classes 7".into(),
        "--family vgg --depth 11 --classes 10".into(),
        "--family mlp --hidden 64,32,16".into(),
        "--family lenet --hidden 6,16,120".into(),
        // Every aggregation operator over the sparse and dense patterns.
        "--family sparse --aggregate sum --depth 40 --growth 24".into(),
        "--family dense --aggregate sum --bc --depth 40 --growth 12".into(),
        "--family sparse --aggregate mixed --mix 12,12 --depth 40".into(),
        "--family dense --aggregate dual --depth 22 --growth 12".into(),
        "--family sparse --aggregate dual --bc --depth 40 --growth 12".into(),
        "--family sparse --aggregate max --depth 40 --growth 24".into(),
        "--family sparse --offsets 1,2,3,5,8 --depth 40 --growth 12".into(),
        // DAG blocks: a file and each random model.
        format!("--dag-file {edges}"),
        "--random ba:m=2 --nodes 32 --seed 3".into(),
        "--random er:p=0.2 --nodes 20 --seed 1".into(),
        "--random ws:k=4,p=0.25 --nodes 24 --seed 2".into(),
    ];
    let specs: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (i, spec) in specs.iter().enumerate() {
        let (params, classes) = zoo_counts(spec);
        let dag = dir.join(format!("net{i}.json"));
        let mut args = spec.clone();
        args.push("--dag");
        let (code, out, err) = run(ZOO, &args);
        assert_eq!(code, 0, "zoo {spec:?} --dag: {err}");
        std::fs::write(&dag, out).unwrap();
        let v = peer_count(&python, &dag);
        assert_eq!(
            v["params"].as_u64(),
            Some(params),
            "parameter count of {spec:?}: PyTorch against zoo"
        );
        assert_eq!(
            v["logits_shape"],
            serde_json::json!([2, classes]),
            "logits shape of {spec:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
