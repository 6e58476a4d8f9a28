//! The `paths` command as a user runs it: output, the JSON contract, and bad input.

use crate::common::{fresh_dir, run};
use num_bigint::BigUint;
use num_traits::One;

fn paths(args: &[&str]) -> (i32, String, String) {
    run("paths", args)
}

#[test]
fn default_run_prints_exact_dense_count_and_all_claims_hold() {
    let (code, out, err) = paths(&[]);
    assert_eq!(code, 0, "stderr: {err}");
    // 2^99, written out independently of the program.
    assert!(out.contains("633825300114114700748351602688"));
    assert!(out.contains("✓ res_dense_bijection"));
    assert!(!out.contains('✗'));
    assert!(out.contains("Base sweep"));
}

/// C(m, j) by Pascal's triangle — independent of the program's own binomial code.
fn pascal(m: usize) -> Vec<BigUint> {
    let mut row = vec![BigUint::one()];
    for _ in 0..m {
        let mut next = vec![BigUint::one()];
        for w in row.windows(2) {
            next.push(&w[0] + &w[1]);
        }
        next.push(BigUint::one());
        row = next;
    }
    row
}

#[test]
fn json_contract() {
    let (code, out, _) = paths(&[
        "--depth",
        "12",
        "--format",
        "json",
        "--offsets",
        "1,2,3,5,8",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["depth"], 12);
    assert_eq!(v["base"], 2);
    let tops = v["topologies"].as_array().unwrap();
    let names: Vec<&str> = tops.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["plain", "res", "dense", "sparse", "custom"]);
    for t in tops {
        for key in ["nodes", "connections", "gradient_path_max"] {
            assert!(t[key].is_u64(), "{key}");
        }
        assert!(t["gradient_path_mean"].is_f64());
        assert!(t["paths"].is_string());
        let hist = t["path_length_histogram"].as_array().unwrap();
        let sum: BigUint = hist
            .iter()
            .map(|h| h.as_str().unwrap().parse::<BigUint>().unwrap())
            .sum();
        assert_eq!(sum.to_string(), t["paths"].as_str().unwrap());
    }
    let dense = &tops[2];
    assert_eq!(dense["paths"], "2048");
    // Dense depth 12: paths through k layers = C(11, k − 1).
    let row = pascal(11);
    let hist = dense["path_length_histogram"].as_array().unwrap();
    assert_eq!(hist[0], "0");
    for k in 1..=12 {
        assert_eq!(hist[k].as_str().unwrap(), row[k - 1].to_string());
    }
    // Sparse depth 12: |S(ℓ)| = 1,2,2,3,3,3,3,4,4,4,4,4 → 1 + 2·2 + 4·3 + 5·4 = 37 connections;
    // the largest popcount of a distance ≤ 12 is 3 (7 = 111₂, 11 = 1011₂).
    assert_eq!(tops[3]["connections"], 37);
    assert_eq!(tops[3]["gradient_path_max"], 3);
    for c in v["claims"].as_array().unwrap() {
        assert!(c["name"].is_string() && c["detail"].is_string());
        assert_eq!(c["holds"], true, "{c}");
    }
    let bases = v["bases"].as_array().unwrap();
    assert_eq!(bases.len(), 15);
    for key in ["base", "connections", "gradient_path_max"] {
        assert!(bases[0][key].is_u64());
    }
    assert!(bases[0]["gradient_path_mean"].is_f64());
}

#[test]
fn topology_filter_csv_and_dot() {
    let (code, out, _) = paths(&[
        "--depth",
        "8",
        "--format",
        "csv",
        "--topology",
        "sparse,dense",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("name,pattern,depth,nodes,connections"));
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("dense,") && lines[2].starts_with("sparse,"));

    let (code, out, _) = paths(&["--depth", "8", "--format", "dot"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("digraph"));
    for c in [
        "cluster_plain",
        "cluster_res",
        "cluster_dense",
        "cluster_sparse",
    ] {
        assert!(out.contains(c));
    }
    // Sparse depth 8 has 1+2+2+3+3+3+3+4 = 21 edges.
    let sparse_edges = out
        .lines()
        .filter(|l| l.trim_start().starts_with("sparse_") && l.contains("->"))
        .count();
    assert_eq!(sparse_edges, 21);
}

#[test]
fn large_depth_skips_histograms_but_counts_exactly() {
    let (code, out, _) = paths(&["--depth", "5000", "--format", "json", "--topology", "dense"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dense = &v["topologies"][0];
    assert!(dense["path_length_histogram"].is_null());
    assert_eq!(
        dense["paths"].as_str().unwrap(),
        (BigUint::one() << 4999usize).to_string()
    );
}

#[test]
fn bad_input_is_one_line_and_exit_two() {
    let cases: &[&[&str]] = &[
        &["--depth", "0"],
        &["--depth", "-5"],
        &["--depth", "abc"],
        &["--depth", "100001"],
        &["--base", "0"],
        &["--base", "1"],
        &["--offsets", ""],
        &["--offsets", "0,1"],
        &["--offsets", "1,2,2"],
        &["--topology", "ring"],
        &["--topology", "custom"],
        &["--bases", "1..4"],
        &["--bases", "9..3"],
        &["--format", "xml"],
        &["--depth", "2000", "--format", "dot"],
        &["--no-such-flag"],
    ];
    for args in cases {
        let (code, out, err) = paths(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}");
    }
}

#[test]
fn help_explains_the_quantities() {
    let (code, out, _) = paths(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "connections",
        "gradient path",
        "--offsets",
        "--format",
        "Exit status",
    ] {
        assert!(out.contains(word), "{word}");
    }
}

#[test]
fn plot_writes_png_and_svg_figures() {
    let dir = fresh_dir("plot");
    let (code, _, err) = paths(&["--depth", "20", "--plot", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for stem in [
        "path_lengths",
        "gradient_paths",
        "base_sweep_paths",
        "base_sweep_connections",
    ] {
        let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{stem}");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("N = 20"), "{stem}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fractal_block_is_an_ensemble_of_paths_of_many_lengths() {
    // FractalNet's C = 3 block by hand: f_2 has paths of 1 and 2 convolutions, f_2∘f_2 of
    // 2, 3, 3, 4, and the join adds the single convolution: lengths 1, 2, 3, 3, 4 convolutions,
    // one more edge each to the output.
    let (code, out, err) = paths(&[
        "--topology",
        "fractal",
        "--columns",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let a = &v["analysis"];
    assert_eq!(a["paths"], "5");
    assert_eq!(
        a["histogram"],
        serde_json::json!(["0", "0", "1", "1", "2", "1"])
    );
    // The edge list reads back through --dag-file as the same block.
    let (code, csv, _) = paths(&["--topology", "fractal", "--columns", "4", "--format", "csv"]);
    assert_eq!(code, 0);
    let dir = fresh_dir("fractal");
    let file = dir.join("fractal4.edges");
    std::fs::write(&file, csv).unwrap();
    let (code, out, _) = paths(&["--dag-file", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // P(4) = 1 + P(3)² = 26.
    assert_eq!(v["analysis"]["paths"], "26");
    for bad in [
        &["--topology", "fractal,dense"][..],
        &["--columns", "3"],
        &["--topology", "fractal", "--columns", "16"],
        &["--topology", "fractal", "--random", "ba:m=2"],
    ] {
        let (code, _, err) = paths(bad);
        assert_eq!(code, 2, "{bad:?}");
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
    }
}
