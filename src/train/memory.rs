//! How much memory a training run will hold, computed from the network DAG before anything is
//! allocated, and the limit it is checked against.
//!
//! The figure models what the CPU trainer keeps (see [`crate::autodiff`] and
//! [`crate::model::Model::walk`]): every activation of the forward pass stays alive until the
//! reverse pass has used it (convolutions and batch norms keep their inputs, so nothing is
//! freed early in training), a ReLU keeps a byte of mask per element, a max pool a `u32` index
//! per output, and a concatenation is a list of its inputs' buffers (no copy); the reverse
//! pass frees each op's saved state as it runs, so it adds little beyond the gradient an op
//! reads and the one it writes (counted as twice the largest activation);
//! the parameters are held as weights, gradients, the optimiser's state (one buffer for SGD with
//! momentum, two for Adam) and one serialised copy while a checkpoint is written. The
//! images are kept as bytes. `tests/memory_estimate.rs` holds the estimate against the peak
//! resident memory measured on several networks: the peak lies between 0.45 and 1.05 times
//! the estimate (measured 0.53 for ResNet-20 to 0.85 for DenseNet-BC-100 on a 2-core Linux VM).

use anyhow::{bail, Result};
use petgraph::graph::NodeIndex;
use petgraph::Direction;
use sparsenet_net::dag::NetGraph;
use sparsenet_net::Op;

use crate::optim::Optimizer;

/// Bytes of one trained value (`f32`).
const VALUE_BYTES: u64 = 4;

/// What the process holds besides the network: the binary, thread stacks, the allocator's
/// arenas, the progress bar, the batch being assembled (measured: 30–60 MB on Linux).
pub const BASELINE_BYTES: u64 = 64 << 20;

/// The memory a training run will hold, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryEstimate {
    /// Trainable parameters.
    pub params: u64,
    /// Weights, gradients, optimiser state and a checkpoint's serialised copy.
    pub parameter_bytes: u64,
    /// Activations and saved state of one batch's forward pass.
    pub activation_bytes: u64,
    /// What the reverse pass holds beyond the activations: an op's output and input gradients.
    pub gradient_bytes: u64,
    /// The images of both splits (bytes), and the process's own baseline.
    pub other_bytes: u64,
    /// The sum.
    pub total_bytes: u64,
}

/// The estimate for training `net` at `batch` images per step with `optimizer`, with
/// `data_bytes` of images in memory. Counts are exact `u128`s saturated to `u64`, so no network
/// overflows them.
pub fn estimate(
    net: &NetGraph,
    batch: usize,
    optimizer: Optimizer,
    data_bytes: u64,
) -> MemoryEstimate {
    let batch = batch as u128;
    let mut per_image: u128 = 0;
    let mut largest: u128 = 0;
    let mut params: u128 = 0;
    let v = VALUE_BYTES as u128;
    for idx in net.order() {
        let node = &net.graph[idx];
        params += node
            .op
            .params()
            .iter()
            .map(|p| p.numel() as u128)
            .sum::<u128>();
        let out = node.shape.numel() as u128;
        largest = largest.max(out * v);
        per_image += match node.op {
            // A batch norm whose only reader is a ReLU writes the ReLU's buffer (the
            // interpreter fuses them), and that ReLU keeps no mask.
            Op::BatchNorm { .. } if fused_with_relu(net, idx) => 0,
            Op::Relu if after_fused_norm(net, idx) => out * v,
            Op::Relu => out * (v + 1),
            Op::MaxPool { .. } => out * 2 * v,
            // A concatenation is a list of its inputs' buffers, not a copy.
            Op::Concat => 0,
            // A maximum keeps its output and one ReLU mask per input after the first (the
            // fold of `autodiff::ops::combine::max`).
            Op::Max => {
                let inputs = net
                    .graph
                    .neighbors_directed(idx, petgraph::Direction::Incoming)
                    .count() as u128;
                out * (v + inputs.saturating_sub(1))
            }
            _ => out * v,
        };
    }
    let buffers: u128 = match optimizer {
        // weights, gradients, momentum, one serialised copy
        Optimizer::Sgd => 4,
        // weights, gradients, two moments, one serialised copy
        Optimizer::Adam => 5,
    };
    let sat = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    let parameter_bytes = sat(params * buffers * VALUE_BYTES as u128);
    let activation_bytes = sat(per_image * batch);
    // The reverse pass frees each op's saved state as it goes, so beyond the activations it
    // holds little more than the gradient it reads and the one it writes.
    let gradient_bytes = sat(2 * largest * batch);
    let other_bytes = data_bytes.saturating_add(BASELINE_BYTES);
    MemoryEstimate {
        params: sat(params),
        parameter_bytes,
        activation_bytes,
        gradient_bytes,
        other_bytes,
        total_bytes: parameter_bytes
            .saturating_add(activation_bytes)
            .saturating_add(gradient_bytes)
            .saturating_add(other_bytes),
    }
}

/// A batch norm whose only reader is a ReLU (as [`crate::model::Model`] decides).
fn fused_with_relu(net: &NetGraph, idx: NodeIndex) -> bool {
    let mut readers = net.graph.neighbors_directed(idx, Direction::Outgoing);
    match (readers.next(), readers.next()) {
        (Some(r), None) => net.graph[r].op == Op::Relu,
        _ => false,
    }
}

/// A ReLU computed fused with the batch norm before it.
fn after_fused_norm(net: &NetGraph, idx: NodeIndex) -> bool {
    net.inputs(idx).first().is_some_and(|&s| {
        matches!(net.graph[s].op, Op::BatchNorm { .. }) && fused_with_relu(net, s)
    })
}

impl MemoryEstimate {
    /// `3.2 GB (activations 1.1 GB, gradients 1.1 GB, parameters 0.9 GB)`.
    pub fn describe(&self) -> String {
        format!(
            "{} (activations {}, reverse pass {}, parameters {} for {} weights)",
            human_bytes(self.total_bytes),
            human_bytes(self.activation_bytes),
            human_bytes(self.gradient_bytes),
            human_bytes(self.parameter_bytes),
            self.params
        )
    }
}

/// The limit a run is checked against and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    /// Bytes.
    pub bytes: u64,
    /// `--max-memory`, or which of the machine's limits is the smallest.
    pub source: String,
}

/// The limit: `max_memory` when given, else the smallest of the machine's available memory
/// (`MemAvailable`), the address-space limit (`ulimit -v`) and the cgroup's `memory.max`; None
/// where none of them can be read (then nothing is refused).
pub fn limit(max_memory: Option<u64>) -> Option<MemoryLimit> {
    if let Some(bytes) = max_memory {
        return Some(MemoryLimit {
            bytes,
            source: "--max-memory".into(),
        });
    }
    let mut found: Vec<(u64, &str)> = Vec::new();
    if let Some(b) = mem_available() {
        found.push((b, "the machine's available memory"));
    }
    if let Some(b) = address_space_limit() {
        found.push((b, "the address-space limit (ulimit -v)"));
    }
    if let Some(b) = cgroup_limit() {
        found.push((b, "the cgroup's memory.max"));
    }
    found
        .into_iter()
        .min_by_key(|&(b, _)| b)
        .map(|(bytes, source)| MemoryLimit {
            bytes,
            source: source.into(),
        })
}

/// Refuse (bad input, one line) an estimate over the limit.
pub fn check(
    what: &str,
    est: &MemoryEstimate,
    batch: usize,
    limit: Option<&MemoryLimit>,
) -> Result<()> {
    let Some(l) = limit else { return Ok(()) };
    if est.total_bytes > l.bytes {
        bail!(
            "training {what} at batch {batch} needs about {}, over the limit of {} ({}): use a smaller --batch-size or network, or --max-memory SIZE to set the limit yourself",
            est.describe(),
            human_bytes(l.bytes),
            l.source,
        );
    }
    Ok(())
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn address_space_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct through a valid pointer and has no other effect.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0;
    (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
}

fn cgroup_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    text.trim().parse().ok()
}

/// The peak resident memory of this process so far (`VmHWM`), where the system reports it.
pub fn peak_resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A byte count for people: `812 MB`, `3.2 GB`, `1.5 TB` (decimal units).
pub fn human_bytes(b: u64) -> String {
    let v = b as f64;
    if v >= 1e12 {
        format!("{:.1} TB", v / 1e12)
    } else if v >= 1e9 {
        format!("{:.1} GB", v / 1e9)
    } else {
        format!("{:.0} MB", (v / 1e6).max(1.0))
    }
}

/// Parse a size: a number of bytes, or with a suffix K, M, G, T (powers of 1000; KiB, MiB, GiB,
/// TiB for powers of 1024), e.g. `16G`, `1.5T`, `800MiB`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let scale: f64 = match unit.trim_end_matches('b') {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        "ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => f64::NAN,
    };
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    let bytes = v * scale;
    if !bytes.is_finite() || !(1e6..=1e18).contains(&bytes) {
        return Err(format!(
            "memory size '{s}' is not allowed: give bytes with a unit, from 1M to 1000000T, e.g. 16G, 1.5T or 800MiB"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_bad_ones_are_refused() {
        assert_eq!(parse_size("16G"), Ok(16_000_000_000));
        assert_eq!(parse_size("1.5T"), Ok(1_500_000_000_000));
        assert_eq!(parse_size("800MiB"), Ok(800 * 1024 * 1024));
        assert_eq!(parse_size("2gb"), Ok(2_000_000_000));
        assert_eq!(parse_size("3000000"), Ok(3_000_000));
        for bad in ["", "G", "-1G", "12X", "1e3G", "0", "1K", "NaN"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bytes_read_for_people() {
        assert_eq!(human_bytes(812_000_000), "812 MB");
        assert_eq!(human_bytes(3_240_000_000), "3.2 GB");
        assert_eq!(human_bytes(1_500_000_000_000), "1.5 TB");
    }

    #[test]
    fn the_estimate_counts_each_part_by_hand() {
        // A linear layer over a 1×2×2 input to 3 classes: params 4·3 + 3 = 15; activations per
        // image: input 4 values, output 3 values → 7 · 4 bytes; the largest is the input's 16.
        let mut b = sparsenet_net::dag::NetBuilder::new(sparsenet_net::Shape::new(1, 2, 2));
        let fc = b.linear("fc", b.input(), 3);
        let net = b.finish(fc);
        let e = estimate(&net, 10, Optimizer::Sgd, 1000);
        assert_eq!(e.params, 15);
        assert_eq!(e.parameter_bytes, 15 * 4 * 4);
        assert_eq!(e.activation_bytes, 7 * 4 * 10);
        assert_eq!(e.gradient_bytes, 2 * 16 * 10);
        assert_eq!(e.other_bytes, 1000 + BASELINE_BYTES);
        assert_eq!(e.total_bytes, 15 * 16 + 280 + 320 + 1000 + BASELINE_BYTES);
        assert_eq!(
            estimate(&net, 10, Optimizer::Adam, 0).parameter_bytes,
            15 * 5 * 4
        );
    }

    #[test]
    fn an_estimate_over_the_limit_is_refused_in_one_line() {
        let e = MemoryEstimate {
            params: 1,
            parameter_bytes: 1,
            activation_bytes: 5_000_000_000,
            gradient_bytes: 5_000_000_000,
            other_bytes: 0,
            total_bytes: 10_000_000_001,
        };
        let l = MemoryLimit {
            bytes: 8_000_000_000,
            source: "--max-memory".into(),
        };
        let err = check("x", &e, 64, Some(&l)).unwrap_err().to_string();
        assert!(!err.contains('\n'));
        assert!(
            err.contains("10.0 GB") && err.contains("8.0 GB") && err.contains("--max-memory"),
            "{err}"
        );
        assert!(check("x", &e, 64, None).is_ok());
        let big = MemoryLimit {
            bytes: u64::MAX,
            source: "s".into(),
        };
        assert!(check("x", &e, 64, Some(&big)).is_ok());
    }
}
