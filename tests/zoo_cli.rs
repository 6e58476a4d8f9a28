//! The `zoo` command as a user runs it.

use crate::common::{fresh_dir, run};

fn zoo(args: &[&str]) -> (i32, String, String) {
    run("zoo", args)
}

#[test]
fn json_contract_for_every_named_model() {
    let (code, out, err) = zoo(&["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 39);
    for r in &rows {
        for key in ["name", "family", "dataset"] {
            assert!(r[key].is_string(), "{key}");
        }
        for key in ["depth", "classes", "params", "bn_running", "macs", "flops"] {
            assert!(r[key].is_u64(), "{key}");
        }
        assert!(r["growth"].is_array() && r["bc"].is_boolean());
        assert!(r["paper_params"].is_f64() || r["paper_params"].is_null());
        assert!(r["paper_flops"].is_f64() || r["paper_flops"].is_null());
    }
    let d121 = rows.iter().find(|r| r["name"] == "densenet-121").unwrap();
    assert_eq!(d121["params"], 7_978_856);
    assert_eq!(d121["classes"], 1000);
    let s40 = rows
        .iter()
        .find(|r| r["name"] == "sparsenet-40-24")
        .unwrap();
    assert_eq!(s40["classes"], 100);
    assert_eq!(
        rows.iter().find(|r| r["name"] == "resnet-20").unwrap()["classes"],
        10
    );
}

#[test]
fn classes_override_drops_paper_figures() {
    let (code, out, _) = zoo(&[
        "--model",
        "sparsenet-40-24",
        "--classes",
        "10",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    // 100 → 10 classes removes 90 · (C + 1) head parameters; C = 48 + 3·... read it off the row.
    assert_eq!(rows[0]["classes"], 10);
    assert!(rows[0]["paper_params"].is_null());
    let (_, out100, _) = zoo(&["--model", "sparsenet-40-24", "--format", "json"]);
    let r100: Vec<serde_json::Value> = serde_json::from_str(&out100).unwrap();
    let diff = r100[0]["params"].as_u64().unwrap() - rows[0]["params"].as_u64().unwrap();
    assert_eq!(diff % 90, 0);
}

#[test]
fn table_sweep_list_csv() {
    let (code, out, _) = zoo(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("densenet-121") && out.contains("7978856"));
    let (code, out, _) = zoo(&["--sweep-depth"]);
    assert_eq!(code, 0);
    assert!(out.contains("fitted exponent"));
    let (code, out, _) = zoo(&["--sweep-depth", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dense = v["dense_exponent"].as_f64().unwrap();
    let sparse = v["sparse_exponent"].as_f64().unwrap();
    assert!(dense > 1.9 && sparse < 1.4, "{dense} {sparse}");
    let (code, out, _) = zoo(&["--list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 39);
    let (code, out, _) = zoo(&[
        "--family", "sparse", "--depth", "40", "--growth", "12", "--format", "csv",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
}

#[test]
fn bad_input() {
    let cases: &[&[&str]] = &[
        &["--model", "sparsenet-40"],
        &["--family", "dense", "--depth", "41", "--growth", "12"],
        &[
            "--family", "dense", "--depth", "55", "--bc", "--growth", "12",
        ],
        &["--family", "dense", "--depth", "40", "--growth", "0"],
        &["--family", "dense", "--depth", "40"],
        &["--family", "ring", "--depth", "40", "--growth", "12"],
        &["--model", "resnet-20", "--classes", "0"],
        &["--model", "resnet-20", "--depth", "32"],
        &["--family", "res", "--depth", "21"],
        &[
            "--family",
            "sparse",
            "--depth",
            "40",
            "--growth",
            "12",
            "--offsets",
            "1,1",
        ],
        &[
            "--family", "sparse", "--depth", "121", "--growth", "32", "--layout", "mnist",
        ],
        &["--depth", "40"],
    ];
    for args in cases {
        let (code, out, err) = zoo(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    let (_, _, err) = zoo(&["--model", "sparsenet-40"]);
    assert!(err.contains("sparsenet-40-24"));
    let (_, _, err) = zoo(&["--family", "dense", "--depth", "41", "--growth", "12"]);
    assert!(err.contains("40, 100"));
}

#[test]
fn plot_and_dag() {
    let dir = fresh_dir("plot");
    let (code, _, err) = zoo(&["--model", "resnet-20", "--plot", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for stem in ["params_vs_depth", "param_efficiency"] {
        assert!(
            dir.join(format!("{stem}.png")).exists() && dir.join(format!("{stem}.svg")).exists()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (code, out, _) = zoo(&["--model", "resnet-20", "--dag"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    // One conv per stem plus two per unit (3 stages × 3 units): 19 convolutions.
    assert_eq!(nodes.iter().filter(|n| n["op"]["op"] == "conv").count(), 19);
    assert_eq!(v["output"].as_u64().unwrap() as usize, nodes.len() - 1);
}
