//! Helpers shared by the tests.

use std::future::Future;

/// Runs a future to completion on a fresh single-threaded runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// Property-test cases per run: `SOP_PROPTEST_CASES` when set, else 10,000 in release builds and
/// 200 in debug builds (debug runs are for quick feedback, release runs are the real check).
pub fn cases() -> u32 {
    std::env::var("SOP_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 200 } else { 10_000 })
}
