//! A full scan holds a few nodes, not the tree, in a read transaction and in a write
//! transaction: the allocator's own count of live bytes, at its peak during a scan of every
//! item, stays within a bound above the node cache. (Release runs,
//! `cargo xtask test`, scan 1,000,000 items; debug runs 100,000.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use sop::{DatabaseOptions, StoreOptions, TxMode};

#[global_allocator]
static ALLOC: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const L1: u64 = 16 << 20;
const BOUND: usize = 64 << 20;

fn items() -> u64 {
    std::env::var("SOP_SCAN_ITEMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        })
}

#[test]
fn a_full_scan_peaks_within_a_bound_above_the_cache() {
    let n = items();
    let dir = tempfile::tempdir().unwrap();
    let options = || DatabaseOptions {
        l1_cache_bytes: L1,
        ..DatabaseOptions::default()
    };
    {
        let db = sop::blocking::Database::open(dir.path(), options()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        tx.new_btree::<u64, Vec<u8>>(&StoreOptions::new("big"))
            .unwrap();
        tx.commit().unwrap();
        for chunk in 0..n.div_ceil(100_000) {
            let tx = db.begin(TxMode::ForWriting);
            let mut t = tx.open_btree::<u64, Vec<u8>>("big").unwrap();
            for k in chunk * 100_000..((chunk + 1) * 100_000).min(n) {
                t.add(k, k.to_le_bytes().repeat(4)).unwrap();
            }
            tx.commit().unwrap();
        }
    }
    // Reopened cold: nothing of the tree is in memory before the scan.
    let db = sop::blocking::Database::open(dir.path(), options()).unwrap();
    let tx = db.begin(TxMode::ForReading);
    let t = tx.open_btree::<u64, Vec<u8>>("big").unwrap();
    ALLOC.reset_peak_memory();
    let mut seen = 0u64;
    for item in t.iter() {
        let item = item.unwrap();
        assert_eq!(item.key, seen);
        assert_eq!(item.value.len(), 32);
        seen += 1;
    }
    assert_eq!(seen, n);
    let peak = ALLOC.get_peak_memory();
    eprintln!(
        "scan of {n} items: peak {:.1} MiB above the start (node cache {} MiB)",
        peak as f64 / f64::from(1 << 20),
        L1 >> 20
    );
    assert!(
        peak < usize::try_from(L1).unwrap() + BOUND,
        "a scan of {n} items peaked at {peak} bytes above its start"
    );
    tx.commit().unwrap();

    // The same scan in a write transaction that then writes: what it read is validated at
    // its commit, yet it holds handles of the leaves, not the leaves.
    let tx = db.begin(TxMode::ForWriting);
    let mut t = tx.open_btree::<u64, Vec<u8>>("big").unwrap();
    ALLOC.reset_peak_memory();
    let mut seen = 0u64;
    for item in t.iter() {
        assert_eq!(item.unwrap().key, seen);
        seen += 1;
    }
    assert_eq!(seen, n);
    t.upsert(n, vec![1; 32]).unwrap();
    tx.commit().unwrap();
    let peak = ALLOC.get_peak_memory();
    eprintln!(
        "scan of {n} items in a write transaction, then its commit: peak {:.1} MiB above the start",
        peak as f64 / f64::from(1 << 20)
    );
    assert!(
        peak < usize::try_from(L1).unwrap() + BOUND,
        "a scan of {n} items in a write transaction peaked at {peak} bytes above its start"
    );
}
