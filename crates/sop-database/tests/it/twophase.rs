//! Two-phase commit for the application (prepare, then commit or roll back) and commit hooks:
//! phase 2 cannot conflict because no other commit passes the gate in between; a prepared
//! transaction that is rolled back, dropped or too slow gives the gate back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sop_core::{Error, StoreOptions};
use sop_database::{Database, TxMode};
use sop_txn::TxOptions;

async fn setup(db: &Database) {
    let tx = db.begin(TxMode::ForWriting);
    let mut t = db
        .new_btree::<u32, i64>(&tx, &StoreOptions::new("a"))
        .unwrap();
    for k in 0..10 {
        t.add(k, 0).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn value(db: &Database, k: u32) -> Option<i64> {
    let tx = db.begin(TxMode::ForReading);
    let t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
    t.get(&k).await.unwrap()
}

#[test]
fn prepare_then_commit_and_hooks_run_once_for_the_outcome() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        setup(&db).await;
        let (committed, rolled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tx = db.begin(TxMode::ForWriting);
        let (c, r) = (committed.clone(), rolled.clone());
        tx.on_commit(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        tx.on_rollback(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
        t.update(&1, 100).await.unwrap();
        tx.prepare().await.unwrap();
        // Prepared: reads go on, writes are refused (they would not be in the commit).
        assert_eq!(t.get(&1).await.unwrap(), Some(100));
        let e = t.update(&2, 5).await.unwrap_err();
        assert!(e.to_string().contains("prepared"), "{e}");
        assert_eq!(value(&db, 1).await, Some(0), "not visible before phase 2");
        assert_eq!(committed.load(Ordering::SeqCst), 0);
        tx.commit().await.unwrap();
        assert_eq!(value(&db, 1).await, Some(100));
        drop((t, tx));
        assert_eq!(committed.load(Ordering::SeqCst), 1);
        assert_eq!(rolled.load(Ordering::SeqCst), 0);

        // Rolled back after phase 1: nothing visible, the rollback hook runs, the gate is free.
        let tx = db.begin(TxMode::ForWriting);
        let r = rolled.clone();
        tx.on_rollback(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
        t.update(&1, 7).await.unwrap();
        tx.prepare().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(rolled.load(Ordering::SeqCst), 1);
        assert_eq!(value(&db, 1).await, Some(100));
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
        t.update(&3, 3).await.unwrap();
        tx.commit().await.unwrap();

        // Dropped while prepared: a rollback too, the gate given back.
        {
            let tx = db.begin(TxMode::ForWriting);
            let r = rolled.clone();
            tx.on_rollback(move || {
                r.fetch_add(1, Ordering::SeqCst);
            });
            let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
            t.update(&4, 4).await.unwrap();
            tx.prepare().await.unwrap();
        }
        assert_eq!(rolled.load(Ordering::SeqCst), 2);
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
        t.update(&5, 5).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            (value(&db, 4).await, value(&db, 5).await),
            (Some(0), Some(5))
        );
        assert!(db.verify(false).await.unwrap().is_clean());
    });
}

#[test]
fn while_one_is_prepared_other_commits_wait_and_its_phase_2_cannot_conflict() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::standalone(dir.path()).unwrap());
        setup(&db).await;
        let a = db.begin(TxMode::ForWriting);
        let mut ta = db.open_btree::<u32, i64>(&a, "a").unwrap();
        ta.update(&1, 10).await.unwrap();
        a.prepare().await.unwrap();

        // B changes the very item A changed: it cannot pass the gate while A is prepared.
        let other = Arc::clone(&db);
        let b = tokio::spawn(async move {
            let tx = other.begin(TxMode::ForWriting);
            let mut t = other.open_btree::<u32, i64>(&tx, "a").unwrap();
            t.update(&1, 20).await.unwrap();
            t.update(&2, 20).await.unwrap();
            tx.commit().await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !b.is_finished(),
            "a commit passed the gate of a prepared transaction"
        );
        a.commit().await.unwrap();
        // Then B goes on: its read of item 1 is stale, so it conflicts (A's value stays).
        let r = b.await.unwrap();
        assert!(
            matches!(
                r,
                Err(Error::Transaction(
                    sop_core::TransactionError::Conflict { .. }
                ))
            ),
            "{r:?}"
        );
        assert_eq!(value(&db, 1).await, Some(10));
        assert_eq!(value(&db, 2).await, Some(0));
    });
}

#[test]
fn a_prepared_transaction_past_its_time_loses_the_gate_and_fails_phase_2() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        setup(&db).await;
        let a =
            db.begin_with(TxOptions::new(TxMode::ForWriting).max_time(Duration::from_millis(300)));
        let mut ta = db.open_btree::<u32, i64>(&a, "a").unwrap();
        ta.update(&1, 10).await.unwrap();
        a.prepare().await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Another commit takes the gate back ...
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
        t.update(&2, 2).await.unwrap();
        tx.commit().await.unwrap();
        // ... and A's phase 2 says it timed out; nothing of A is visible.
        let e = a.commit().await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Transaction(sop_core::TransactionError::Timeout { .. })
            ),
            "{e}"
        );
        assert_eq!(
            (value(&db, 1).await, value(&db, 2).await),
            (Some(0), Some(2))
        );
        assert!(db.verify(false).await.unwrap().is_clean());
    });
}

#[test]
fn a_committed_prepared_transaction_survives_reopen() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::standalone(dir.path()).unwrap();
            setup(&db).await;
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
            t.add(100, 1).await.unwrap();
            tx.prepare().await.unwrap();
            tx.commit().await.unwrap();
            // Prepared and then abandoned: never durable.
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, i64>(&tx, "a").unwrap();
            t.add(200, 1).await.unwrap();
            tx.prepare().await.unwrap();
        }
        let db = Database::standalone(dir.path()).unwrap();
        assert_eq!(value(&db, 100).await, Some(1));
        assert_eq!(value(&db, 200).await, None);
        assert!(db.verify(false).await.unwrap().is_clean());
    });
}
