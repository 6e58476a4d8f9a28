//! The `dist-check` command: before a multi-node training run, check that every rank finds
//! rank 0's store and receives the same group id, with nothing but the CPU and the network.

use anyhow::Context;
use clap::Parser;
use std::io::Write;
use std::time::{Duration, Instant};

use super::args::parse_in_range;
use super::spec::bad;
use crate::dist::{self, Group, Join};

const LONG_ABOUT: &str = "\
Join the multi-process group that the launcher's variables describe, exactly as `train --device
cuda` does before NCCL starts, and check that every rank received rank 0's group id. Run it
under the launcher you will train with:

  torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint node1:29500 --no-python dist-check
  srun --nodes 2 --ntasks-per-node 4 dist-check          # MASTER_ADDR: the first node

Variables: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (default 29500), as torchrun
exports them; else, under srun, SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the first host of
SLURM_STEP_NODELIST. SPARSENET_DIST_TOKEN, the same secret on every rank (at least 16
characters, e.g. `export SPARSENET_DIST_TOKEN=$(openssl rand -hex 32)`), makes every rank and
rank 0's store prove to each other that they hold it before anything else; without it the group
forms unauthenticated and rank 0 says so. Each rank prints one line. Exit status: 0 when every
rank holds the same id, 1 when the group failed (a rank missing past --timeout, a rank that
died), 2 for bad variables (also ranks that disagree on the world size or the token, one rank
given twice, a MASTER_ADDR that does not resolve or is not rank 0's machine), 3 when rank 0
cannot listen (the port is in use).";

/// Arguments of `dist-check`.
#[derive(Parser, Debug)]
#[command(name = "dist-check", version, about = "Check a multi-process group's rendezvous (torchrun or srun variables), without a GPU.", long_about = LONG_ABOUT)]
pub struct DistCheckArgs {
    /// Seconds a rank waits for the others (to join, or for a value).
    #[arg(long, default_value = "60", value_parser = |s: &str| parse_in_range(s, "timeout", 1, 86_400))]
    pub timeout: usize,

    /// Stay in the group this many seconds after joining, watching it (as a training run
    /// would): a rank that dies meanwhile ends every other rank.
    #[arg(long, default_value = "0", value_parser = |s: &str| parse_in_range(s, "hold", 0, 86_400))]
    pub hold: usize,
}

/// Run `dist-check`.
pub fn exec(a: &DistCheckArgs) -> anyhow::Result<()> {
    check(a).inspect_err(|_| {
        if !dist::claim_failure() {
            // The watch thread is reporting the group's failure and ending the process.
            loop {
                std::thread::park();
            }
        }
    })
}

fn check(a: &DistCheckArgs) -> anyhow::Result<()> {
    let launch = dist::launch().map_err(crate::error::bad_input)?.ok_or_else(|| {
        bad("no multi-process group in the environment: set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun does), or run under srun with several tasks")
    })?;
    let j = Join {
        launch,
        timeout: Duration::from_secs(a.timeout as u64),
    };
    let t0 = Instant::now();
    let mut g = Group::join(&j, || {
        let mut id = vec![0u8; 128];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Ok(id)
    })?;
    g.watch(dist::exit_on_failure(g.rank()))?;
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(g.id())
    };
    g.check_same("group ids", &digest)?;
    let l = g.launch().clone();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "rank {} of {} (local rank {}, {} variables): joined rank 0's store at {}:{} in {:.2} s; every rank holds group id {}",
        l.rank,
        l.world,
        l.local_rank,
        l.source,
        l.master_addr,
        l.master_port,
        t0.elapsed().as_secs_f64(),
        dist::store::hex(&digest[..8])
    )
    .and_then(|()| out.flush())
    .context("cannot write to stdout")?;
    if a.hold > 0 {
        std::thread::sleep(Duration::from_secs(a.hold as u64));
    }
    g.finish()
}
