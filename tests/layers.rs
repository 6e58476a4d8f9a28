//! The layering the architecture promises (issue 41), read from the sources as a new
//! contributor would: the libraries never import the command line or name clap (the commands
//! in `src/cli` turn their arguments into library options), and in each crate the top-level
//! modules depend on each other without a circle. Comments and test modules are left out: a doc
//! link or a test may name anything.

use petgraph::algo::kosaraju_scc;
use petgraph::graphmap::DiGraphMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A source file's code: comment lines dropped, and everything from its test module on.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module of `file` under `src` (`train` for `src/train/mod.rs` and
/// `src/train/checkpoint.rs`, `optim` for `src/optim.rs`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Each top-level module's files' code, for one crate's `src`.
fn modules(src: &Path) -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut m: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for f in files {
        let top = top_module(src, &f);
        if matches!(top.as_str(), "bin" | "lib" | "main") {
            continue;
        }
        m.entry(top).or_default().push((f.clone(), code(&f)));
    }
    m
}

/// The modules a file's code names as `crate::NAME`.
fn crate_refs(code: &str) -> Vec<String> {
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // `crate::` itself, not the end of `sparsenet_crate::` or similar.
            *i == 0
                || !code.as_bytes()[i - 1].is_ascii_alphanumeric() && code.as_bytes()[i - 1] != b'_'
        })
        .map(|(i, _)| {
            code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn libraries_never_import_the_command_line_or_clap() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    let mut files = 0;
    for (top, codes) in modules(&src) {
        if top == "cli" {
            continue;
        }
        for (file, code) in codes {
            files += 1;
            for needle in [
                "crate::cli",
                "super::cli",
                "clap::",
                "use clap",
                "#[arg(",
                "#[command(",
                "#[value(",
            ] {
                if code.contains(needle) {
                    offences.push(format!("{}: {needle}", file.display()));
                }
            }
        }
    }
    assert!(files > 50, "read {files} library files");
    assert!(offences.is_empty(), "{offences:#?}");
}

#[test]
fn each_crates_modules_import_each_other_without_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in ["src", "net/src", "analysis/src"] {
        let src = root.join(krate);
        let mods = modules(&src);
        let mut g: DiGraphMap<&str, ()> = DiGraphMap::new();
        for (top, codes) in &mods {
            g.add_node(top);
            for (_, code) in codes {
                for dep in crate_refs(code) {
                    if let Some((name, _)) = mods.get_key_value(&dep) {
                        if name != top {
                            g.add_edge(top, name, ());
                        }
                    }
                }
            }
        }
        assert!(g.node_count() > 3, "{krate}: {} modules", g.node_count());
        let circles: Vec<Vec<&str>> = kosaraju_scc(&g)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        assert!(
            circles.is_empty(),
            "{krate}: modules that import each other: {circles:?}"
        );
    }
}
