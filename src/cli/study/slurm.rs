//! `study slurm`: the sbatch script that runs a study as a Slurm job array, one task per shard,
//! and a merge job after it. The script is plain bash, so it is checked without Slurm: `bash -n`,
//! and run with the array variables set by hand it executes the shard they name.

use anyhow::Context;
use clap::{Args, Parser};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::efficiency::{efficiency_study, EfficiencyArgs};
use crate::cli::args::parse_in_range;
use crate::cli::spec::bad;

/// Arguments of `study slurm`.
#[derive(Args, Debug)]
#[command(long_about = "\
Print a bash script for Slurm's sbatch that runs a study as a job array: one array task per
shard (`--array=0-(N-1)%K`, SLURM_ARRAY_TASK_ID → --shard), with the resources given here and a
log per task, then a merge job that starts once every task has succeeded
(`--dependency=afterok`). `bash job.sh` submits both; `sbatch job.sh` submits the array alone
(the last shard to finish merges too). The study's own arguments follow `--`, exactly as
`study efficiency` takes them, and are checked now:

  study slurm --shards 8 --max-running 4 --cpus-per-task 4 --time 02:00:00 --partition cpu \\
      -- efficiency --preset quick --seeds 1,2,3 --out /shared/runs/quick > job.sh
  bash job.sh

The script runs this program (its absolute path) in the current folder, so relative paths
in the study's arguments mean what they mean here; the study folder must be on a file system
every node sees.")]
pub struct SlurmArgs {
    /// Shards (array tasks) to cut the study into.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "shards", 1, 100_000))]
    pub shards: usize,

    /// Array tasks running at once (the array's %K); default: no limit.
    #[arg(long, value_parser = |s: &str| parse_in_range(s, "max running", 1, 100_000))]
    pub max_running: Option<usize>,

    /// CPUs per task.
    #[arg(long, default_value = "2", value_parser = |s: &str| parse_in_range(s, "cpus per task", 1, 4096))]
    pub cpus_per_task: usize,

    /// GPUs per task (--gres=gpu:G; give the study --device cuda too).
    #[arg(long, default_value = "0", value_parser = |s: &str| parse_in_range(s, "gpus per task", 0, 64))]
    pub gpus_per_task: usize,

    /// Memory per task, in Slurm's words (e.g. 8G); default: the partition's.
    #[arg(long)]
    pub mem: Option<String>,

    /// Time limit per task, in Slurm's words (e.g. 02:00:00 or 1-00:00:00).
    #[arg(long, default_value = "04:00:00")]
    pub time: String,

    /// Partition.
    #[arg(long)]
    pub partition: Option<String>,

    /// Account to charge.
    #[arg(long)]
    pub account: Option<String>,

    /// Job name (the merge job adds -merge).
    #[arg(long, default_value = "sparsenet-study")]
    pub job_name: String,

    /// Folder of the per-task logs (default: OUT/slurm-logs).
    #[arg(long)]
    pub logs: Option<PathBuf>,

    /// The study, after `--`: `efficiency …` as `study efficiency` takes it (without --shard).
    #[arg(last = true, required = true, num_args = 1..)]
    pub study: Vec<String>,
}

/// The study after `--`: `efficiency` (the one study that shards) and its arguments.
#[derive(Parser, Debug)]
#[command(name = "efficiency")]
struct StudyLine {
    #[command(flatten)]
    efficiency: EfficiencyArgs,
}

/// A word quoted for bash, always on one line: itself when it is plain, else in single quotes
/// (`'` as `'\''`), or, when it holds a control character such as a newline, in ANSI-C quotes
/// (`$'…'` with `\n`, `\xNN`), so that no word can end a comment or a command line.
pub fn sh_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+@%".contains(c));
    if plain {
        word.to_string()
    } else if !word.chars().any(char::is_control) {
        format!("'{}'", word.replace('\'', r"'\''"))
    } else {
        let mut q = String::from("$'");
        for c in word.chars() {
            match c {
                '\\' => q.push_str(r"\\"),
                '\'' => q.push_str(r"\'"),
                '\n' => q.push_str(r"\n"),
                '\t' => q.push_str(r"\t"),
                '\r' => q.push_str(r"\r"),
                c if c.is_control() => {
                    let mut b = [0u8; 4];
                    for byte in c.encode_utf8(&mut b).bytes() {
                        q.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                c => q.push(c),
            }
        }
        q.push('\'');
        q
    }
}

/// The Slurm fields the script writes, each checked against what Slurm accepts for it (and
/// nothing a shell or an `#SBATCH` line would read as more than one word).
#[derive(Clone, Copy, Debug)]
enum SlurmField {
    /// `--job-name`: letters, digits, `-`, `_`, `.`.
    JobName,
    /// `--partition`, `--account`: names (letters, digits, `-`, `_`, `.`), partitions as a
    /// comma-separated list.
    Name,
    /// `--time`: minutes, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S` (digits, `-`, `:`).
    Time,
    /// `--mem`: a number with an optional unit K, M, G or T.
    Mem,
}

/// `v` checked as the Slurm field `what` takes.
fn slurm_word(what: &str, field: SlurmField, v: &str) -> anyhow::Result<String> {
    let name_char = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    let (ok, accepted) = match field {
        SlurmField::JobName => (
            v.len() <= 200 && v.chars().all(name_char),
            "letters, digits, '-', '_' and '.'",
        ),
        SlurmField::Name => (
            v.len() <= 200
                && v.split(',')
                    .all(|p| !p.is_empty() && p.chars().all(name_char)),
            "names of letters, digits, '-', '_' and '.', separated by commas",
        ),
        SlurmField::Time => {
            let (days, rest) = v.split_once('-').unwrap_or(("0", v));
            let parts: Vec<&str> = rest.split(':').collect();
            let num =
                |p: &str| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit());
            (
                num(days) && parts.len() <= 3 && parts.iter().all(|p| num(p)),
                "minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S",
            )
        }
        SlurmField::Mem => {
            let digits = v.trim_end_matches(['K', 'M', 'G', 'T']);
            (
                !digits.is_empty()
                    && digits.len() <= 12
                    && digits.chars().all(|c| c.is_ascii_digit())
                    && v.len() - digits.len() <= 1,
                "a number with an optional unit K, M, G or T (e.g. 16G)",
            )
        }
    };
    if v.is_empty() || !ok {
        return Err(bad(format!(
            "--{what} {}: Slurm takes {accepted}",
            sh_quote(v)
        )));
    }
    Ok(v.to_string())
}

/// A path that goes on an `#SBATCH` line, which sbatch reads without shell quoting: no
/// whitespace, quotes, control characters or shell expansions.
fn sbatch_path(what: &str, p: &str) -> anyhow::Result<()> {
    if p.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "'\"$`\\;&|<>(){}".contains(c))
    {
        return Err(bad(format!(
            "the {what} {} has a space, quote or shell character, which #SBATCH --output cannot take: give --logs",
            sh_quote(p)
        )));
    }
    Ok(())
}

fn absolute(p: &Path, cwd: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

/// The script for `a`: the study's arguments are checked (as `study efficiency` would check
/// them) before anything is printed.
pub fn script(a: &SlurmArgs) -> anyhow::Result<String> {
    if a.study.first().map(String::as_str) != Some("efficiency") {
        return Err(bad(
            "the study after `--` must be `efficiency …` (the one study that shards)",
        ));
    }
    let parsed = StudyLine::try_parse_from(&a.study).map_err(|e| {
        let msg = e.to_string();
        bad(format!(
            "the study after `--`: {}",
            msg.lines()
                .next()
                .unwrap_or("invalid")
                .trim_start_matches("error: ")
        ))
    })?;
    let eff = &parsed.efficiency;
    if eff.shard.is_some() {
        return Err(bad(
            "the study after `--` has --shard: the script gives each array task its own",
        ));
    }
    let st = efficiency_study(eff)?;
    let runs = st.grid.len() * st.seeds.len();
    if a.shards > runs {
        return Err(bad(format!(
            "--shards {}: the study has only {runs} runs ({} networks × {} seeds); give at most {runs}",
            a.shards,
            st.grid.len(),
            st.seeds.len()
        )));
    }
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let out = absolute(&st.out, &cwd);
    let logs = absolute(a.logs.as_deref().unwrap_or(&out.join("slurm-logs")), &cwd);
    let name = slurm_word("job-name", SlurmField::JobName, &a.job_name)?;
    let time = slurm_word("time", SlurmField::Time, &a.time)?;
    let mut directives = vec![
        format!("--job-name={name}"),
        match a.max_running {
            Some(k) => format!("--array=0-{}%{k}", a.shards - 1),
            None => format!("--array=0-{}", a.shards - 1),
        },
        "--ntasks=1".to_string(),
        format!("--cpus-per-task={}", a.cpus_per_task),
        format!("--time={time}"),
    ];
    if a.gpus_per_task > 0 {
        directives.push(format!("--gres=gpu:{}", a.gpus_per_task));
    }
    let mut shared = Vec::new();
    if let Some(m) = &a.mem {
        directives.push(format!("--mem={}", slurm_word("mem", SlurmField::Mem, m)?));
    }
    if let Some(p) = &a.partition {
        let p = slurm_word("partition", SlurmField::Name, p)?;
        directives.push(format!("--partition={p}"));
        shared.push(format!("--partition={p}"));
    }
    if let Some(acc) = &a.account {
        let acc = slurm_word("account", SlurmField::Name, acc)?;
        directives.push(format!("--account={acc}"));
        shared.push(format!("--account={acc}"));
    }
    let logs_s = logs.to_string_lossy();
    sbatch_path("log folder", &logs_s)?;
    // The merge job runs under sbatch's /bin/sh, which has no quoting for a newline.
    for (what, p) in [
        ("study folder", &out),
        ("current folder", &cwd),
        ("program", &exe),
    ] {
        if p.to_string_lossy().chars().any(char::is_control) {
            return Err(bad(format!(
                "the {what} {} has a control character (a newline?), which a Slurm script cannot carry safely",
                sh_quote(&p.to_string_lossy())
            )));
        }
    }
    directives.push(format!("--output={logs_s}/%x-%A_%a.out"));
    let study_words: Vec<String> = a.study.iter().map(|w| sh_quote(w)).collect();

    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# The study `sparsenet study {}`\n# as a Slurm job array of {} shards ({} networks × {} seeds = {runs} runs), written by `sparsenet study slurm`.",
        study_words.join(" "),
        a.shards,
        st.grid.len(),
        st.seeds.len()
    );
    let _ = writeln!(
        s,
        "#   bash job.sh     submits the array and a merge job that starts when every task succeeded\n#   sbatch job.sh   submits the array alone (the last shard to finish merges too)\n# Inside the array, task SLURM_ARRAY_TASK_ID runs shard SLURM_ARRAY_TASK_ID/{}.",
        a.shards
    );
    for d in &directives {
        let _ = writeln!(s, "#SBATCH {d}");
    }
    let _ = writeln!(s, "set -euo pipefail");
    let _ = writeln!(s, "SPARSENET={}", sh_quote(&exe.to_string_lossy()));
    let _ = writeln!(s, "SHARDS={}", a.shards);
    let _ = writeln!(s, "cd {}", sh_quote(&cwd.to_string_lossy()));
    let _ = writeln!(s, "if [ -n \"${{SLURM_ARRAY_TASK_ID:-}}\" ]; then");
    let _ = writeln!(
        s,
        "  exec \"$SPARSENET\" study {} --shard \"$SLURM_ARRAY_TASK_ID/$SHARDS\"",
        study_words.join(" ")
    );
    let _ = writeln!(s, "fi");
    let _ = writeln!(s, "mkdir -p {}", sh_quote(&logs_s));
    // Every task of the job inherits sbatch's environment: one fresh secret for the job, so
    // that a multi-process group inside it authenticates its ranks (README, "Training across
    // processes and nodes").
    let _ = writeln!(
        s,
        "export SPARSENET_DIST_TOKEN=\"${{SPARSENET_DIST_TOKEN:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \\n')}}\""
    );
    let _ = writeln!(s, "array=$(sbatch --parsable \"$0\")");
    let _ = writeln!(s, "array=${{array%%;*}}");
    let merge_cmd = format!(
        "{} study merge {}",
        sh_quote(&exe.to_string_lossy()),
        sh_quote(&out.to_string_lossy())
    );
    let mut merge_flags = vec![
        "--parsable".to_string(),
        "--dependency=afterok:\"$array\"".to_string(),
        format!("--job-name={name}-merge"),
        "--ntasks=1".to_string(),
        "--cpus-per-task=1".to_string(),
        "--time=00:30:00".to_string(),
    ];
    merge_flags.extend(shared);
    merge_flags.push(sh_quote(&format!("--output={logs_s}/%x-%j.out")));
    merge_flags.push(sh_quote(&format!("--chdir={}", cwd.to_string_lossy())));
    let _ = writeln!(
        s,
        "merge=$(sbatch {} --wrap={})",
        merge_flags.join(" "),
        sh_quote(&merge_cmd)
    );
    let _ = writeln!(
        s,
        "echo \"submitted the {} shards as job $array and the merge as job $merge (logs in \"{}\")\"",
        a.shards,
        sh_quote(&logs_s)
    );
    Ok(s)
}

/// Run `study slurm`: print the script.
pub fn exec(a: &SlurmArgs, w: &mut (dyn std::io::Write + Send)) -> anyhow::Result<()> {
    let text = script(a)?;
    w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .context("cannot write the script to stdout")
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn words_are_quoted_for_bash() {
        assert_eq!(sh_quote("--family"), "--family");
        assert_eq!(sh_quote("/a/b-c_d.txt"), "/a/b-c_d.txt");
        assert_eq!(sh_quote("two words"), "'two words'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$HOME"), "'$HOME'");
    }
}
