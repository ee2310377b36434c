//! Quickstart: a standalone database in a temporary folder. Loads 100,000 items in a few
//! transactions, reads, scans, updates and removes them, reopens the folder to show that what was
//! committed is still there, and prints counts and timings.

use std::time::Instant;

use sop::{Database, StoreOptions, TxMode};

const N: u64 = 100_000;
const BATCH: u64 = 25_000;

fn key(i: u64) -> u64 {
    // Spread keys so inserts land all over the tree.
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!("standalone database in {}", dir.path().display());
    let db = Database::standalone(dir.path())?;

    let t = Instant::now();
    for start in (0..N).step_by(BATCH as usize) {
        let tx = db.begin(TxMode::ForWriting);
        let mut items = if start == 0 {
            db.new_btree::<u64, String>(&tx, &StoreOptions::new("items"))?
        } else {
            db.open_btree::<u64, String>(&tx, "items")?
        };
        for i in start..start + BATCH {
            items.add(key(i), format!("value {i}")).await?;
        }
        tx.commit().await?;
    }
    report("load (4 transactions)", N, t);

    let t = Instant::now();
    let tx = db.begin(TxMode::ForReading);
    let items = db.open_btree::<u64, String>(&tx, "items")?;
    let mut found = 0;
    for i in 0..N {
        if items.get(&key(i)).await?.is_some() {
            found += 1;
        }
    }
    tx.commit().await?;
    report("point reads", N, t);
    anyhow::ensure!(found == N, "found {found} of {N}");

    let t = Instant::now();
    let tx = db.begin(TxMode::ForReading);
    let items = db.open_btree::<u64, String>(&tx, "items")?;
    let scanned = items.range(..).collect().await?.len() as u64;
    tx.commit().await?;
    report("full scan", scanned, t);

    let t = Instant::now();
    let tx = db.begin(TxMode::ForWriting);
    let mut items = db.open_btree::<u64, String>(&tx, "items")?;
    for i in (0..N).step_by(10) {
        items.update(&key(i), format!("updated {i}")).await?;
    }
    tx.commit().await?;
    report("update every 10th", N / 10, t);

    let t = Instant::now();
    let tx = db.begin(TxMode::ForWriting);
    let mut items = db.open_btree::<u64, String>(&tx, "items")?;
    for i in (0..N).filter(|i| i % 2 == 1) {
        items.remove(&key(i)).await?;
    }
    tx.commit().await?;
    report("remove half", N / 2, t);

    let t = Instant::now();
    drop(db);
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForReading);
    let items = db.open_btree::<u64, String>(&tx, "items")?;
    let count = items.count()?;
    let check = items.check().await?;
    let sample = items.get(&key(10)).await?;
    tx.commit().await?;
    report("reopen + check", count, t);
    anyhow::ensure!(
        count == N / 2,
        "{count} items after reopening, expected {}",
        N / 2
    );
    anyhow::ensure!(sample.as_deref() == Some("updated 10"), "{sample:?}");
    println!(
        "after reopen: {count} items, depth {}, {} nodes, {:.0}% full; item 10 = {:?}",
        check.depth,
        check.nodes,
        check.fill_percent,
        sample.unwrap_or_default()
    );
    Ok(())
}

fn report(what: &str, n: u64, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{what:<24} {n:>7} items in {:>8.1} ms ({:>10.0} items/s)",
        secs * 1e3,
        n as f64 / secs.max(1e-9)
    );
}
