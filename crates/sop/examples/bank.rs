//! The bank workload of the clustered deployment: several copies of this program share one
//! store folder and one Redis, each moving money between accounts in transactions.
//!
//! ```sh
//! SOP_DB=/data/bank SOP_REDIS=redis://127.0.0.1:6379 SOP_TRANSFERS=1000 \
//!     cargo run --release --example bank
//! ```
//! Every copy creates the stores if they are missing, runs its transfers with retries, then
//! prints the total (which must never change) and how many transfers the audit log holds.

use std::time::{Duration, Instant};

use sop::{Database, Error, StoreOptions, TxMode, Uuid};

const ACCOUNTS: u32 = 100;
const START: i64 = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::var("SOP_DB").unwrap_or_else(|_| "/data/bank".into());
    let url = std::env::var("SOP_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let transfers: usize = std::env::var("SOP_TRANSFERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let db = loop {
        match Database::clustered(&path, &url).await {
            Ok(db) => break db,
            Err(e @ Error::Coordination(sop::CoordinationError::Redis { .. })) => {
                eprintln!("waiting for redis: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    // First one in creates the stores; the others see them (or lose the race and open them).
    let setup = db
        .run(TxMode::ForWriting, 20, |tx| {
            let db = &db;
            async move {
                if db.stores()?.iter().any(|s| s == "accounts") {
                    return Ok(());
                }
                let mut acc = db.new_btree::<u32, i64>(&tx, &StoreOptions::new("accounts"))?;
                for a in 0..ACCOUNTS {
                    acc.add(a, START).await?;
                }
                db.new_btree::<Uuid, (u32, u32, i64)>(&tx, &StoreOptions::new("audit"))?;
                Ok(())
            }
        })
        .await;
    match setup {
        Ok(()) | Err(Error::Usage(sop::UsageError::StoreExists { .. })) => {}
        Err(e) => return Err(e.into()),
    }

    let t = Instant::now();
    let mut seed = u64::from(std::process::id()) | 1;
    for _ in 0..transfers {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (from, to) = (
            (seed % u64::from(ACCOUNTS)) as u32,
            ((seed >> 20) % u64::from(ACCOUNTS)) as u32,
        );
        let amount = ((seed >> 40) % 50) as i64 + 1;
        if from == to {
            continue;
        }
        let id = Uuid::new_v4();
        loop {
            let r = db
                .run(TxMode::ForWriting, 100, |tx| {
                    let db = &db;
                    async move {
                        let mut audit = db.open_btree::<Uuid, (u32, u32, i64)>(&tx, "audit")?;
                        if audit.contains_key(&id).await? {
                            return Ok(());
                        }
                        let mut acc = db.open_btree::<u32, i64>(&tx, "accounts")?;
                        let a = acc.get(&from).await?.unwrap_or(0);
                        let b = acc.get(&to).await?.unwrap_or(0);
                        acc.update(&from, a - amount).await?;
                        acc.update(&to, b + amount).await?;
                        audit.add(id, (from, to, amount)).await?;
                        Ok(())
                    }
                })
                .await;
            match r {
                Ok(()) => break,
                // Redis away or busy: nothing was committed; try again.
                Err(
                    Error::Coordination(sop::CoordinationError::Redis { .. })
                    | Error::Transaction(sop::TransactionError::LockBusy { .. })
                    | Error::Transaction(sop::TransactionError::Timeout { .. }),
                ) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let elapsed = t.elapsed();
    let (total, audited) = db
        .run(TxMode::ForReading, 100, |tx| {
            let db = &db;
            async move {
                let acc = db.open_btree::<u32, i64>(&tx, "accounts")?;
                let audit = db.open_btree::<Uuid, (u32, u32, i64)>(&tx, "audit")?;
                let total: i64 = acc.range(..).collect().await?.iter().map(|i| i.value).sum();
                Ok((total, audit.count()?))
            }
        })
        .await?;
    println!(
        "pid {}: {transfers} transfers in {:.1} s; total {total} (expected {}); {audited} transfers audited",
        std::process::id(),
        elapsed.as_secs_f64(),
        i64::from(ACCOUNTS) * START
    );
    anyhow::ensure!(total == i64::from(ACCOUNTS) * START, "the total changed");
    Ok(())
}
