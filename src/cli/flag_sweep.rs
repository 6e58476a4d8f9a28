//! Every documented flag of every command, given once: clap's derive checks a field's type
//! against its parser only when the flag is used, so a mismatch (`--mean` was one: a
//! `Vec<f32>` parser on an `Option<Vec<f32>>` field) panics on a user's first use and never in
//! a test that leaves the flag out. The sweep walks each command's clap description, so a flag
//! added later is covered without a line here.

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    /// Values tried for a flag without a list of possible values, until one parses: the forms
    /// the documented flags take (numbers, lists, ranges, paths, specs, times).
    const CANDIDATES: &[&str] = &[
        "1",
        "2",
        "0.5",
        "1,2",
        "0.5,0.5,0.5",
        "1/2",
        "2..4",
        "4,10",
        "x.txt",
        "quick",
        "er:p=0.5",
        "01:00:00",
        "fc1.weight=1.0",
        "--family sparse --depth 10 --growth 4",
        "sparsenet-40-24",
        "4G",
        "22",
        "1000",
        "77000",
        "c.safetensors",
    ];

    /// Words a command needs besides the flag under test (its required flags and trailing
    /// arguments): (before the flag, after it).
    fn base(path: &str) -> (Vec<&'static str>, Vec<&'static str>) {
        match path {
            "export" => (
                vec!["--checkpoint", "c.safetensors", "--out", "n.py"],
                vec![],
            ),
            "evaluate" | "study weights" | "study lesion" | "study prune" => {
                (vec!["--checkpoint", "c.safetensors"], vec![])
            }
            "study search" => (vec!["--budget-params", "77000"], vec![]),
            "study merge" | "study correlate" => (vec![], vec!["out"]),
            "study slurm" => (
                vec!["--shards", "2"],
                vec!["--", "efficiency", "--preset", "quick"],
            ),
            _ => (vec![], vec![]),
        }
    }

    /// Flags that clap accepts only with another (`requires`).
    fn companions(path: &str, long: &str) -> &'static [&'static str] {
        match (path, long) {
            ("train", "key-map") => &["--init-from", "w.safetensors"],
            ("study prune", "tolerance") => &["--sensitivity"],
            _ => &[],
        }
    }

    /// Parse `words` as `T` with clap's derive, catching a panic: Err(message) if it panicked,
    /// Ok(whether it parsed).
    fn parses<T: CommandFactory + FromArgMatches>(words: &[String]) -> Result<bool, String> {
        let words = words.to_vec();
        std::panic::catch_unwind(move || {
            let m = T::command().try_get_matches_from(&words);
            match m {
                Ok(mut m) => T::from_arg_matches_mut(&mut m).is_ok(),
                Err(_) => false,
            }
        })
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    }

    /// Each flag of the (sub)command at `path` (its names after the binary), given once with
    /// a value that parses: no panic, and a value accepted. Returns the flags tried.
    fn sweep<T: CommandFactory + FromArgMatches>(
        path: &[&str],
        unparsed: &mut Vec<String>,
    ) -> Vec<String> {
        let mut cmd = T::command();
        cmd.build();
        let mut sub = &cmd;
        for name in &path[1..] {
            sub = sub.find_subcommand(name).expect("subcommand exists");
        }
        let key = path.join(" ");
        let mut tried = Vec::new();
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") || arg.is_hide_set() {
                continue;
            }
            let Some(long) = arg.get_long() else {
                continue;
            };
            let takes_value = arg.get_action().takes_values();
            let values: Vec<String> = if !takes_value {
                vec![String::new()]
            } else {
                let possible = arg.get_possible_values();
                if possible.is_empty() {
                    CANDIDATES.iter().map(|s| s.to_string()).collect()
                } else {
                    possible.iter().map(|p| p.get_name().to_string()).collect()
                }
            };
            let mut ok = false;
            for v in &values {
                let (before, after) = base(&key);
                let mut words: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                // The base's own flag, when it is the one under test, is given once.
                let mut i = 0;
                while i < before.len() {
                    let pair = before.get(i + 1).is_some_and(|w| !w.starts_with("--"));
                    if before[i] != format!("--{long}") {
                        words.push(before[i].to_string());
                        if pair {
                            words.push(before[i + 1].to_string());
                        }
                    }
                    i += if pair { 2 } else { 1 };
                }
                words.extend(companions(&key, long).iter().map(|s| s.to_string()));
                words.push(format!("--{long}"));
                if takes_value {
                    words.push(v.clone());
                }
                words.extend(after.iter().map(|s| s.to_string()));
                match parses::<T>(&words) {
                    Err(msg) => panic!("{words:?} panicked: {msg}"),
                    Ok(true) => {
                        ok = true;
                        break;
                    }
                    Ok(false) => {}
                }
            }
            if ok {
                tried.push(format!("{key} --{long}"));
            } else {
                unparsed.push(format!("{key} --{long}"));
            }
        }
        tried
    }

    #[test]
    fn every_documented_flag_parses_without_panicking() {
        use crate::cli::{dist_check, export, paths, study, train, zoo};
        let mut tried = Vec::new();
        let u = &mut Vec::new();
        tried.extend(sweep::<paths::PathsArgs>(&["paths"], u));
        tried.extend(sweep::<zoo::ZooArgs>(&["zoo"], u));
        tried.extend(sweep::<train::TrainArgs>(&["train"], u));
        tried.extend(sweep::<train::EvalArgs>(&["evaluate"], u));
        tried.extend(sweep::<export::ExportArgs>(&["export"], u));
        tried.extend(sweep::<dist_check::DistCheckArgs>(&["dist-check"], u));
        for sub in study::StudyArgs::command().get_subcommands() {
            let name = sub.get_name().to_string();
            if name == "help" {
                continue;
            }
            tried.extend(sweep::<study::StudyArgs>(&["study", &name], u));
        }
        assert!(
            u.is_empty(),
            "no sample value parsed for these flags (add their forms to CANDIDATES): {u:?}"
        );
        // The flags the issue names, and a few of every command, were really tried.
        for must in [
            "train --mean",
            "train --std",
            "evaluate --checkpoint",
            "export --format",
            "study prune --keep",
            "study slurm --partition",
            "zoo --dag",
            "paths --random",
        ] {
            assert!(
                tried.iter().any(|t| t == must),
                "{must} not swept: {tried:?}"
            );
        }
    }
}
