//! Which rank of which group this process is, from the variables a launcher exports: torchrun's
//! (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`) or, under `srun`, Slurm's
//! (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, the first node of `SLURM_STEP_NODELIST`
//! as the address unless `MASTER_ADDR` is set). Pure functions over a variable lookup, so every
//! rule is tested without a launcher.

use anyhow::{anyhow, Result};

/// The port rank 0's store listens on when `MASTER_PORT` is not set (torchrun's default).
pub const DEFAULT_PORT: u16 = 29500;

/// The most ranks a group may have.
pub const MAX_WORLD: usize = 65_536;

/// The variable that holds the group's shared secret.
pub const TOKEN_VAR: &str = "SPARSENET_DIST_TOKEN";

/// The group's shared secret (`SPARSENET_DIST_TOKEN`): every rank proves it holds it before the
/// store answers anything else. Never printed: its `Debug` says only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    /// A token from the variable's text (at least 16 bytes: a guessable secret protects
    /// nothing).
    pub fn new(text: &str) -> Result<Token> {
        if text.len() < 16 {
            return Err(anyhow!(
                "{TOKEN_VAR} has {} characters: give at least 16 (e.g. export {TOKEN_VAR}=$(openssl rand -hex 32))",
                text.len()
            ));
        }
        Ok(Token(text.as_bytes().to_vec()))
    }

    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(set)")
    }
}

/// One process's place in a multi-process group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// This process's rank, `0..world`.
    pub rank: usize,
    /// Processes in the group.
    pub world: usize,
    /// The rank on this node: the GPU it uses.
    pub local_rank: usize,
    /// Rank 0's host (name or address).
    pub master_addr: String,
    /// The port of rank 0's store.
    pub master_port: u16,
    /// Which launcher's variables these are (`torchrun` or `slurm`).
    pub source: &'static str,
    /// The group's secret, when `SPARSENET_DIST_TOKEN` is set.
    pub token: Option<Token>,
}

fn int(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>> {
    match get(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            anyhow!(
                "{name}='{v}' is not a non-negative integer (a launcher sets it: torchrun or srun)"
            )
        }),
    }
}

fn need(get: &dyn Fn(&str) -> Option<String>, name: &str, why: &str) -> Result<usize> {
    int(get, name)?.ok_or_else(|| anyhow!("{name} is not set: {why}"))
}

fn port(get: &dyn Fn(&str) -> Option<String>) -> Result<u16> {
    match get("MASTER_PORT") {
        None => Ok(DEFAULT_PORT),
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(anyhow!(
                "MASTER_PORT='{v}' is not a port: give 1..=65535 (default {DEFAULT_PORT})"
            )),
        },
    }
}

/// The first host of a Slurm node list: `gpu[03-05,07],cpu1` → `gpu03`, `n[1-2]-ib` → `n1-ib`,
/// `a,b` → `a`.
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    let mut depth = 0;
    let mut end = list.len();
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let item = &list[..end];
    let host = match (item.find('['), item.find(']')) {
        (Some(open), Some(close)) if open < close => {
            let inner = &item[open + 1..close];
            let first = inner.split([',', '-']).next().unwrap_or("");
            format!("{}{first}{}", &item[..open], &item[close + 1..])
        }
        (None, None) => item.to_string(),
        _ => return None,
    };
    (!host.is_empty()).then_some(host)
}

fn token(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Token>> {
    get(TOKEN_VAR).map(|t| Token::new(&t)).transpose()
}

/// The launch described by the variables `get` reads, or None for a single process (none
/// set, or a world of one). torchrun's variables win over Slurm's.
pub fn launch_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
    let l = if get("WORLD_SIZE").is_some() || get("RANK").is_some() {
        let world = need(
            get,
            "WORLD_SIZE",
            "torchrun sets it with RANK; give both or neither",
        )?;
        let rank = need(
            get,
            "RANK",
            "torchrun sets it with WORLD_SIZE; give both or neither",
        )?;
        if world <= 1 {
            return Ok(None);
        }
        let local_rank = need(
            get,
            "LOCAL_RANK",
            "it picks this process's GPU on its node (torchrun sets it)",
        )?;
        let master_addr = get("MASTER_ADDR")
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| anyhow!("MASTER_ADDR is not set: give rank 0's host name or address"))?;
        Launch {
            rank,
            world,
            local_rank,
            master_addr: master_addr.trim().to_string(),
            master_port: port(get)?,
            source: "torchrun",
            token: token(get)?,
        }
    } else if let Some(world) = int(get, "SLURM_NTASKS")? {
        if world <= 1 || get("SLURM_PROCID").is_none() {
            return Ok(None);
        }
        let rank = need(get, "SLURM_PROCID", "srun sets it")?;
        let local_rank = need(get, "SLURM_LOCALID", "srun sets it with SLURM_PROCID")?;
        let master_addr = match get("MASTER_ADDR").filter(|a| !a.trim().is_empty()) {
            Some(a) => a.trim().to_string(),
            None => {
                let list = get("SLURM_STEP_NODELIST")
                    .or_else(|| get("SLURM_JOB_NODELIST"))
                    .ok_or_else(|| {
                        anyhow!("neither MASTER_ADDR nor SLURM_STEP_NODELIST / SLURM_JOB_NODELIST is set: give MASTER_ADDR")
                    })?;
                first_host(&list).ok_or_else(|| {
                    anyhow!("SLURM_STEP_NODELIST='{list}' is not a node list: give MASTER_ADDR")
                })?
            }
        };
        Launch {
            rank,
            world,
            local_rank,
            master_addr,
            master_port: port(get)?,
            source: "slurm",
            token: token(get)?,
        }
    } else {
        return Ok(None);
    };
    if l.world > MAX_WORLD {
        return Err(anyhow!(
            "a world of {} ranks is more than this tool accepts ({MAX_WORLD})",
            l.world
        ));
    }
    if l.rank >= l.world {
        let (r, w) = if l.source == "slurm" {
            ("SLURM_PROCID", "SLURM_NTASKS")
        } else {
            ("RANK", "WORLD_SIZE")
        };
        return Err(anyhow!(
            "{r}={} is not a rank of a world of {w}={} (ranks are 0..={})",
            l.rank,
            l.world,
            l.world - 1
        ));
    }
    if l.local_rank >= l.world {
        return Err(anyhow!(
            "LOCAL_RANK={} is not below the world size {}",
            l.local_rank,
            l.world
        ));
    }
    Ok(Some(l))
}

/// [`launch_from`] over this process's environment.
pub fn launch() -> Result<Option<Launch>> {
    launch_from(&|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        launch_from(&move |k| m.get(k).cloned())
    }

    fn err(vars: &[(&str, &str)]) -> String {
        format!("{:#}", with(vars).unwrap_err())
    }

    #[test]
    fn torchrun_variables() {
        let l = with(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node07"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            l,
            Launch {
                rank: 3,
                world: 8,
                local_rank: 1,
                master_addr: "node07".into(),
                master_port: 29400,
                source: "torchrun",
                token: None,
            }
        );
        // The token: read, never printed, refused when too short to be a secret.
        let base = [
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "h"),
        ];
        let mut v = base.to_vec();
        v.push((TOKEN_VAR, "0123456789abcdef0123"));
        let l = with(&v).unwrap().unwrap();
        assert_eq!(l.token.as_ref().unwrap().bytes(), b"0123456789abcdef0123");
        assert!(!format!("{l:?}").contains("0123456789abcdef"));
        let mut v = base.to_vec();
        v.push((TOKEN_VAR, "short"));
        assert!(err(&v).contains("at least 16"));
        let l = with(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "0"),
            ("MASTER_ADDR", "h"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(l.master_port, DEFAULT_PORT);
        // A world of one, or nothing set: a single process.
        assert_eq!(with(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap(), None);
        assert_eq!(with(&[]).unwrap(), None);
    }

    #[test]
    fn torchrun_mistakes_name_the_variable() {
        let base = [("LOCAL_RANK", "0"), ("MASTER_ADDR", "h")];
        let e = err(&[&base[..], &[("RANK", "4"), ("WORLD_SIZE", "4")]].concat());
        assert!(e.contains("RANK=4") && e.contains("0..=3"), "{e}");
        let e = err(&[("RANK", "0")]);
        assert!(e.starts_with("WORLD_SIZE is not set"), "{e}");
        let e = err(&[&base[..], &[("RANK", "x"), ("WORLD_SIZE", "4")]].concat());
        assert!(e.starts_with("RANK='x'"), "{e}");
        let e = err(&[("RANK", "1"), ("WORLD_SIZE", "4"), ("MASTER_ADDR", "h")]);
        assert!(e.starts_with("LOCAL_RANK is not set"), "{e}");
        let e = err(&[("RANK", "1"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1")]);
        assert!(e.starts_with("MASTER_ADDR is not set"), "{e}");
        for p in ["0", "70000", "http"] {
            let e = err(&[
                &base[..],
                &[("RANK", "1"), ("WORLD_SIZE", "4"), ("MASTER_PORT", p)],
            ]
            .concat());
            assert!(e.starts_with(&format!("MASTER_PORT='{p}'")), "{e}");
        }
        let e = err(&[&base[..], &[("RANK", "1"), ("WORLD_SIZE", "100000")]].concat());
        assert!(e.contains("100000"), "{e}");
    }

    #[test]
    fn slurm_variables_under_srun() {
        let l = with(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_STEP_NODELIST", "gpu[03-05,07]"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                l.rank,
                l.world,
                l.local_rank,
                l.master_addr.as_str(),
                l.master_port,
                l.source
            ),
            (5, 8, 1, "gpu03", DEFAULT_PORT, "slurm")
        );
        // MASTER_ADDR wins over the node list; torchrun's variables over Slurm's.
        let l = with(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_JOB_NODELIST", "a,b"),
            ("MASTER_ADDR", "10.0.0.1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(l.master_addr, "10.0.0.1");
        let l = with(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("RANK", "0"),
            ("WORLD_SIZE", "1"),
        ])
        .unwrap();
        assert_eq!(l, None);
        // A batch script of one task, or an sbatch step outside srun: a single process.
        assert_eq!(
            with(&[("SLURM_NTASKS", "1"), ("SLURM_PROCID", "0")]).unwrap(),
            None
        );
        assert_eq!(with(&[("SLURM_NTASKS", "4")]).unwrap(), None);
        let e = err(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "0"),
        ]);
        assert!(e.contains("give MASTER_ADDR"), "{e}");
        let e = err(&[
            ("SLURM_PROCID", "2"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("MASTER_ADDR", "h"),
        ]);
        assert!(e.starts_with("SLURM_PROCID=2"), "{e}");
    }

    #[test]
    fn first_hosts_of_node_lists() {
        assert_eq!(first_host("gpu[03-05,07],cpu1").as_deref(), Some("gpu03"));
        assert_eq!(first_host("n[1-2]-ib").as_deref(), Some("n1-ib"));
        assert_eq!(first_host("a,b").as_deref(), Some("a"));
        assert_eq!(first_host("node17").as_deref(), Some("node17"));
        assert_eq!(first_host("x[7,9]").as_deref(), Some("x7"));
        assert_eq!(first_host("bad]["), None);
        assert_eq!(first_host(""), None);
    }
}
