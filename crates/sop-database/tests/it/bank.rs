//! Concurrency in one process: tasks move money between accounts with retried transactions;
//! the total is conserved and every committed transfer is in the audit tree, exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sop_core::Uuid;
use sop_database::{Database, TxMode};

use crate::support::{ACCOUNTS, START};

fn transfers() -> usize {
    std::env::var("SOP_BANK_TRANSFERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn concurrent_transfers_conserve_the_total_and_are_all_audited() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::standalone(dir.path()).unwrap());
        crate::support::create_bank(&db).await;
        // Transactions keep no leaf they do not change (handles only): validation of leaves
        // held that way runs under contention here; every other test keeps the default.
        db.engine().set_keep_leaf_bytes(0);

        let tasks = 8;
        let per_task = transfers() / tasks;
        let retries = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for t in 0..tasks {
            let db = Arc::clone(&db);
            let retries = Arc::clone(&retries);
            handles.push(tokio::spawn(async move {
                let mut done = Vec::new();
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                for _ in 0..per_task {
                    let Some((from, to, amount)) = crate::support::next_transfer(&mut seed) else {
                        continue;
                    };
                    let id = Uuid::new_v4();
                    let attempts = crate::support::transfer(&db, 200, (id, from, to, amount))
                        .await
                        .unwrap();
                    retries.fetch_add(attempts - 1, Ordering::Relaxed);
                    done.push((id, (from, to, amount)));
                }
                done
            }));
        }
        // Readers sum every balance in read-only transactions while the transfers run: each one
        // whose commit succeeds saw one consistent state, so its sum is the total.
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (db, running) = (Arc::clone(&db), Arc::clone(&running));
                tokio::spawn(async move {
                    let mut consistent = 0u64;
                    while running.load(Ordering::Relaxed) {
                        let sum = db
                            .run(TxMode::ForReading, 1000, |tx| {
                                let db = Arc::clone(&db);
                                async move {
                                    let acc = db.open_btree::<u32, i64>(&tx, "accounts")?;
                                    let items = acc.range(..).collect().await?;
                                    Ok(items.iter().map(|i| i.value).sum::<i64>())
                                }
                            })
                            .await
                            .unwrap();
                        assert_eq!(sum, i64::from(ACCOUNTS) * START, "a reader saw money move");
                        consistent += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    consistent
                })
            })
            .collect();
        let mut committed = Vec::new();
        for h in handles {
            committed.extend(h.await.unwrap());
        }
        running.store(false, Ordering::Relaxed);
        let mut reads = 0;
        for r in readers {
            reads += r.await.unwrap();
        }
        assert!(reads > 0);

        // Total, audit = exactly the committed transfers, balances = audit replay, trees valid.
        let ids: std::collections::BTreeSet<Uuid> = committed.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), committed.len());
        let audited = crate::support::assert_bank(&db, &ids).await;
        assert_eq!(
            audited,
            committed.len(),
            "the audit holds transfers nobody committed"
        );
        eprintln!(
            "{} transfers committed by {tasks} tasks, {} retries; {reads} consistent reads",
            committed.len(),
            retries.load(Ordering::Relaxed)
        );
    });
}
