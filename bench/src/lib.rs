//! Side-by-side benchmarks of sop-rs and the engines a Rust user would pick instead.
//!
//! Every engine implements [`Kv`], a plain byte-key/byte-value interface with the transaction
//! shapes the workloads need; every write call is one transaction, durable (fsynced) when it
//! returns, on every engine. `bench` runs redb's published workload over all of them; `ycsb`
//! runs the YCSB core workloads.

pub mod engines;
pub mod rng;
pub mod ycsb;

use anyhow::Result;

/// A key-value engine under test. Each call is one transaction.
pub trait Kv: Send + Sync {
    /// How a commit is made durable, for the report.
    fn durability(&self) -> &'static str;
    /// Inserts (or overwrites) every pair in one durable transaction.
    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()>;
    /// Removes every key in one durable transaction.
    fn remove(&self, keys: &[Vec<u8>]) -> Result<()>;
    /// Reads every key in one read transaction; returns the bytes of the values found.
    fn get(&self, keys: &[Vec<u8>]) -> Result<usize>;
    /// For each start key, reads up to `len` items from it onward, all in one read
    /// transaction; returns the items read.
    fn scan(&self, starts: &[Vec<u8>], len: usize) -> Result<usize>;
}

/// The value after `flag` in `args` (`--n 1000` → `Some("1000")`).
#[must_use]
pub fn flag(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Bytes the folder takes on disk (allocated blocks, so sparse files count what they use).
#[must_use]
pub fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
