//! DAG blocks from the command line: `paths --dag-file/--random`, `zoo --random`, `train` on a
//! DAG network; bad DAG files.

use crate::common::{fresh_dir as tmp, run};

#[test]
fn paths_on_dag_files_and_random_blocks() {
    let dir = tmp("paths");
    // A diamond with a shortcut: 0→1, 0→2, 1→3, 2→3, 0→3. Paths 0→3: 0-3, 0-1-3, 0-2-3.
    let f = dir.join("diamond.edges");
    std::fs::write(&f, "# diamond\n0 1\n0 2\n1 3\n2 3\n0 3\n").unwrap();
    let (code, out, err) = run(
        "paths",
        &["--dag-file", f.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let a = &v["analysis"];
    assert_eq!(a["paths"], "3");
    assert_eq!(a["connections"], 5);
    assert_eq!(a["histogram"], serde_json::json!(["0", "1", "2"]));
    // Pairs j < l: (0,1) (0,2) (0,3) (1,3) (2,3) one hop; (1,2) unreachable.
    assert_eq!(a["gradient"]["max"], 1);
    assert_eq!(a["gradient"]["unreachable"], 1);
    assert!(v["claims_not_applicable"].as_array().unwrap().len() >= 5);
    // DOT in, the same block.
    let dot = dir.join("diamond.dot");
    let (_, dot_text, _) = run(
        "paths",
        &["--dag-file", f.to_str().unwrap(), "--format", "dot"],
    );
    std::fs::write(&dot, dot_text).unwrap();
    let (code, out2, _) = run(
        "paths",
        &["--dag-file", dot.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(code, 0);
    let v2: serde_json::Value = serde_json::from_str(&out2).unwrap();
    assert_eq!(v2["analysis"], v["analysis"]);

    let (code, out, err) = run(
        "paths",
        &["--random", "ba:m=2", "--nodes", "32", "--seed", "3"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("34 nodes") && out.contains("paths x0→x33"),
        "{out}"
    );

    // Bad blocks: one line each, status 2; an unreadable file, status 3.
    let cyc = dir.join("cycle.edges");
    std::fs::write(&cyc, "0 1\n1 2\n2 1\n").unwrap();
    let back = dir.join("back.edges");
    std::fs::write(&back, "0 2\n2 1\n1 3\n").unwrap();
    for (args, status, needle) in [
        (vec!["--dag-file", cyc.to_str().unwrap()], 2, "cycle"),
        (vec!["--dag-file", back.to_str().unwrap()], 2, "backwards"),
        (vec!["--dag-file", "/nonexistent/x.edges"], 3, "x.edges"),
        (vec!["--random", "ws:k=3,p=0.1"], 2, "even k"),
        (vec!["--random", "zz:p=1"], 2, "unknown random graph"),
    ] {
        let (code, _, err) = run("paths", &args);
        assert_eq!(code, status, "{args:?}: {err}");
        assert!(
            err.contains(needle) && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    // The same bad blocks in zoo and train (which build networks from them): the same status.
    let cyc = cyc.to_str().unwrap();
    for (bin, extra) in [
        ("zoo", vec![]),
        ("train", vec!["--epochs", "1", "--max-steps", "1"]),
    ] {
        for (file, status, needle) in [(cyc, 2, "cycle"), ("/nonexistent/x.edges", 3, "x.edges")] {
            let mut args = vec!["--dag-file", file];
            args.extend(&extra);
            let (code, _, err) = run(bin, &args);
            assert_eq!(code, status, "{bin} {args:?}: {err}");
            assert!(
                err.contains(needle) && err.trim_end().lines().count() == 1,
                "{bin} {args:?}: {err}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zoo_and_train_build_dag_networks() {
    let dir = tmp("zoo");
    let f = dir.join("tiny.edges");
    std::fs::write(&f, "0 1\n0 2\n1 2\n").unwrap();
    // The count of net's dag_blocks_by_hand: 577 parameters.
    let (code, out, err) = run(
        "zoo",
        &[
            "--dag-file",
            f.to_str().unwrap(),
            "--growth",
            "2",
            "--classes",
            "3",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"params\": 577"), "{out}");
    let (code, out, err) = run(
        "zoo",
        &["--random", "ba:m=2", "--nodes", "32", "--seed", "3"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dag(34 nodes"), "{out}");
    let (code, _, err) = run("zoo", &["--dag-file", f.to_str().unwrap(), "--depth", "13"]);
    assert_eq!(code, 2);
    assert!(err.contains("--depth 10"), "{err}");

    let out_dir = dir.join("run");
    let (code, stdout, err) = run(
        "train",
        &[
            "--random",
            "ws:k=4,p=0.25",
            "--nodes",
            "6",
            "--growth",
            "4",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--max-test",
            "50",
            "--quiet",
            "--data-dir",
            crate::common::SUBSET,
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("dag(8 nodes"), "{stdout}");
    assert!(out_dir.join("last.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn aggregation_operators_from_the_command_line() {
    // The counts of net's by-hand tests: sum 265, mixed 1076, dual 1693; max has no
    // parameters of its own, so its network counts what sum's does.
    for (args, params) in [
        (vec!["--aggregate", "sum", "--growth", "2"], 265),
        (vec!["--aggregate", "max", "--growth", "2"], 265),
        (vec!["--aggregate", "mixed", "--mix", "1,2"], 1076),
        (vec!["--aggregate", "dual", "--growth", "2"], 1693),
    ] {
        let mut all = vec![
            "--family",
            "sparse",
            "--depth",
            "7",
            "--classes",
            "3",
            "--format",
            "json",
        ];
        all.extend(args.iter().copied());
        let (code, out, err) = run("zoo", &all);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            out.contains(&format!("\"params\": {params}")),
            "{args:?}: {out}"
        );
    }
    for (args, needle) in [
        (
            vec!["--family", "sparse", "--depth", "7", "--aggregate", "mixed"],
            "--mix",
        ),
        (
            vec![
                "--family", "sparse", "--depth", "7", "--growth", "2", "--mix", "1,2",
            ],
            "--aggregate mixed",
        ),
        (
            vec![
                "--family",
                "sparse",
                "--depth",
                "7",
                "--aggregate",
                "mixed",
                "--mix",
                "1,2",
                "--growth",
                "3",
            ],
            "growth",
        ),
        (
            vec!["--family", "res", "--depth", "20", "--aggregate", "dual"],
            "sparse or dense",
        ),
        (
            vec![
                "--family",
                "sparse",
                "--depth",
                "7",
                "--aggregate",
                "mixed",
                "--mix",
                "1,2,3",
            ],
            "two widths",
        ),
    ] {
        let (code, _, err) = run("zoo", &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(needle) && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

/// A 1 000 000-node chain (the node limit) gives its exact counts in seconds: the all-pairs
/// statistics, a search from every node (10¹² steps), are skipped with a line saying how to
/// force them (issue 29, item 2).
#[test]
fn a_million_node_chain_answers_at_once() {
    let d = tmp("chain");
    let f = d.join("chain.edges");
    let text: String = (0..999_999).map(|i| format!("{i} {}\n", i + 1)).collect();
    std::fs::write(&f, text).unwrap();
    let t = std::time::Instant::now();
    let (code, out, err) = run("paths", &["--dag-file", f.to_str().unwrap(), "-f", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let a = &v["analysis"];
    assert_eq!(a["nodes"], 1_000_000);
    assert_eq!(a["connections"], 999_999);
    assert_eq!(a["paths"], "1");
    assert_eq!(a["lengths"]["max"], 999_999);
    assert!(a["gradient"].is_null());
    assert!(
        a["gradient_skipped"]
            .as_str()
            .unwrap()
            .contains("--force-histograms"),
        "{a}"
    );
    // A small block still gets them, and the table says where they were skipped.
    let (code, out, _) = run(
        "paths",
        &["--random", "ba:m=2", "--nodes", "50", "-f", "json"],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["analysis"]["gradient"]["max"].as_u64().unwrap() >= 1);
    let (_, table, _) = run("paths", &["--dag-file", f.to_str().unwrap()]);
    assert!(
        table.contains("gradient paths over all pairs: skipped"),
        "{table}"
    );
}

/// Issue 40, item 9: the exact path counts are sized before they are counted. A Watts–Strogatz
/// block of 500 000 nodes (k = 40, within the edge limit) once grew its counts to 8 GB and
/// aborted; now the count is estimated in floating point and said so, under a 4 GB
/// address-space limit, and a small block still gets the exact count and the same estimate.
#[test]
fn path_counts_past_their_budget_are_estimated_and_said_so() {
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 4000000; exec \"$@\"")
        .arg("paths")
        .arg(crate::common::SPARSENET)
        .arg("paths")
        .args([
            "--random",
            "ws:k=40,p=0.1",
            "--nodes",
            "500000",
            "-f",
            "json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = &v["analysis"];
    assert!(a["paths"].is_null(), "{}", a["paths"]);
    assert!(a["paths_skipped"]
        .as_str()
        .unwrap()
        .contains("GB of big integers"));
    // Every node has at least 20 sources: well over 10^100 000 paths.
    assert!(
        a["log10_paths"].as_f64().unwrap() > 1e5,
        "{}",
        a["log10_paths"]
    );
    let (code, out, err) = run(
        "paths",
        &["--random", "ws:k=4,p=0.1", "--nodes", "300", "-f", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let a = &v["analysis"];
    let exact = a["paths"].as_str().unwrap();
    // log10 of the exact decimal count, from its digits.
    let digits = exact.len() as f64 - 1.0
        + format!("0.{}", &exact[..15.min(exact.len())])
            .parse::<f64>()
            .unwrap()
            .log10()
        + 1.0;
    assert!(
        (a["log10_paths"].as_f64().unwrap() - digits).abs() < 1e-9,
        "{a}"
    );
}
