//! Seconds spent per op, when the environment variable `SPARSENET_PROFILE` is set (read once).
//! One table for the process: a pass may run on any of the pool's threads.
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

static ENABLED: OnceLock<bool> = OnceLock::new();

static TIMES: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());

fn times() -> std::sync::MutexGuard<'static, BTreeMap<String, f64>> {
    TIMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether profiling is on.
pub fn enabled() -> bool {
    *ENABLED.get_or_init(|| std::env::var_os("SPARSENET_PROFILE").is_some())
}

/// Add `secs` to `key`.
pub fn add(key: &str, secs: f64) {
    *times().entry(key.to_string()).or_insert(0.0) += secs;
}

/// The table so far.
pub fn report() -> BTreeMap<String, f64> {
    times().clone()
}

/// Empty the table.
pub fn reset() {
    times().clear();
}
