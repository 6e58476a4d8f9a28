//! The small key-value store rank 0 hosts for its group, over TCP, as PyTorch's `TCPStore`
//! does for torchrun: ranks say who they are (`HELLO rank world`), put and wait for values
//! (`SET`, `GET`), watch the group (`WATCH`: answered when a rank dies or the group fails) and
//! leave (`BYE`). One line per message; values travel as hex.
//!
//! The server notices a rank whose connection ends before its `BYE` — its process died or
//! lost the network — and fails the group: every waiting `GET` and every `WATCH` is answered
//! with the reason, so no rank waits for a dead one.
//!
//! Before any of that, each connection proves it holds the group's secret
//! (`SPARSENET_DIST_TOKEN`), and the store proves it back: the store opens with
//! `STORE <nonce>`, the rank answers `AUTH <mac> <its nonce>`, the store `OK <mac>`, each mac an
//! HMAC-SHA256 of both nonces under the token (so a recorded exchange replays nowhere). A
//! connection that fails this gets one `ERR` line and is closed, having changed nothing: a
//! stranger can neither join as a rank, nor read the group id, nor fail the group. Without a
//! token the exchange carries `-` and the group forms as before, unauthenticated (rank 0 says so
//! once). The store also bounds what anyone can make it hold: [`MAX_STORED_BYTES`] of keys and
//! values, two connections per rank and a few more, [`AUTH_TIMEOUT`] to authenticate.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::env::{Token, TOKEN_VAR};
use crate::error::bad_input;

/// The most bytes of keys and values the store holds (a group needs a few kB: the id, and a
/// digest per rank per checkpoint).
pub const MAX_STORED_BYTES: usize = 64 << 20;

/// How long a new connection has to authenticate before it is closed.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections beyond the ranks' own two (store client and watcher) that the store accepts at
/// once: late or retrying ranks, and room for strangers not to lock the ranks out at once.
const SPARE_CONNECTIONS: usize = 16;

/// The HMAC-SHA256 of `role` and both nonces under the token.
fn mac(token: &Token, role: &str, nonce_store: &str, nonce_rank: &str) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(token.bytes())
        .expect("HMAC takes a key of any length");
    m.update(format!("sparsenet-store {role} {nonce_store} {nonce_rank}").as_bytes());
    m
}

/// Whether `given` (hex) is the mac of `role` — compared in constant time.
fn mac_matches(token: &Token, role: &str, ns: &str, nr: &str, given: &str) -> bool {
    use hmac::Mac;
    unhex(given).is_some_and(|g| mac(token, role, ns, nr).verify_slice(&g).is_ok())
}

fn mac_hex(token: &Token, role: &str, ns: &str, nr: &str) -> String {
    use hmac::Mac;
    hex(&mac(token, role, ns, nr).finalize().into_bytes())
}

/// 16 random bytes from the operating system, as hex.
fn nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex(&b)
}

/// How much longer a `GET` waits than the group's timeout.
const GET_MARGIN: Duration = Duration::from_secs(2);

/// The longest line the server reads (a key and a hex value): 1 MiB.
const MAX_LINE: usize = 1 << 20;

/// Bytes as lower-case hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Default)]
struct State {
    values: HashMap<String, Vec<u8>>,
    joined: BTreeSet<usize>,
    /// Joined ranks whose connection is still open.
    connected: BTreeSet<usize>,
    left: BTreeSet<usize>,
    failed: Option<String>,
    /// The failure is the launch's configuration (ranks that disagree on the world size).
    misconfigured: bool,
    /// Refusals decided but not yet sent (a rank of another world size never joins, so
    /// `connected` does not hold it): rank 0 lingers until they are on the wire.
    refusals_unsent: usize,
    /// Bytes of keys and values held.
    stored: usize,
}

struct Shared {
    world: usize,
    timeout: Duration,
    token: Option<Token>,
    /// Connections open now.
    connections: AtomicUsize,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn fail(&self, why: String) {
        let mut s = self.state.lock().expect("store state");
        s.failed.get_or_insert(why);
        self.changed.notify_all();
    }
}

/// Rank 0's store: listening from [`Server::start`] until dropped.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

/// Read one line of at most [`MAX_LINE`] bytes (None at the end of the stream).
fn read_line<R: BufRead>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = Read::take(&mut *r, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the connection ended inside a message, or a message was longer than 1 MiB",
        ));
    }
    buf.pop();
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// The store's half of the exchange that opens every connection (module docs): true when the
/// rank proved it holds the token (or neither side has one).
fn authenticate<R: BufRead>(shared: &Shared, input: &mut R, out: &mut TcpStream) -> bool {
    let ns = nonce();
    if out.write_all(format!("STORE {ns}\n").as_bytes()).is_err() {
        return false;
    }
    let Ok(Some(line)) = read_line(input) else {
        return false;
    };
    let mut w = line.split(' ');
    let reply = match (w.next(), w.next(), w.next(), w.next(), &shared.token) {
        (Some("AUTH"), Some("-"), Some(_), None, None) => Ok("OK -".to_string()),
        (Some("AUTH"), Some("-"), Some(_), None, Some(_)) => Err(format!(
            "this group's store needs {TOKEN_VAR} (rank 0 has one): set the same value on every rank"
        )),
        (Some("AUTH"), Some(_), Some(_), None, None) => Err(format!(
            "rank 0 runs without {TOKEN_VAR} and this rank has one: set the same value on every rank, or on none"
        )),
        (Some("AUTH"), Some(given), Some(nr), None, Some(t)) => {
            if nr.len() == 32 && mac_matches(t, "rank", &ns, nr, given) {
                Ok(format!("OK {}", mac_hex(t, "store", &ns, nr)))
            } else {
                Err(format!(
                    "wrong {TOKEN_VAR}: this rank's differs from rank 0's (every rank needs the same value)"
                ))
            }
        }
        _ => Err("a connection must authenticate first (AUTH)".to_string()),
    };
    let (text, ok) = match reply {
        Ok(t) => (t, true),
        Err(why) => (format!("ERR {why}"), false),
    };
    out.write_all(format!("{text}\n").as_bytes()).is_ok() && ok
}

/// Counts a connection for as long as it lives.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let _ = stream.set_read_timeout(Some(AUTH_TIMEOUT));
    let mut input = BufReader::new(stream);
    if !authenticate(&shared, &mut input, &mut out) {
        return;
    }
    let _ = input.get_ref().set_read_timeout(None);
    let mut me: Option<usize> = None;
    let mut said_bye = false;
    while let Ok(Some(line)) = read_line(&mut input) {
        let mut refusal_owed = false;
        let mut words = line.splitn(3, ' ');
        if let Some(why) = line.strip_prefix("FAIL ") {
            shared.fail(why.to_string());
            let _ = out.write_all(b"OK\n");
            continue;
        }
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("HELLO"), Some(rank), Some(world)) => {
                match (rank.parse::<usize>(), world.parse::<usize>()) {
                    (Ok(rank), Ok(world)) if world != shared.world => {
                        let why = format!(
                            "rank {rank} says the world has {world} ranks, rank 0 says {}: every rank needs the same WORLD_SIZE",
                            shared.world
                        );
                        let mut s = shared.state.lock().expect("store state");
                        if s.failed.is_none() {
                            s.failed = Some(why.clone());
                            s.misconfigured = true;
                        }
                        s.refusals_unsent += 1;
                        refusal_owed = true;
                        shared.changed.notify_all();
                        format!("ERR {why}")
                    }
                    (Ok(rank), Ok(_)) if rank >= shared.world => {
                        format!(
                            "ERR rank {rank} is not a rank of a world of {}",
                            shared.world
                        )
                    }
                    (Ok(rank), Ok(_)) => {
                        let mut s = shared.state.lock().expect("store state");
                        if !s.joined.insert(rank) {
                            format!(
                                "ERR rank {rank} joined twice: every process needs its own RANK"
                            )
                        } else {
                            me = Some(rank);
                            s.connected.insert(rank);
                            shared.changed.notify_all();
                            "OK".to_string()
                        }
                    }
                    _ => "ERR HELLO takes a rank and a world size".to_string(),
                }
            }
            (Some("SET"), Some(key), Some(value)) => {
                match unhex(value) {
                    Some(v) => {
                        let mut s = shared.state.lock().expect("store state");
                        let old = s.values.get(key).map_or(0, |o| key.len() + o.len());
                        let new = key.len() + v.len();
                        if s.stored - old + new > MAX_STORED_BYTES {
                            format!("ERR the store is full ({MAX_STORED_BYTES} bytes of keys and values)")
                        } else {
                            s.stored = s.stored - old + new;
                            s.values.insert(key.to_string(), v);
                            shared.changed.notify_all();
                            "OK".to_string()
                        }
                    }
                    None => "ERR SET takes a hex value".to_string(),
                }
            }
            (Some("GET"), Some(key), None) => {
                // A margin past the timeout: a failure rank 0 finds at its own deadline (a rank
                // that never joined) reaches the waiters before their wait ends.
                let deadline = Instant::now() + shared.timeout + GET_MARGIN;
                let mut s = shared.state.lock().expect("store state");
                loop {
                    if let Some(why) = &s.failed {
                        break format!("ERR {why}");
                    }
                    if let Some(v) = s.values.get(key) {
                        break format!("VAL {}", hex(v));
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        break format!(
                            "ERR no rank gave '{key}' within {} s",
                            shared.timeout.as_secs()
                        );
                    }
                    s = shared
                        .changed
                        .wait_timeout(s, deadline - now)
                        .expect("store state")
                        .0;
                }
            }
            (Some("WATCH"), None, None) => {
                let mut s = shared.state.lock().expect("store state");
                loop {
                    if let Some(why) = &s.failed {
                        break format!("FAIL {why}");
                    }
                    if s.left.len() == shared.world {
                        break "BYE".to_string();
                    }
                    s = shared.changed.wait(s).expect("store state");
                }
            }
            (Some("BYE"), None, None) => {
                if let Some(r) = me {
                    let mut s = shared.state.lock().expect("store state");
                    s.left.insert(r);
                    shared.changed.notify_all();
                }
                said_bye = true;
                "OK".to_string()
            }
            _ => format!(
                "ERR unknown store message '{}'",
                line.chars().take(40).collect::<String>()
            ),
        };
        let sent = out
            .write_all(reply.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if refusal_owed {
            shared.state.lock().expect("store state").refusals_unsent -= 1;
            shared.changed.notify_all();
        }
        if sent.is_err() {
            break;
        }
    }
    if let Some(r) = me {
        shared
            .state
            .lock()
            .expect("store state")
            .connected
            .remove(&r);
        shared.changed.notify_all();
    }
    if let (Some(r), false) = (me, said_bye) {
        shared.fail(format!(
            "rank {r} left the group before finishing (its process ended or its connection broke)"
        ));
    }
}

/// The longest rank 0 keeps a failed group's store up so that every rank hears why.
const LINGER: Duration = Duration::from_secs(3);

impl Shared {
    /// Wait (at most [`LINGER`]) until every other rank has closed its connection and every
    /// refusal has been sent: after a failure, rank 0 keeps the store up until the reason has
    /// reached them.
    fn linger(&self) {
        let deadline = Instant::now() + LINGER;
        let mut s = self.state.lock().expect("store state");
        while s.connected.iter().any(|&r| r != 0) || s.refusals_unsent > 0 {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .expect("store state")
                .0;
        }
    }
}

impl Server {
    /// Listen on `addr:port` — that address only, the one the ranks were told — for a group
    /// of `world` ranks that share `token` (None: unauthenticated, said once on stderr); waits
    /// for values at most `timeout`. A port in use is an I/O error that says so; an address
    /// that does not resolve or is not this machine's is bad input.
    pub fn start(
        addr: &str,
        port: u16,
        world: usize,
        timeout: Duration,
        token: Option<&Token>,
    ) -> Result<Server> {
        let targets = resolve(addr, port)?;
        let listener = TcpListener::bind(&targets[..]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::Error::new(e).context(format!(
                    "MASTER_PORT {port} is in use on this machine (another group or program holds it): choose another MASTER_PORT"
                ))
            } else if e.kind() == std::io::ErrorKind::AddrNotAvailable {
                bad_input(anyhow!(
                    "MASTER_ADDR '{addr}' is not an address of this machine: rank 0 must run on the host MASTER_ADDR names, and the store listens on that address only"
                ))
            } else {
                anyhow::Error::new(e)
                    .context(format!("cannot listen on {addr}:{port} for the group's store"))
            }
        })?;
        if token.is_none() {
            eprintln!(
                "warning: the group's store on {addr}:{port} is unauthenticated: anyone who reaches that port can join as a rank or end the group. Set {TOKEN_VAR} to the same secret on every rank (export {TOKEN_VAR}=$(openssl rand -hex 32))."
            );
        }
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            world,
            timeout,
            token: token.cloned(),
            connections: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        let cap = world.saturating_mul(2).saturating_add(SPARE_CONNECTIONS);
        std::thread::Builder::new()
            .name("store-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    if s.connections.fetch_add(1, Ordering::SeqCst) >= cap {
                        // Refused here, without a thread: a flood of connections costs one
                        // short write each.
                        s.connections.fetch_sub(1, Ordering::SeqCst);
                        let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                        let _ = stream.write_all(
                            format!("ERR the store has {cap} connections open, its limit\n")
                                .as_bytes(),
                        );
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let s = s.clone();
                    let counted = Counted(s.clone());
                    let _ =
                        std::thread::Builder::new()
                            .name("store-conn".into())
                            .spawn(move || {
                                let _counted = counted;
                                serve(s, stream)
                            });
                }
            })
            .context("starting the store's thread")?;
        Ok(Server {
            shared,
            addr: local,
        })
    }

    /// The address it listens on (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait until every rank has said HELLO, or fail the group naming the missing ranks.
    pub fn wait_joined(&self) -> Result<()> {
        let deadline = Instant::now() + self.shared.timeout;
        let mut s = self.shared.state.lock().expect("store state");
        loop {
            if let Some(why) = &s.failed {
                let e = anyhow!("{why}");
                let misconfigured = s.misconfigured;
                drop(s);
                // Rank 0 ends with this error: first let the rank that caused it hear why
                // (it would otherwise read only a closed connection).
                self.shared.linger();
                return Err(if misconfigured {
                    crate::error::bad_input(e)
                } else {
                    e
                });
            }
            if s.joined.len() == self.shared.world {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let missing: Vec<usize> = (0..self.shared.world)
                    .filter(|r| !s.joined.contains(r))
                    .collect();
                drop(s);
                let why = format!(
                    "rank{} {} of {} did not join within {} s (were they started, with the same MASTER_ADDR and MASTER_PORT?)",
                    if missing.len() == 1 { "" } else { "s" },
                    rank_list(&missing),
                    self.shared.world,
                    self.shared.timeout.as_secs()
                );
                self.fail(why.clone());
                bail!("{why}");
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, deadline - now)
                .expect("store state")
                .0;
        }
    }

    /// Wait until every rank has said BYE (at most the timeout): rank 0 keeps the store up
    /// for the others' last messages.
    pub fn wait_left(&self) {
        let deadline = Instant::now() + self.shared.timeout;
        let mut s = self.shared.state.lock().expect("store state");
        while s.left.len() < self.shared.world && s.failed.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, deadline - now)
                .expect("store state")
                .0;
        }
    }

    /// Fail the group (every waiting rank is told `why`), and keep the store up until the
    /// other ranks have heard it (a few seconds at most).
    pub fn fail(&self, why: String) {
        self.shared.fail(why);
        self.shared.linger();
    }

    /// A handle that waits, after a failure, until the other ranks have heard it.
    pub fn lingerer(&self) -> impl Fn() + Send + 'static {
        let shared = self.shared.clone();
        move || shared.linger()
    }
}

/// Ranks (ascending) as a short list: runs as `a–b`, and past a few runs a count, so that a
/// world of 65 536 missing ranks is one short line.
fn rank_list(ranks: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &r in ranks {
        match runs.last_mut() {
            Some((_, hi)) if *hi + 1 == r => *hi = r,
            _ => runs.push((r, r)),
        }
    }
    const SHOWN: usize = 8;
    let mut parts: Vec<String> = runs
        .iter()
        .take(SHOWN)
        .map(|&(a, b)| match b - a {
            0 => a.to_string(),
            1 => format!("{a}, {b}"),
            _ => format!("{a}–{b}"),
        })
        .collect();
    if runs.len() > SHOWN {
        parts.push(format!("… ({} ranks in all)", ranks.len()));
    }
    parts.join(", ")
}

/// `addr:port`'s addresses; a name that does not resolve is bad input (exit 2).
fn resolve(addr: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let v: Vec<SocketAddr> = (addr, port)
        .to_socket_addrs()
        .map_err(|e| bad_input(anyhow!("MASTER_ADDR '{addr}' does not resolve ({e})")))?
        .collect();
    if v.is_empty() {
        return Err(bad_input(anyhow!("MASTER_ADDR '{addr}' has no address")));
    }
    Ok(v)
}

/// One rank's connection to the store.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    peer: String,
}

impl Client {
    /// Connect to `addr:port`, retrying until `timeout` (rank 0 may start later than this rank),
    /// and authenticate both ways with `token` (module docs). A store that refuses the token,
    /// or answers without knowing it, is the launch's configuration: bad input.
    pub fn connect(
        addr: &str,
        port: u16,
        timeout: Duration,
        token: Option<&Token>,
    ) -> Result<Client> {
        let deadline = Instant::now() + timeout;
        let peer = format!("{addr}:{port}");
        let sa = resolve(addr, port)?[0];
        loop {
            match TcpStream::connect_timeout(&sa, Duration::from_secs(2)) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    // A read never blocks longer than the store's own wait and a margin.
                    stream
                        .set_read_timeout(Some(timeout + GET_MARGIN + Duration::from_secs(10)))?;
                    let writer = stream.try_clone()?;
                    let mut c = Client {
                        reader: BufReader::new(stream),
                        writer,
                        peer,
                    };
                    c.authenticate(token)?;
                    return Ok(c);
                }
                Err(e) if Instant::now() >= deadline => {
                    // The group failed (status 1), not a file: no io::Error in the chain.
                    return Err(anyhow!(
                        "rank 0's store at {peer} did not answer within {} s (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?): {e:#}",
                        timeout.as_secs()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The rank's half of the opening exchange (module docs).
    fn authenticate(&mut self, token: Option<&Token>) -> Result<()> {
        let opening = read_line(&mut self.reader)
            .map_err(|e| anyhow!("no answer from rank 0's store at {}: {e}", self.peer))?
            .unwrap_or_default();
        let ns = match opening.strip_prefix("STORE ") {
            Some(n) if n.len() == 32 => n.to_string(),
            _ => {
                let shown: String = opening.chars().take(80).collect();
                return Err(anyhow!(
                    "{} is not a sparsenet store (it said '{shown}'): check MASTER_ADDR and MASTER_PORT",
                    self.peer
                ));
            }
        };
        let nr = nonce();
        let proof = token.map_or("-".to_string(), |t| mac_hex(t, "rank", &ns, &nr));
        match self.ask_raw(&format!("AUTH {proof} {nr}"))? {
            Some(r) => match (r.strip_prefix("OK "), token) {
                (Some("-"), None) => Ok(()),
                (Some(m), Some(t)) if mac_matches(t, "store", &ns, &nr, m) => Ok(()),
                (Some(_), _) => Err(bad_input(anyhow!(
                    "rank 0's store at {} did not prove it holds this rank's {TOKEN_VAR}: check the token and MASTER_ADDR",
                    self.peer
                ))),
                (None, _) => Err(bad_input(anyhow!(
                    "{}",
                    r.strip_prefix("ERR ").unwrap_or(&r)
                ))),
            },
            None => bail!(
                "rank 0's store at {} closed the connection (rank 0 ended)",
                self.peer
            ),
        }
    }

    /// Send one message and read the answer (None: the store closed the connection).
    fn ask_raw(&mut self, msg: &str) -> Result<Option<String>> {
        // A broken connection is the group failing (status 1), not a file: the io::Error is
        // kept as text only.
        self.writer
            .write_all(format!("{msg}\n").as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|e| {
                anyhow!(
                    "the connection to rank 0's store at {} broke (rank 0 may have died): {e}",
                    self.peer
                )
            })?;
        read_line(&mut self.reader).map_err(|e| {
            anyhow!(
                "no answer from rank 0's store at {} (rank 0 may have died): {e}",
                self.peer
            )
        })
    }

    fn ask(&mut self, msg: &str) -> Result<String> {
        match self.ask_raw(msg)? {
            Some(r) => match r.strip_prefix("ERR ") {
                Some(why) => bail!("{why}"),
                None => Ok(r),
            },
            None => bail!(
                "rank 0's store at {} closed the connection (rank 0 ended)",
                self.peer
            ),
        }
    }

    /// Join as `rank` of `world`. A refusal (another world size, a rank taken twice) is the
    /// launch's configuration: bad input.
    pub fn hello(&mut self, rank: usize, world: usize) -> Result<()> {
        match self.ask_raw(&format!("HELLO {rank} {world}"))? {
            Some(r) if r == "OK" => Ok(()),
            Some(r) => Err(crate::error::bad_input(anyhow!(
                "{}",
                r.strip_prefix("ERR ").unwrap_or(&r)
            ))),
            None => bail!(
                "rank 0's store at {} closed the connection (rank 0 ended)",
                self.peer
            ),
        }
    }

    /// Put a value.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<()> {
        if key.is_empty() || key.contains(char::is_whitespace) {
            bail!("a store key is one word, not '{key}'");
        }
        self.ask(&format!("SET {key} {}", hex(value))).map(|_| ())
    }

    /// Wait for a value (at most the store's timeout).
    pub fn get(&mut self, key: &str) -> Result<Vec<u8>> {
        let r = self.ask(&format!("GET {key}"))?;
        r.strip_prefix("VAL ")
            .and_then(unhex)
            .ok_or_else(|| anyhow!("the store answered '{r}' to GET"))
    }

    /// Fail the group: every rank waiting or watching is told `why`.
    pub fn fail(&mut self, why: &str) -> Result<()> {
        self.ask(&format!("FAIL {}", why.replace('\n', " ")))
            .map(|_| ())
    }

    /// Say this rank finished. Rank 0 may end as soon as the last BYE arrives, before it
    /// answers, so a closed connection here is no error.
    pub fn bye(&mut self) -> Result<()> {
        match self.ask_raw("BYE") {
            Ok(Some(r)) if r.starts_with("ERR ") => bail!("{}", &r[4..]),
            _ => Ok(()),
        }
    }

    /// Block until the group fails (Err with the reason; also when the store goes away) or
    /// every rank has left (Ok).
    pub fn watch(mut self) -> Result<()> {
        match self
            .writer
            .set_read_timeout(None)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                self.reader
                    .get_ref()
                    .set_read_timeout(None)
                    .map_err(Into::into)
            }) {
            Ok(()) => {}
            Err(e) => return Err(e),
        }
        match self.ask_raw("WATCH")? {
            Some(r) if r == "BYE" => Ok(()),
            Some(r) => bail!("{}", r.strip_prefix("FAIL ").unwrap_or(&r)),
            None => bail!(
                "rank 0's store at {} went away (rank 0 ended or its node failed)",
                self.peer
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let v: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&v)).unwrap(), v);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn values_wait_and_failures_reach_every_waiter() {
        let server = Server::start("127.0.0.1", 0, 2, Duration::from_secs(5), None).unwrap();
        let port = server.addr().port();
        let mut a = Client::connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
        a.hello(0, 2).unwrap();
        let waiter = std::thread::spawn(move || {
            let mut b = Client::connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
            b.hello(1, 2).unwrap();
            b.get("k").unwrap()
        });
        server.wait_joined().unwrap();
        a.set("k", b"value").unwrap();
        assert_eq!(waiter.join().unwrap(), b"value");
        // A duplicate rank is refused.
        let mut c = Client::connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
        let e = format!("{:#}", c.hello(0, 2).unwrap_err());
        assert!(e.contains("joined twice"), "{e}");
        // Rank 1's connection has ended without BYE (its thread returned): the group fails
        // and a watcher hears why.
        let w = Client::connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
        let e = format!("{:#}", w.watch().unwrap_err());
        assert!(e.contains("rank 1 left the group"), "{e}");
        let e = format!("{:#}", a.get("never").unwrap_err());
        assert!(e.contains("rank 1 left"), "{e}");
    }

    #[test]
    fn another_world_size_fails_the_group_as_bad_input() {
        let server = Server::start("127.0.0.1", 0, 2, Duration::from_secs(5), None).unwrap();
        let port = server.addr().port();
        let mut c = Client::connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
        let e = c.hello(1, 3).unwrap_err();
        assert_eq!(crate::error::exit_status(&e), crate::error::EXIT_BAD_INPUT);
        assert!(
            format!("{e:#}").contains("world has 3 ranks, rank 0 says 2"),
            "{e:#}"
        );
        let e = server.wait_joined().unwrap_err();
        assert_eq!(crate::error::exit_status(&e), crate::error::EXIT_BAD_INPUT);
        assert!(format!("{e:#}").contains("world has 3 ranks"), "{e:#}");
    }

    #[test]
    fn a_missing_rank_times_out_naming_it() {
        let server = Server::start("127.0.0.1", 0, 3, Duration::from_millis(300), None).unwrap();
        let mut a = Client::connect(
            "127.0.0.1",
            server.addr().port(),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        a.hello(0, 3).unwrap();
        let e = format!("{:#}", server.wait_joined().unwrap_err());
        assert!(e.starts_with("ranks 1, 2 of 3 did not join"), "{e}");
        let e = format!("{:#}", a.get("id").unwrap_err());
        assert!(e.contains("did not join"), "{e}");
    }

    #[test]
    fn missing_ranks_are_listed_briefly() {
        assert_eq!(rank_list(&[1, 2]), "1, 2");
        assert_eq!(rank_list(&[1, 2, 3, 7]), "1–3, 7");
        let all: Vec<usize> = (1..65_536).collect();
        assert_eq!(rank_list(&all), "1–65535");
        let odd: Vec<usize> = (0..1000).map(|i| 2 * i + 1).collect();
        let l = rank_list(&odd);
        assert!(l.len() < 80 && l.ends_with("(1000 ranks in all)"), "{l}");
    }

    fn token(s: &str) -> Token {
        Token::new(s).unwrap()
    }

    /// A stranger's raw line after the store's opening, and the store's answer.
    fn stranger_says(port: u16, line: &str) -> String {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let opening = read_line(&mut r).unwrap().unwrap();
        assert!(opening.starts_with("STORE "), "{opening}");
        w.write_all(format!("{line}\n").as_bytes()).unwrap();
        let answer = read_line(&mut r).unwrap().unwrap_or_default();
        // Whatever it answered, the store closes a connection that did not authenticate.
        assert_eq!(read_line(&mut r).ok().flatten(), None);
        answer
    }

    #[test]
    fn strangers_without_the_token_change_nothing() {
        let t = token("a-secret-of-the-group-0123456789");
        let server = Server::start("127.0.0.1", 0, 2, Duration::from_secs(5), Some(&t)).unwrap();
        let port = server.addr().port();
        // HELLO, FAIL, GET and SET before authenticating: refused, nothing changes.
        for line in [
            "HELLO 1 2",
            "FAIL stranger",
            "GET group-id",
            "SET k 00",
            "AUTH - 0123",
        ] {
            let a = stranger_says(port, line);
            assert!(a.starts_with("ERR "), "{line}: {a}");
        }
        // A stranger with another token: refused as bad input, both ways.
        let e = Client::connect(
            "127.0.0.1",
            port,
            Duration::from_secs(5),
            Some(&token("not-the-secret-0123456789")),
        )
        .err()
        .unwrap();
        assert_eq!(crate::error::exit_status(&e), crate::error::EXIT_BAD_INPUT);
        assert!(
            format!("{e:#}").contains("wrong SPARSENET_DIST_TOKEN"),
            "{e:#}"
        );
        let e = Client::connect("127.0.0.1", port, Duration::from_secs(5), None)
            .err()
            .unwrap();
        assert!(
            format!("{e:#}").contains("needs SPARSENET_DIST_TOKEN"),
            "{e:#}"
        );
        // The real ranks still form the group: rank 1 was not taken, the group did not fail.
        let mut a = Client::connect("127.0.0.1", port, Duration::from_secs(5), Some(&t)).unwrap();
        a.hello(0, 2).unwrap();
        let mut b = Client::connect("127.0.0.1", port, Duration::from_secs(5), Some(&t)).unwrap();
        b.hello(1, 2).unwrap();
        server.wait_joined().unwrap();
        a.set("group-id", b"id").unwrap();
        assert_eq!(b.get("group-id").unwrap(), b"id");
        // A store without the token does not pass for one that has it.
        let open = Server::start("127.0.0.1", 0, 2, Duration::from_secs(5), None).unwrap();
        let e = Client::connect(
            "127.0.0.1",
            open.addr().port(),
            Duration::from_secs(5),
            Some(&t),
        )
        .err()
        .unwrap();
        assert!(
            format!("{e:#}").contains("runs without SPARSENET_DIST_TOKEN"),
            "{e:#}"
        );
    }

    #[test]
    fn a_rank_refuses_a_store_that_does_not_know_the_token() {
        // A fake store that opens correctly but cannot compute the store's mac.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let fake = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            w.write_all(format!("STORE {}\n", "0".repeat(32)).as_bytes())
                .unwrap();
            let _ = read_line(&mut r);
            w.write_all(format!("OK {}\n", "ab".repeat(32)).as_bytes())
                .unwrap();
        });
        let e = Client::connect(
            "127.0.0.1",
            port,
            Duration::from_secs(5),
            Some(&token("a-secret-of-the-group-0123456789")),
        )
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("did not prove"), "{e:#}");
        fake.join().unwrap();
    }

    #[test]
    fn the_store_bounds_its_bytes_and_connections() {
        let server = Server::start("127.0.0.1", 0, 2, Duration::from_secs(5), None).unwrap();
        let port = server.addr().port();
        let mut a = Client::connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
        let value = vec![7u8; 400 << 10];
        let mut refused = None;
        for i in 0..200 {
            if let Err(e) = a.set(&format!("k{i}"), &value) {
                refused = Some((i, format!("{e:#}")));
                break;
            }
        }
        let (i, e) = refused.expect("the store took 80 MB");
        assert!(e.contains("the store is full"), "{e}");
        assert_eq!(
            i,
            MAX_STORED_BYTES / (value.len() + 4),
            "refused at the {i}th value"
        );
        // Replacing a value does not count twice.
        a.set("k0", &value).unwrap();
        // Connections: the ranks' two each and 16 spare; beyond that, refused at once.
        let cap = 2 * 2 + SPARE_CONNECTIONS;
        let held: Vec<TcpStream> = (0..cap + 5)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let mut refusals = 0;
        for s in &held {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let first = read_line(&mut r).unwrap().unwrap_or_default();
            if first.starts_with("ERR ") {
                assert!(first.contains("limit"), "{first}");
                refusals += 1;
            }
        }
        // `a` holds one of the places.
        assert_eq!(refusals, 6);
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        Client::connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
    }

    #[test]
    fn a_port_in_use_says_so() {
        let first = Server::start("127.0.0.1", 0, 2, Duration::from_secs(1), None).unwrap();
        let e = Server::start(
            "127.0.0.1",
            first.addr().port(),
            2,
            Duration::from_secs(1),
            None,
        )
        .err()
        .unwrap();
        let e = format!("{e:#}");
        assert!(e.contains("is in use on this machine"), "{e}");
    }

    #[test]
    fn nobody_listening_times_out_with_a_message() {
        // A port that was just free: bind, note, drop.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = Client::connect("127.0.0.1", port, Duration::from_millis(300), None)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("did not answer within"), "{e:#}");
    }
}
