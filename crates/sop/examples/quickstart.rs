//! Quickstart: load, read, scan, update and remove 100,000 items, with timings.
//!
//! Today this runs on the in-memory B-tree engine; when the standalone on-disk database lands it
//! runs on a temporary folder and reopens it to show durability.

use std::time::Instant;

use sop::{MemBTree, StoreOptions};

const N: u64 = 100_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut tree = MemBTree::<u64, String>::in_memory(&StoreOptions::new("quickstart"))?;

    let t = Instant::now();
    for i in 0..N {
        // Spread keys so inserts land all over the tree.
        tree.add(
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16,
            format!("value {i}"),
        )
        .await?;
    }
    report("load", N, t);

    let t = Instant::now();
    let mut found = 0;
    for i in 0..N {
        if tree
            .get(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16))
            .await?
            .is_some()
        {
            found += 1;
        }
    }
    report("point reads", N, t);
    anyhow::ensure!(found == N, "found {found} of {N}");

    let t = Instant::now();
    let mut scanned = 0u64;
    let mut range = tree.range(..);
    while range.next().await?.is_some() {
        scanned += 1;
    }
    report("full scan", scanned, t);

    let t = Instant::now();
    let mut updated = 0u64;
    tree.first().await?;
    while tree.current_key().is_some() {
        if updated.is_multiple_of(2) {
            tree.update_current_value(format!("updated {updated}"))
                .await?;
        }
        updated += 1;
        tree.next().await?;
    }
    report("walk + update half", updated, t);

    let t = Instant::now();
    let keys: Vec<u64> = (0..N / 2)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16)
        .collect();
    for k in &keys {
        anyhow::ensure!(tree.remove(k).await?, "key {k} missing");
    }
    report("remove half", N / 2, t);

    let stats = tree.check().await?;
    println!(
        "tree: {} items, {} nodes, depth {}, {:.0}% full; invariants hold",
        stats.items, stats.nodes, stats.depth, stats.fill_percent
    );
    anyhow::ensure!(
        tree.count() == N / 2,
        "count {} after removing half",
        tree.count()
    );
    Ok(())
}

fn report(what: &str, n: u64, since: Instant) {
    let secs = since.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a rate for people")]
    let rate = n as f64 / secs;
    println!(
        "{what:>20}: {n:>7} items in {:>8.1} ms ({rate:>10.0}/s)",
        secs * 1e3
    );
}
