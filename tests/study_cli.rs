//! `study` as a user runs it: a small grid trained, read back and resumed without training
//! twice; connection usage and lesions of its checkpoints; bad input.

use crate::common::{run, subset, tmp};
use std::path::Path;

fn study(args: &[&str]) -> (i32, String, String) {
    run("study", args)
}

fn rows(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The recipe of every small study here.
fn recipe<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--max-steps",
        "3",
        "--max-test",
        "100",
        "--data-dir",
        data,
        "--out",
        out,
    ]
}

#[test]
fn efficiency_trains_reads_back_and_resumes_without_training_twice() {
    let data = subset();
    let dir = tmp("eff");
    std::fs::create_dir_all(&dir).unwrap();
    let grid = dir.join("grid.txt");
    std::fs::write(
        &grid,
        "# a sparse and a residual network, the sparse pattern summed, a random DAG block\n--family sparse --depth 10 --growth 4\n--family res --depth 8   # ResNet-8\n--family sparse --depth 10 --growth 4 --aggregate sum\n--random ba:m=1 --nodes 3 --growth 4\n",
    )
    .unwrap();
    let out = dir.join("study");
    let o = out.to_str().unwrap();
    // One run is interrupted first: trained by `train` for 1 of its 2 epochs, in the folder
    // the study gives it, with the study's recipe.
    let interrupted = out.join("runs").join("resnet-8-s1");
    let (code, _, err) = run(
        "train",
        &[
            "--family",
            "res",
            "--depth",
            "8",
            "--seed",
            "1",
            "--epochs",
            "2",
            "--max-steps",
            "3",
            "--max-test",
            "100",
            "--data-dir",
            &data,
            "--stop-after",
            "1",
            "--quiet",
            "--out",
            interrupted.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut args = vec!["efficiency", "--grid", grid.to_str().unwrap()];
    args.extend(recipe(&data, o));
    let (code, stdout, err) = study(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("[4/4]") && stdout.contains("test error % (mean ± std)"),
        "{stdout}"
    );
    let r = rows(&out);
    assert_eq!(r.len(), 4);
    assert_eq!(r[2]["name"], "sparsenet-10-4-sum");
    assert!(
        r[3]["name"].as_str().unwrap().contains("dag(5 nodes"),
        "{}",
        r[3]["name"]
    );
    for key in [
        "spec",
        "name",
        "family",
        "params",
        "flops",
        "seed",
        "epochs",
        "final_test_acc",
        "best_test_acc",
        "final_test_loss",
        "seconds",
        "data",
    ] {
        assert!(r[0].get(key).is_some(), "results.jsonl lacks {key}");
    }
    assert_eq!(r[0]["spec"], "--family sparse --depth 10 --growth 4");
    // Graph metrics, by hand. SparseNet-10-4: 3 blocks of 2 layers, each viewed at depth 3
    // (node 3 the output) with S(1) = {0}, S(2) = {1, 0}, S(3) = {2, 1}: 5 connections;
    // paths 0-1-2-3, 0-2-3, 0-1-3 (3, of mean length 7/3); all-pairs hops 1, 1, 2, 1, 1, 1
    // (mean 7/6, longest 2); the output reads both layers.
    let g = &r[0]["graph"];
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    assert_eq!(g["connections"], 5.0, "{g}");
    assert!(close(&g["log10_paths"], 3f64.log10()), "{g}");
    assert!(close(&g["mean_path_length"], 7.0 / 3.0), "{g}");
    assert_eq!(
        (&g["max_path_length"], &g["max_gradient_path"]),
        (&3.0.into(), &2.0.into())
    );
    assert!(close(&g["mean_gradient_path"], 7.0 / 6.0), "{g}");
    assert_eq!(g["output_reads"], 1.0, "{g}");
    assert_eq!(g["blocks"].as_array().unwrap().len(), 3);
    assert_eq!(g["blocks"][2]["block"], "block3");
    assert_eq!(g["blocks"][2]["connections"], 5);
    // ResNet-8: one unit per stage, read with the stage input by the output (the summed
    // state): 3 connections, 2 paths.
    let g = &r[1]["graph"];
    assert_eq!(g["connections"], 3.0, "{g}");
    assert!(close(&g["log10_paths"], 2f64.log10()), "{g}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary[1]["graph"]["connections"], 3.0);
    assert_eq!(
        (r[1]["family"].as_str(), r[1]["epochs"].as_u64()),
        (Some("res"), Some(2))
    );
    let log = std::fs::read_to_string(interrupted.join("train.log")).unwrap();
    assert!(log.contains("resuming after epoch 1"), "{log}");
    for f in [
        "summary.json",
        "summary.txt",
        "error_vs_params.png",
        "error_vs_flops.svg",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // The resumed run equals an uninterrupted one, bit for bit.
    let whole = dir.join("whole");
    let mut args = vec!["efficiency", "--grid", grid.to_str().unwrap()];
    args.extend(recipe(&data, whole.to_str().unwrap()));
    assert_eq!(study(&args).0, 0);
    let w = rows(&whole);
    for k in [
        "final_test_acc",
        "best_test_acc",
        "final_test_loss",
        "params",
        "flops",
    ] {
        assert_eq!(r[1][k], w[1][k], "{k}");
    }
    // Run again: nothing is trained twice, the results are the same.
    let before = std::fs::read(out.join("runs/sparsenet-10-4-s1/last.safetensors")).unwrap();
    let mut args = vec!["efficiency", "--grid", grid.to_str().unwrap()];
    args.extend(recipe(&data, o));
    let (code, _, err) = study(&args);
    assert_eq!(code, 0, "{err}");
    let log = std::fs::read_to_string(out.join("runs/sparsenet-10-4-s1/train.log")).unwrap();
    assert!(log.contains("nothing to do"), "{log}");
    assert_eq!(
        before,
        std::fs::read(out.join("runs/sparsenet-10-4-s1/last.safetensors")).unwrap()
    );
    let again = rows(&out);
    assert_eq!(again.len(), 4);
    for (a, b) in r.iter().zip(&again) {
        assert_eq!(a["final_test_acc"], b["final_test_acc"]);
    }

    // Correlations: four networks are too few unless asked for fewer.
    let (code, stdout, err) = study(&["correlate", o]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("4 networks (4 runs): too few"), "{stdout}");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("correlate.json")).unwrap())
            .unwrap();
    assert!(c["metrics"].as_array().unwrap().is_empty() && c["too_few"].is_string());
    let (code, stdout, err) = study(&["correlate", o, "--min-networks", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("mean gradient path"), "{stdout}");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("correlate.json")).unwrap())
            .unwrap();
    assert_eq!(c["metrics"].as_array().unwrap().len(), 7);
    assert_eq!(
        (c["runs"].as_u64(), c["networks"].as_u64()),
        (Some(4), Some(4))
    );
    assert!(out.join("correlate_log10_paths.png").exists());

    // Connection usage of the sparse run; a summing network is refused.
    let ck = out.join("runs/sparsenet-10-4-s1/last.safetensors");
    let wdir = dir.join("weights");
    let (code, _, err) = study(&[
        "weights",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        wdir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let wj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wdir.join("weights.json")).unwrap()).unwrap();
    let blocks = wj["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0]["layers"], 2);
    // Layer 1 reads only the block input; layer 2 reads layer 1 and the block input.
    assert!(blocks[0]["matrix"][1][0].is_null());
    assert!(blocks[0]["matrix"][0][0].as_f64().unwrap() > 0.0);
    assert!(wdir.join("weights.png").exists() && wdir.join("weights.svg").exists());
    let res = out.join("runs/resnet-8-s1/last.safetensors");
    let (code, _, err) = study(&["weights", "--checkpoint", res.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no concatenating blocks") && err.lines().count() == 1,
        "{err}"
    );

    // Lesions of both networks, compared in one figure.
    let ldir = dir.join("lesion");
    let (code, stdout, err) = study(&[
        "lesion",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--checkpoint",
        res.to_str().unwrap(),
        "--max-k",
        "2",
        "--draws",
        "2",
        "--max-test",
        "100",
        "--out",
        ldir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("skip kept"), "{stdout}");
    let l: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ldir.join("lesion-2.json")).unwrap())
            .unwrap();
    assert_eq!(
        l["single"].as_array().unwrap().len(),
        3,
        "one unit per ResNet-8 stage"
    );
    assert_eq!(l["random"][1]["k"], 2);
    assert_eq!(l["random"][1]["accs"].as_array().unwrap().len(), 2);
    assert!(l["baseline_acc"].as_f64().is_some() && l["rule"].as_str().unwrap().contains("skip"));
    assert!(ldir.join("lesion_random.png").exists() && ldir.join("lesion_single.svg").exists());
    // No temp files anywhere.
    for d in [&out, &wdir, &ldir] {
        for e in std::fs::read_dir(d).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            assert!(!n.contains(".tmp"), "{n} left in {}", d.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `study correlate` on rows made here: error rising with connections in every run gives
/// ρ = +1 with the interval [1, 1] (every resample of a monotone relation is monotone); rows
/// without graph metrics, and folders without results, are refused in one line.
#[test]
fn correlate_finds_a_monotone_relation_and_refuses_rows_without_metrics() {
    let dir = tmp("correlate");
    std::fs::create_dir_all(&dir).unwrap();
    let row = |i: usize, graph: bool| {
        let params = [5, 3, 8, 1, 7, 2, 6, 4][i] * 1000;
        let mut v = serde_json::json!({
            "spec": format!("--net {i}"), "name": format!("net-{i}"), "family": "sparse",
            "params": params, "flops": 1000, "seed": 1, "epochs": 1,
            "final_test_acc": 0.9 - 0.01 * i as f64, "best_test_acc": 0.9,
            "final_test_loss": 0.3, "seconds": 1.0, "data": "hand-made",
        });
        if graph {
            let m = serde_json::json!({
                "connections": i, "log10_paths": 1.0, "mean_path_length": 2.0,
                "max_path_length": 3, "mean_gradient_path": 1.0 + (i % 3) as f64,
                "max_gradient_path": 2, "output_reads": 1.0,
            });
            let mut block = m.clone();
            block["block"] = "block1".into();
            let mut g = m;
            g["blocks"] = serde_json::json!([block]);
            v["graph"] = g;
        }
        v.to_string()
    };
    let good = dir.join("good.jsonl");
    let lines: Vec<String> = (0..8).map(|i| row(i, true)).collect();
    std::fs::write(&good, lines.join("\n") + "\n").unwrap();
    let out = dir.join("out");
    let (code, stdout, err) = study(&[
        "correlate",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("8 runs of 8 networks"), "{stdout}");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("correlate.json")).unwrap())
            .unwrap();
    let m = |name: &str| {
        c["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(m("connections")["raw"]["rho"], 1.0, "{c}");
    assert_eq!(
        m("connections")["raw"]["ci95"],
        serde_json::json!([1.0, 1.0])
    );
    // A constant metric gets no number, and says why.
    assert!(m("log10_paths")["raw"].is_null());
    assert_eq!(m("log10_paths")["note"], "the same for every run");
    assert_eq!(m("mean_gradient_path")["distinct"], 3);
    for f in [
        "correlate.txt",
        "correlate_connections.png",
        "correlate_connections.svg",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // A row without metrics (an old study) is refused with the fix.
    let old = dir.join("old.jsonl");
    std::fs::write(&old, format!("{}\n{}\n", row(0, true), row(1, false))).unwrap();
    let (code, _, err) = study(&["correlate", old.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.trim().lines().count() == 1
            && err.contains("net-1")
            && err.contains("study efficiency"),
        "{err}"
    );
    let (code, _, err) = study(&["correlate", dir.join("nothing").to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.trim().lines().count() == 1 && err.contains("cannot read"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_one_line_naming_what_was_wrong() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let grid = dir.join("g.txt");
    std::fs::write(
        &grid,
        "--model sparsenet-40-24\n--family sparse --depth 16\n",
    )
    .unwrap();
    let g = grid.to_str().unwrap();
    let dag_grid = dir.join("dag.txt");
    std::fs::write(&dag_grid, "--dag-file /nonexistent/x.edges\n").unwrap();
    let dg = dag_grid.to_str().unwrap();
    // (arguments, expected status: 2 bad input, 3 a file could not be read, words of the error)
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["efficiency", "--grid", g], 2, "line 2"),
        (vec!["efficiency"], 2, "--preset"),
        // A grid line's unreadable DAG file: status 3, as in paths, zoo and train.
        (vec!["efficiency", "--grid", dg], 3, "line 1"),
        (
            vec!["efficiency", "--grid", "/nonexistent/grid.txt"],
            3,
            "cannot read",
        ),
        (
            vec!["efficiency", "--preset", "quick", "--seeds", "1,1"],
            2,
            "twice",
        ),
        (
            vec!["efficiency", "--preset", "quick", "--jobs", "0"],
            2,
            "jobs",
        ),
        (
            vec!["weights", "--checkpoint", "/nonexistent/x.safetensors"],
            3,
            "x.safetensors",
        ),
        (
            vec![
                "lesion",
                "--checkpoint",
                "a.safetensors",
                "--checkpoint",
                "b.safetensors",
            ],
            2,
            "--out",
        ),
    ];
    for (args, status, needle) in cases {
        let (code, _, err) = study(&args);
        assert_eq!(code, status, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `study search` at smoke size (issue 26, item 3): a budget of ~3 000 parameters, the offsets
/// space of a 3-layer block, two rungs. Every candidate meets the budget and has its metrics
/// and errors; the front reads back into `zoo` and `paths`; running it again trains nothing and
/// writes the same record; impossible searches are refused in one line.
#[test]
fn search_draws_filters_halves_and_resumes() {
    let data = subset();
    let dir = tmp("search");
    let out = dir.join("s");
    let o = out.to_str().unwrap();
    let args = [
        "search",
        "--budget-params",
        "3000",
        "--tolerance",
        "0.5",
        "--space",
        "offsets",
        "--depth",
        "13",
        "--candidates",
        "3",
        "--rungs",
        "2",
        "--max-steps",
        "2",
        "--max-test",
        "50",
        "--data-dir",
        &data,
        "--out",
        o,
    ];
    let (code, stdout, err) = study(&args);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("search: 3 candidates"), "{stdout}");
    assert!(stdout.contains("rung 1:"), "{stdout}");
    let record = std::fs::read_to_string(out.join("search.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(r["rung_epochs"], serde_json::json!([1, 2]));
    let cands = r["candidates"].as_array().unwrap();
    assert!(cands.len() >= 4, "{record}");
    for c in cands {
        let p = c["params"].as_f64().unwrap();
        assert!((p - 3000.0).abs() <= 1500.0, "{c}");
        assert!(c["graph"]["connections"].as_f64().unwrap() > 0.0, "{c}");
        assert!(!c["rungs"].as_array().unwrap().is_empty(), "{c}");
    }
    // Baselines run in both rungs; of the three drawn, the better half (2 of 3) goes on.
    let in_rung_1 = |baseline: bool| {
        cands
            .iter()
            .filter(|c| c["baseline"] == baseline && c["rungs"].as_array().unwrap().len() == 2)
            .count()
    };
    assert!(in_rung_1(true) >= 2, "{record}");
    let drawn_on = cands
        .iter()
        .filter(|c| c["baseline"] == false && c["rungs"].as_array().unwrap().len() == 2)
        .count();
    assert!(drawn_on <= 2, "{record}");
    let rows = rows(&out.join("rung-0"));
    assert_eq!(rows.len(), cands.len());
    assert!(rows.iter().all(|r| r["graph"].is_object()));
    for f in [
        "search_vs_params.png",
        "search_vs_flops.svg",
        "candidates.jsonl",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // The front reads back.
    let front = std::fs::read_to_string(out.join("front.txt")).unwrap();
    let first = front.lines().find(|l| !l.starts_with('#')).unwrap();
    let words: Vec<&str> = first.split_whitespace().collect();
    let (code, _, err) = run("zoo", &words);
    assert_eq!(code, 0, "zoo {first}: {err}");
    let edges = out.join("front-1.edges");
    let (code, _, err) = run("paths", &["--dag-file", edges.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // Again: everything read back, the same record.
    let (code, stdout, err) = study(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("read back") && !stdout.contains(" s)"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("search.json")).unwrap(),
        record
    );
    // Impossible searches.
    for (bad, what) in [
        (vec!["--budget-params", "10"], "at least 1000"),
        (vec!["--budget-params", "1000000000000"], "no candidate"),
        (vec!["--nodes", "8,4", "--space", "dag"], "MIN,MAX"),
        (vec!["--tolerance", "2"], "fraction"),
    ] {
        let mut a = vec!["search", "--data-dir", &data, "--out", o];
        if !bad.contains(&"--budget-params") {
            a.extend(["--budget-params", "3000"]);
        }
        a.extend(bad.iter().copied());
        let (code, _, err) = study(&a);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(
            err.trim().lines().count() == 1 && err.contains(what),
            "{bad:?}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
