//! The networks of a study: a grid file (one network per line, in `sparsenet train`'s spec
//! flags, read by [`crate::spec::parse_words`]) or a built-in preset. The search's candidates
//! and `study prune --match` are grid lines too.

use anyhow::Context;
use sparsenet_net::zoo::{Layout, ZOO};

use crate::spec::{bad, parse_words};

pub use crate::study::efficiency::GridEntry;

/// Parse one grid line (`--model …` or `--family … --depth …`). `what` names it in errors
/// (e.g. `grid.txt line 3`).
pub fn parse_line(line: &str, what: &str) -> anyhow::Result<GridEntry> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let flags = parse_words(&words).map_err(|e| {
        bad(format!(
            "{what}: {e}; a line is train's spec flags, e.g. `--model sparsenet-40-24` or `--family sparse --depth 16 --growth 12`"
        ))
    })?;
    if flags.classes.is_some() {
        return Err(bad(format!(
            "{what}: --classes is not a grid flag (the classifier follows the dataset)"
        )));
    }
    let spec = flags
        .to_spec()
        .with_context(|| what.to_string())?
        .ok_or_else(|| bad(format!("{what}: no network (give --model or --family)")))?;
    sparsenet_net::zoo::build(&spec).map_err(|e| bad(format!("{what}: {e}")))?;
    let name = flags.model.clone().unwrap_or_else(|| spec.to_string());
    Ok(GridEntry {
        words: words.join(" "),
        name,
        spec,
    })
}

/// Parse a grid file's text: one network per line, `#` starts a comment, blank lines are
/// skipped. `file` names the file in errors. Duplicate networks are an error (each would be
/// trained twice into the same folder).
pub fn parse_grid(text: &str, file: &str) -> anyhow::Result<Vec<GridEntry>> {
    let mut out: Vec<GridEntry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let what = format!("{file} line {}", i + 1);
        let e = parse_line(line, &what)?;
        if let Some(prev) = out.iter().find(|p| p.spec == e.spec) {
            return Err(bad(format!(
                "{what}: {} is already in the grid (as `{}`)",
                e.name, prev.words
            )));
        }
        out.push(e);
    }
    if out.is_empty() {
        return Err(bad(format!(
            "{file}: no networks (one per line, e.g. `--model sparsenet-40-24`)"
        )));
    }
    Ok(out)
}

/// The built-in grids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Plain, ResNet, DenseNet and SparseNet at two matched sizes (about 77 K and 170 K
    /// parameters): small enough for 2 seeds on the embedded subset on a 2-core CPU.
    Quick,
    /// The paper's CIFAR rows (every named CIFAR model with printed errors).
    PaperCifar,
}

crate::choice_table!(Preset {
    Quick => "quick", "Plain, ResNet, DenseNet and SparseNet at two matched sizes (about 77 K and 170 K parameters): small enough for 2 seeds on the embedded subset on a 2-core CPU",
    PaperCifar => "paper-cifar", "The paper's CIFAR rows (every named CIFAR model with printed errors)",
});

/// The grid of a preset.
pub fn preset(p: Preset) -> Vec<GridEntry> {
    let lines: Vec<String> = match p {
        Preset::Quick => [
            "--family plain --depth 8",
            "--family res --depth 8",
            "--family dense --depth 16 --growth 9",
            "--family sparse --depth 22 --growth 12",
            "--family plain --depth 14",
            "--family res --depth 14",
            "--family dense --depth 22 --growth 9",
            "--family sparse --depth 22 --growth 18",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        Preset::PaperCifar => ZOO
            .iter()
            .filter(|m| {
                m.layout == Layout::Cifar
                    && (m.paper_c10_error.is_some() || m.paper_c100_error.is_some())
            })
            .map(|m| format!("--model {}", m.name))
            .collect(),
    };
    lines
        .iter()
        .map(|l| parse_line(l, "preset").expect("the presets are valid"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_lines_comments_and_errors() {
        let g = parse_grid(
            "# two networks\n--model densenet-40-12\n\n  --family sparse --depth 16 --growth 12   # a comment\n",
            "g.txt",
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].name, "densenet-40-12");
        assert_eq!(g[1].words, "--family sparse --depth 16 --growth 12");
        let e = format!(
            "{:#}",
            parse_grid(
                "--model densenet-40-12\n--family sparse --depth 16\n",
                "g.txt",
            )
            .unwrap_err()
        );
        assert!(
            e.starts_with("g.txt line 2: ") && e.contains("--growth"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            parse_grid("--model densenet-40-12\n--frobnicate 3\n", "g.txt").unwrap_err()
        );
        assert!(
            e.starts_with("g.txt line 2: ") && e.contains("frobnicate"),
            "{e}"
        );
        let e = format!("{:#}", parse_grid("--model nope-1\n", "g.txt").unwrap_err());
        assert!(e.starts_with("g.txt line 1: "), "{e}");
        let e = format!(
            "{:#}",
            parse_grid("--model densenet-40-12\n--model densenet-40-12\n", "g.txt").unwrap_err()
        );
        assert!(e.contains("line 2") && e.contains("already"), "{e}");
        assert!(
            format!("{:#}", parse_grid("# nothing\n\n", "g.txt").unwrap_err())
                .contains("no networks")
        );
        let e = format!(
            "{:#}",
            parse_grid("--family res --depth 9\n", "g.txt").unwrap_err()
        );
        assert!(
            e.starts_with("g.txt line 1: ") && e.contains("depth"),
            "{e}"
        );
    }

    #[test]
    fn presets_are_valid_and_matched() {
        let q = preset(Preset::Quick);
        assert_eq!(q.len(), 8);
        // Two sizes, four families each, parameter counts within 25 % of each other per size.
        for size in q.chunks(4) {
            let params: Vec<u64> = size
                .iter()
                .map(|e| {
                    sparsenet_net::zoo::build_and_count(&e.spec)
                        .unwrap()
                        .1
                        .params
                })
                .collect();
            let (lo, hi) = (params.iter().min().unwrap(), params.iter().max().unwrap());
            assert!(*hi as f64 <= 1.25 * *lo as f64, "{params:?}");
        }
        let p = preset(Preset::PaperCifar);
        assert!(p.iter().any(|e| e.name == "sparsenet-40-24"));
        assert!(p.iter().any(|e| e.name == "densenet-bc-100-12"));
        assert!(p.iter().all(|e| e.spec.layout == Layout::Cifar));
        // The systems the paper compares against, where it prints their CIFAR errors.
        assert!(p.iter().any(|e| e.name == "wrn-16-8"));
        // A grid line takes the new families' flags.
        let e = parse_line("--family wide --depth 10 --widen 2 --dropout 0.3", "line 1").unwrap();
        assert_eq!(e.spec.growth, vec![2]);
        assert_eq!(e.spec.dropout.map(|p| p.get()), Some(0.3));
        let err = parse_line("--family wide --depth 10", "line 2").unwrap_err();
        assert!(format!("{err:#}").contains("--widen"), "{err:#}");
    }
}
