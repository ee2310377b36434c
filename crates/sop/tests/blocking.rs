//! The blocking API from plain threads (no runtime of the test's), and the async API driven by
//! an executor that is not tokio's: both must work under contention, never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sop::{StoreOptions, TableDefinition, TxMode};

const ACCOUNTS: TableDefinition<u32, i64> = TableDefinition::new("accounts");
const N: u32 = 20;
const START: i64 = 1_000;

#[test]
fn eight_plain_threads_transfer_with_retries_and_conserve_the_total() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(sop::blocking::Database::standalone(dir.path()).unwrap());
    let tx = db.begin(TxMode::ForWriting);
    let mut a = tx.open_table(&ACCOUNTS).unwrap();
    for id in 0..N {
        a.add(id, START).unwrap();
    }
    tx.commit().unwrap();

    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..40u32 {
                    // Few accounts, many threads: conflicts are the rule.
                    let from = (t * 7 + i) % N;
                    let to = (from + 1 + i % 3) % N;
                    db.run(TxMode::ForWriting, 1000, |tx| {
                        let mut a = tx.open_table(&ACCOUNTS)?;
                        let f = a.get(&from)?.expect("account");
                        let g = a.get(&to)?.expect("account");
                        a.update(&from, f - 5)?;
                        a.update(&to, g + 5)?;
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    let tx = db.begin(TxMode::ForReading);
    let a = tx.open_table(&ACCOUNTS).unwrap();
    let balances: Vec<i64> = a.iter().map(|it| it.unwrap().value).collect();
    assert_eq!(balances.len(), N as usize);
    assert_eq!(balances.iter().sum::<i64>(), i64::from(N) * START);
    assert!(balances.iter().any(|b| *b != START), "no transfer happened");
    let back: Vec<u32> = a.range(..).rev().map(|it| it.unwrap().key).collect();
    assert_eq!(back, (0..N).rev().collect::<Vec<_>>());
    tx.commit().unwrap();
}

#[test]
fn the_blocking_api_inside_an_async_runtime_is_a_typed_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = sop::blocking::Database::standalone(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let tx = db.begin(TxMode::ForWriting);
        let mut t = tx.new_btree::<u32, u32>(&StoreOptions::new("t")).unwrap();
        let e = t.add(1, 1).unwrap_err();
        assert!(
            matches!(e, sop::Error::Usage(sop::UsageError::InvalidConfig { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("async API"), "{e}");
    });
    // Dropped inside no runtime afterwards: fine.
    drop(db);
}

/// A minimal executor with no tokio context, as an application's own would be.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn the_async_api_under_another_executor_works_under_contention() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(sop::Database::standalone(dir.path()).unwrap());
    block_on(async {
        let tx = db.begin(TxMode::ForWriting);
        let mut a = db.open_table(&tx, &ACCOUNTS).unwrap();
        for id in 0..4 {
            a.add(id, START).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                block_on(async {
                    for i in 0..25u32 {
                        let (from, to) = ((t + i) % 4, (t + i + 1) % 4);
                        db.run(TxMode::ForWriting, 1000, |tx| {
                            let db = &db;
                            async move {
                                let mut a = db.open_table(&tx, &ACCOUNTS)?;
                                let f = a.get(&from).await?.unwrap_or(0);
                                let g = a.get(&to).await?.unwrap_or(0);
                                a.update(&from, f - 1).await?;
                                a.update(&to, g + 1).await?;
                                Ok(())
                            }
                        })
                        .await
                        .unwrap();
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    block_on(async {
        let tx = db.begin(TxMode::ForReading);
        let a = db.open_table(&tx, &ACCOUNTS).unwrap();
        let total: i64 = a
            .range(..)
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|it| it.value)
            .sum();
        assert_eq!(total, 4 * START);
    });
}

#[test]
fn clustered_mode_without_a_tokio_runtime_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = block_on(sop::Database::clustered(dir.path(), "redis://127.0.0.1:1")).unwrap_err();
    assert!(
        matches!(e, sop::Error::Usage(sop::UsageError::InvalidConfig { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("sop::blocking"), "{e}");
}
