//! What the hand-rolled bench binaries share: their positional arguments and thread pool.

/// Positional arguments (`cargo bench` passes `--bench` and such flags first; they are dropped).
pub struct Args(Vec<String>);

impl Args {
    /// The process's positional arguments.
    pub fn from_env() -> Self {
        Args(
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with("--"))
                .collect(),
        )
    }

    /// Argument `i` as text, or `default`.
    pub fn text(&self, i: usize, default: &str) -> String {
        self.0.get(i).cloned().unwrap_or_else(|| default.into())
    }

    /// Argument `i` as a number, or `default`.
    pub fn number(&self, i: usize, default: usize) -> usize {
        self.0
            .get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }
}

/// Set the global rayon pool to `threads` threads.
pub fn threads(threads: usize) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("thread pool");
}

/// With `SPARSENET_PROFILE` set, print the seconds per op (the process's table, as
/// `sparsenet::profile` keeps it) divided by `runs`, scaled by `scale` and labelled `unit`, to
/// stderr.
pub fn print_profile(runs: usize, scale: f64, unit: &str) {
    if sparsenet::profile::enabled() {
        for (k, v) in sparsenet::profile::report() {
            eprintln!("{k:>26} {:8.3} {unit}", v / runs as f64 * scale);
        }
    }
}
