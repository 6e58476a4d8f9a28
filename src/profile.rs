//! Seconds spent per op, when the environment variable `SPARSENET_PROFILE` is set (read once).
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

static ENABLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    static TIMES: RefCell<BTreeMap<String, f64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Whether profiling is on.
pub fn enabled() -> bool {
    *ENABLED.get_or_init(|| std::env::var_os("SPARSENET_PROFILE").is_some())
}

/// Add `secs` to `key` (this thread's table: forward and backward run on the caller's thread).
pub fn add(key: &str, secs: f64) {
    TIMES.with(|t| *t.borrow_mut().entry(key.to_string()).or_insert(0.0) += secs);
}

/// This thread's table so far.
pub fn report() -> BTreeMap<String, f64> {
    TIMES.with(|t| t.borrow().clone())
}

/// Empty this thread's table.
pub fn reset() {
    TIMES.with(|t| t.borrow_mut().clear());
}
