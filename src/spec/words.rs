//! A network's words read into [`SpecFlags`] without the command line's parser: a study's grid
//! line, the search's candidates, `study prune --match`. The grammar is the spec flags of
//! `sparsenet train` — `--flag value`, `--flag=value`, `-m NAME`, the switch `--bc` — with the
//! same value checks; `cli::spec`'s tests hold the two readings equal word for word.

use super::{parse_prob, AggregateKind, SpecFlags};
use crate::choice::Choice;
use crate::parse::{parse_in_range, parse_usize_list};

/// One spec flag: its long name, whether it takes a value, and whether that value may start
/// with `-` (numbers may be negative words, which their checks then refuse with the range).
pub struct Flag {
    /// The long name, without `--`.
    pub name: &'static str,
    /// Takes a value (else a switch).
    pub takes_value: bool,
    /// The value may start with `-`.
    pub hyphen_values: bool,
    /// Flags it cannot be given with.
    pub conflicts: &'static [&'static str],
}

const fn value(name: &'static str, hyphen_values: bool) -> Flag {
    Flag {
        name,
        takes_value: true,
        hyphen_values,
        conflicts: &[],
    }
}

/// Every spec flag, in the order `train --help` lists them, and `--layout`.
pub const FLAGS: &[Flag] = &[
    value("model", false),
    value("classes", true),
    value("family", false),
    value("depth", true),
    value("growth", true),
    Flag {
        name: "bc",
        takes_value: false,
        hyphen_values: false,
        conflicts: &[],
    },
    value("base", true),
    value("offsets", true),
    value("stem", true),
    value("head", false),
    Flag {
        name: "dag-file",
        takes_value: true,
        hyphen_values: false,
        conflicts: &["random", "base", "offsets"],
    },
    Flag {
        name: "random",
        takes_value: true,
        hyphen_values: false,
        conflicts: &["base", "offsets"],
    },
    value("nodes", true),
    value("dag-seed", false),
    value("aggregate", false),
    value("widen", true),
    value("hidden", true),
    value("columns", true),
    value("blocks", true),
    value("drop-path", true),
    value("dropout", true),
    value("mix", true),
    value("layout", false),
];

/// Read `words` (one network's flags) into [`SpecFlags`]. Errors say which word was wrong and
/// what is accepted.
pub fn parse_words(words: &[&str]) -> Result<SpecFlags, String> {
    let mut f = SpecFlags::default();
    let mut given: Vec<&'static str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        i += 1;
        let (name, inline) = match word.strip_prefix("--") {
            Some(rest) => match rest.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (rest, None),
            },
            None => match word.strip_prefix("-m") {
                Some("") => ("model", None),
                Some(v) => ("model", Some(v.strip_prefix('=').unwrap_or(v))),
                None => return Err(format!("unexpected argument '{word}' found")),
            },
        };
        let flag = FLAGS
            .iter()
            .find(|fl| fl.name == name)
            .ok_or_else(|| format!("unexpected argument '--{name}' found"))?;
        if given.contains(&flag.name) {
            return Err(format!(
                "the argument '--{}' cannot be used multiple times",
                flag.name
            ));
        }
        if let Some(other) = given
            .iter()
            .find(|g| flag.conflicts.contains(g) || conflicts_of(g).contains(&flag.name))
        {
            return Err(format!(
                "the argument '--{}' cannot be used with '--{other}'",
                flag.name
            ));
        }
        given.push(flag.name);
        if !flag.takes_value {
            if let Some(v) = inline {
                return Err(format!(
                    "unexpected value '{v}' for '--{}' found; no more were expected",
                    flag.name
                ));
            }
            f.bc = true;
            continue;
        }
        let v = match inline {
            Some(v) => v,
            None => match words.get(i) {
                Some(v) if flag.hyphen_values || !v.starts_with('-') => {
                    i += 1;
                    *v
                }
                _ => {
                    return Err(format!(
                        "a value is required for '--{}' but none was supplied",
                        flag.name
                    ))
                }
            },
        };
        set(&mut f, flag.name, v)
            .map_err(|e| format!("invalid value '{v}' for '--{}': {e}", flag.name))?;
    }
    Ok(f)
}

fn conflicts_of(name: &str) -> &'static [&'static str] {
    FLAGS
        .iter()
        .find(|f| f.name == name)
        .map_or(&[], |f| f.conflicts)
}

/// Store the value of flag `name`, checked as the command line checks it.
fn set(f: &mut SpecFlags, name: &str, v: &str) -> Result<(), String> {
    let list = |what: &str| parse_usize_list(v, what).map(Some);
    match name {
        "model" => f.model = Some(v.to_string()),
        "classes" => f.classes = Some(parse_in_range(v, "classes", 1, 1_000_000)?),
        "family" => f.family = Some(v.to_string()),
        "depth" => f.depth = Some(parse_in_range(v, "depth", 1, 100_000)?),
        "growth" => f.growth = list("growth")?,
        "base" => f.base = Some(parse_in_range(v, "base", 2, 1_000_000)?),
        "offsets" => f.offsets = list("offset")?,
        "stem" => f.stem = Some(parse_in_range(v, "stem", 1, 1_000_000)?),
        "head" => f.head = Some(v.to_string()),
        "dag-file" => f.dag_file = Some(v.into()),
        "random" => f.random = Some(v.to_string()),
        "nodes" => f.nodes = Some(parse_in_range(v, "nodes", 1, 100_000)?),
        "dag-seed" => f.dag_seed = Some(v.parse().map_err(|e| format!("{e}"))?),
        "aggregate" => {
            f.aggregate = Some(AggregateKind::from_name(v).ok_or_else(|| {
                let names: Vec<&str> = AggregateKind::ALL.iter().map(|a| a.name()).collect();
                format!("[possible values: {}]", names.join(", "))
            })?)
        }
        "widen" => f.widen = Some(parse_in_range(v, "widen", 1, 10_000)?),
        "hidden" => f.hidden = list("hidden")?,
        "columns" => f.columns = Some(parse_in_range(v, "columns", 1, 15)?),
        "blocks" => f.blocks = Some(parse_in_range(v, "blocks", 1, 64)?),
        "drop-path" => f.drop_path = Some(parse_prob(v)?),
        "dropout" => f.dropout = Some(parse_prob(v)?),
        "mix" => f.mix = list("mix")?,
        "layout" => f.layout = Some(v.to_string()),
        _ => unreachable!("every flag of FLAGS is set here"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_as_flags() {
        let f = parse_words(&[
            "--family",
            "sparse",
            "--depth=22",
            "--growth",
            "12,24",
            "--bc",
            "--aggregate",
            "mixed",
            "--mix",
            "6,6",
        ])
        .unwrap();
        assert_eq!(f.family.as_deref(), Some("sparse"));
        assert_eq!(f.depth, Some(22));
        assert_eq!(f.growth, Some(vec![12, 24]));
        assert!(f.bc);
        assert_eq!(f.aggregate, Some(AggregateKind::Mixed));
        assert_eq!(f.mix, Some(vec![6, 6]));
        assert_eq!(
            parse_words(&["-m", "lenet-5"]).unwrap().model.as_deref(),
            Some("lenet-5")
        );
        assert_eq!(
            parse_words(&["-mlenet-5"]).unwrap().model.as_deref(),
            Some("lenet-5")
        );
    }

    #[test]
    fn bad_words_say_what_was_wrong() {
        for (words, want) in [
            (vec!["--frobnicate", "3"], "'--frobnicate'"),
            (vec!["sparse"], "'sparse'"),
            (vec!["--depth"], "a value is required for '--depth'"),
            (
                vec!["--family", "--depth", "3"],
                "value is required for '--family'",
            ),
            (vec!["--depth", "0"], "accepted 1..=100000"),
            (vec!["--depth", "-3"], "out of range"),
            (vec!["--depth", "3", "--depth", "4"], "multiple times"),
            (vec!["--bc=yes"], "unexpected value 'yes'"),
            (vec!["--aggregate", "max2"], "possible values: concat, sum"),
            (
                vec!["--random", "er:p=0.1", "--offsets", "1,2"],
                "cannot be used with",
            ),
            (
                vec!["--offsets", "1,2", "--dag-file", "f"],
                "cannot be used with",
            ),
            (vec!["--dropout", "1.5"], "dropout"),
        ] {
            let e = parse_words(&words).unwrap_err();
            assert!(e.contains(want), "{words:?}: {e}");
        }
    }
}
