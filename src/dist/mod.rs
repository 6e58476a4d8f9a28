//! Multi-process groups, as torchrun forms them: every process learns its rank from the
//! launcher's variables ([`env`]), rank 0 hosts a small TCP store ([`store`]), and through it
//! rank 0's group id (NCCL's unique id, for training) reaches every rank. The group also
//! gathers small values (a digest of every rank's parameters before a checkpoint) and watches
//! itself: a rank that dies or fails ends every other rank with the reason, never a hang.
//!
//! Nothing here needs a GPU; the rendezvous is tested over loopback with several processes
//! (`dist-check`, `tests/dist_cli.rs`). Training across processes (`train --device cuda` under
//! torchrun or srun) puts NCCL on top of it (`gpu::distributed`).

pub mod env;
pub mod store;

pub use env::{launch, Launch};

use anyhow::{anyhow, bail, Context, Result};
use std::time::Duration;

/// The default time a rank waits for the others (to join, or for a value).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A process's launch and how long it waits for the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// Rank, world and rank 0's address.
    pub launch: Launch,
    /// How long a rank waits for the others.
    pub timeout: Duration,
}

/// This process's membership of a group.
pub struct Group {
    launch: Launch,
    timeout: Duration,
    client: store::Client,
    server: Option<store::Server>,
    id: Vec<u8>,
    round: u64,
    finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Group {
    /// Join the group `j` describes. Rank 0 starts the store, waits for every rank and puts
    /// the id `make_id` gives (called on rank 0 only); every rank returns holding it.
    pub fn join(j: &Join, make_id: impl FnOnce() -> Result<Vec<u8>>) -> Result<Group> {
        let l = &j.launch;
        let server = if l.rank == 0 {
            Some(store::Server::start(
                &l.master_addr,
                l.master_port,
                l.world,
                j.timeout,
                l.token.as_ref(),
            )?)
        } else {
            None
        };
        let mut client =
            store::Client::connect(&l.master_addr, l.master_port, j.timeout, l.token.as_ref())?;
        client
            .hello(l.rank, l.world)
            .with_context(|| format!("rank {} joining the group", l.rank))?;
        let id = match &server {
            Some(s) => {
                s.wait_joined()?;
                let id = match make_id() {
                    Ok(id) => id,
                    Err(e) => {
                        s.fail(format!("rank 0 could not make the group id: {e:#}"));
                        return Err(e);
                    }
                };
                client.set("group-id", &id)?;
                id
            }
            None => client
                .get("group-id")
                .with_context(|| format!("rank {} waiting for rank 0's group id", l.rank))?,
        };
        Ok(Group {
            launch: l.clone(),
            timeout: j.timeout,
            client,
            server,
            id,
            round: 0,
            finished: Default::default(),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.launch.rank
    }

    /// Ranks in the group.
    pub fn world(&self) -> usize {
        self.launch.world
    }

    /// The launch it was joined from.
    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    /// Rank 0's id, as every rank holds it.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Every rank's `value`, in rank order (each rank calls it in the same order).
    pub fn all_gather(&mut self, value: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.round += 1;
        let round = self.round;
        self.client
            .set(&format!("gather-{round}-{}", self.launch.rank), value)?;
        (0..self.launch.world)
            .map(|r| self.client.get(&format!("gather-{round}-{r}")))
            .collect()
    }

    /// Check that every rank holds the same `value` (e.g. a digest of its parameters); the
    /// error names the first rank that differs from rank 0.
    pub fn check_same(&mut self, what: &str, value: &[u8]) -> Result<()> {
        let all = self.all_gather(value)?;
        if let Some(r) = (1..all.len()).find(|&r| all[r] != all[0]) {
            bail!("ranks 0 and {r} hold different {what}");
        }
        Ok(())
    }

    /// Tell every rank this one failed, and why (before returning the error).
    pub fn fail(&mut self, why: &str) {
        let _ = self
            .client
            .fail(&format!("rank {} failed: {why}", self.launch.rank));
    }

    /// Watch the group on a thread of its own: when another rank dies or fails, or rank 0's
    /// store goes away, `on_fail` is called with the reason (training calls it to end the
    /// process: a rank blocked inside a collective would otherwise wait for ever). Returns at
    /// once.
    pub fn watch(&self, on_fail: impl FnOnce(String) + Send + 'static) -> Result<()> {
        let l = &self.launch;
        let watcher = store::Client::connect(
            &l.master_addr,
            l.master_port,
            self.timeout,
            l.token.as_ref(),
        )?;
        let finished = self.finished.clone();
        // Rank 0 hosts the store: before it ends, the others must have heard why.
        let linger = self.server.as_ref().map(|s| s.lingerer());
        std::thread::Builder::new()
            .name("group-watch".into())
            .spawn(move || {
                // What happens after this rank has left is no longer its failure.
                if let Err(e) = watcher.watch() {
                    if !finished.load(std::sync::atomic::Ordering::SeqCst) {
                        if let Some(linger) = linger {
                            linger();
                        }
                        on_fail(format!("{e:#}"));
                    }
                }
            })
            .map_err(|e| anyhow!("starting the group's watch thread: {e}"))?;
        Ok(())
    }

    /// Leave the group cleanly; rank 0 keeps its store up until every rank has left (or the
    /// timeout), so the others' last messages find it.
    pub fn finish(mut self) -> Result<()> {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.client.bye()?;
        if let Some(s) = &self.server {
            s.wait_left();
        }
        Ok(())
    }
}

static FAILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Claim the right to report this process's failure: true for the first caller only. A rank's
/// main thread and its watch thread may both see the group fail (a closed store connection);
/// the one that claims first prints its one line and ends the process, and the other stays
/// silent, so an error is always one line.
pub fn claim_failure() -> bool {
    !FAILING.swap(true, std::sync::atomic::Ordering::SeqCst)
}

/// A `watch` callback for commands: print the reason on one line and end the process with
/// status 1 — unless the main thread is already reporting an error, which then ends it.
pub fn exit_on_failure(rank: usize) -> impl FnOnce(String) + Send + 'static {
    move |why| {
        if claim_failure() {
            eprintln!("error: rank {rank}: the group failed: {why}");
            std::process::exit(i32::from(crate::error::EXIT_FAILED));
        }
    }
}
