use sop_core::{Error, StoreOptions, ValueDataSize};
use sop_database::{Database, TxMode};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn committed_data_survives_reopen_and_rolled_back_data_never_shows() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::standalone(dir.path()).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db
                .new_btree::<u64, String>(&tx, &StoreOptions::new("t").slot_length(8))
                .unwrap();
            for k in 0..500 {
                assert!(t.add(k, format!("v{k}")).await.unwrap());
            }
            tx.commit().await.unwrap();

            // Rolled back explicitly.
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u64, String>(&tx, "t").unwrap();
            t.add(1000, "no".into()).await.unwrap();
            t.remove(&7).await.unwrap();
            tx.rollback().await.unwrap();

            // Dropped without commit.
            {
                let tx = db.begin(TxMode::ForWriting);
                let mut t = db.open_btree::<u64, String>(&tx, "t").unwrap();
                t.add(1001, "no".into()).await.unwrap();
            }
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u64, String>(&tx, "t").unwrap();
            for k in (0..500).step_by(2) {
                assert!(t.remove(&k).await.unwrap());
            }
            t.update(&1, "one".into()).await.unwrap();
            tx.commit().await.unwrap();
        }
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u64, String>(&tx, "t").unwrap();
        assert_eq!(t.count().unwrap(), 250);
        let items = t.range(..).collect().await.unwrap();
        let keys: Vec<u64> = items.iter().map(|i| i.key).collect();
        assert_eq!(keys, (1..500).step_by(2).collect::<Vec<_>>());
        assert_eq!(t.get(&1).await.unwrap().as_deref(), Some("one"));
        assert_eq!(t.get(&1000).await.unwrap(), None);
        assert_eq!(t.get(&1001).await.unwrap(), None);
        t.check().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.store_info("t").unwrap().unwrap().count, 250);
    });
}

#[test]
fn a_second_open_of_the_folder_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Database::standalone(dir.path()).unwrap();
    let err = Database::standalone(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::Usage(sop_core::UsageError::InUse { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn values_outside_nodes_all_presets() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        for (name, size) in [
            ("small", ValueDataSize::Small),
            ("medium", ValueDataSize::Medium),
            ("big", ValueDataSize::Big),
        ] {
            let opts = StoreOptions::with_value_size(name, size).slot_length(4);
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.new_btree::<u32, Vec<u8>>(&tx, &opts).unwrap();
            for k in 0..50u32 {
                t.add(k, vec![k as u8; 100 + k as usize]).await.unwrap();
            }
            tx.commit().await.unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, Vec<u8>>(&tx, name).unwrap();
            t.update(&3, vec![9; 10]).await.unwrap();
            t.remove(&4).await.unwrap();
            tx.rollback().await.unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, Vec<u8>>(&tx, name).unwrap();
            t.update(&5, vec![7; 10]).await.unwrap();
            t.remove(&6).await.unwrap();
            tx.commit().await.unwrap();
            let tx = db.begin(TxMode::ForReading);
            let t = db.open_btree::<u32, Vec<u8>>(&tx, name).unwrap();
            assert_eq!(t.get(&3).await.unwrap().unwrap(), vec![3u8; 103], "{name}");
            assert_eq!(t.get(&4).await.unwrap().unwrap(), vec![4u8; 104], "{name}");
            assert_eq!(t.get(&5).await.unwrap().unwrap(), vec![7u8; 10], "{name}");
            assert_eq!(t.get(&6).await.unwrap(), None, "{name}");
            assert_eq!(t.count().unwrap(), 49);
            tx.commit().await.unwrap();
        }
    });
}

#[test]
fn write_skew_cannot_commit_twice() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<String, i64>(&tx, &StoreOptions::new("oncall"))
            .unwrap();
        t.add("alice".into(), 1).await.unwrap();
        t.add("bob".into(), 1).await.unwrap();
        tx.commit().await.unwrap();

        // Each reads both and, seeing two on call, takes itself off.
        let a = db.begin(TxMode::ForWriting);
        let b = db.begin(TxMode::ForWriting);
        let mut ta = db.open_btree::<String, i64>(&a, "oncall").unwrap();
        let mut tb = db.open_btree::<String, i64>(&b, "oncall").unwrap();
        let sum_a = ta.get(&"alice".into()).await.unwrap().unwrap()
            + ta.get(&"bob".into()).await.unwrap().unwrap();
        let sum_b = tb.get(&"alice".into()).await.unwrap().unwrap()
            + tb.get(&"bob".into()).await.unwrap().unwrap();
        assert_eq!((sum_a, sum_b), (2, 2));
        ta.update(&"alice".into(), 0).await.unwrap();
        tb.update(&"bob".into(), 0).await.unwrap();
        let ra = a.commit().await;
        let rb = b.commit().await;
        assert!(
            ra.is_ok() != rb.is_ok(),
            "exactly one commits: {ra:?} {rb:?}"
        );
        let err = ra.err().or(rb.err()).unwrap();
        assert!(
            matches!(
                err,
                Error::Transaction(sop_core::TransactionError::Conflict { .. })
            ),
            "{err}"
        );

        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<String, i64>(&tx, "oncall").unwrap();
        let total: i64 = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|i| i.value)
            .sum();
        assert_eq!(total, 1);
    });
}

#[test]
fn values_written_ahead_merge_by_reference_and_survive_a_reopen() {
    // A store that writes values ahead (Big) keeps only their ids for the merge replay: a
    // transaction that merges onto another's node must store the same values, found again
    // after a reopen.
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::with_value_size("w", sop_core::ValueDataSize::Big);
        {
            let db = Database::standalone(dir.path()).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.new_btree::<u32, String>(&tx, &opts).unwrap();
            for k in 0..10 {
                t.add(k, format!("v{k}")).await.unwrap();
            }
            tx.commit().await.unwrap();

            let a = db.begin(TxMode::ForWriting);
            let b = db.begin(TxMode::ForWriting);
            let mut ta = db.open_btree::<u32, String>(&a, "w").unwrap();
            let mut tb = db.open_btree::<u32, String>(&b, "w").unwrap();
            ta.update(&1, "a1".into()).await.unwrap();
            ta.add(100, "a100".into()).await.unwrap();
            tb.update(&2, "b2".into()).await.unwrap();
            tb.upsert(4, "b4".into()).await.unwrap();
            tb.upsert(200, "b200".into()).await.unwrap();
            assert!(tb.add_if_not_exist(300, "b300".into()).await.unwrap());
            assert!(tb.find(&5, true).await.unwrap());
            tb.update_current_key(5).await.unwrap();
            assert!(tb.find(&6, true).await.unwrap());
            tb.update_current_item(6, "b6".into()).await.unwrap();
            a.commit().await.unwrap();
            b.commit().await.unwrap();
        }
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, String>(&tx, "w").unwrap();
        let got: Vec<(u32, String)> = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.value))
            .collect();
        let mut want: Vec<(u32, String)> = (0..10).map(|k| (k, format!("v{k}"))).collect();
        want[1].1 = "a1".into();
        want[2].1 = "b2".into();
        want[4].1 = "b4".into();
        want[6].1 = "b6".into();
        want.push((100, "a100".into()));
        want.push((200, "b200".into()));
        want.push((300, "b300".into()));
        assert_eq!(got, want);
        tx.commit().await.unwrap();
    });
}

#[test]
fn disjoint_items_in_one_node_merge_instead_of_conflicting() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("m"))
            .unwrap();
        for k in 0..10 {
            t.add(k, 0).await.unwrap();
        }
        tx.commit().await.unwrap();

        let a = db.begin(TxMode::ForWriting);
        let b = db.begin(TxMode::ForWriting);
        let mut ta = db.open_btree::<u32, u32>(&a, "m").unwrap();
        let mut tb = db.open_btree::<u32, u32>(&b, "m").unwrap();
        ta.update(&1, 11).await.unwrap();
        ta.add(100, 1).await.unwrap();
        tb.update(&2, 22).await.unwrap();
        tb.remove(&3).await.unwrap();
        a.commit().await.unwrap();
        // Same node, other items: b merges onto a's node and commits.
        b.commit().await.unwrap();

        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, u32>(&tx, "m").unwrap();
        let got: Vec<(u32, u32)> = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.value))
            .collect();
        let mut want: Vec<(u32, u32)> = (0..10).map(|k| (k, 0)).collect();
        want[1].1 = 11;
        want[2].1 = 22;
        want.retain(|(k, _)| *k != 3);
        want.push((100, 1));
        assert_eq!(got, want);
        assert_eq!(t.count().unwrap(), 10);
        tx.commit().await.unwrap();

        // Same item: a conflict.
        let a = db.begin(TxMode::ForWriting);
        let b = db.begin(TxMode::ForWriting);
        let mut ta = db.open_btree::<u32, u32>(&a, "m").unwrap();
        let mut tb = db.open_btree::<u32, u32>(&b, "m").unwrap();
        ta.update(&5, 1).await.unwrap();
        tb.update(&5, 2).await.unwrap();
        a.commit().await.unwrap();
        let err = b.commit().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Transaction(sop_core::TransactionError::Conflict { .. })
            ),
            "{err}"
        );
    });
}

/// Run by `a_second_process_gets_the_in_use_error` in a child process; does nothing otherwise.
#[test]
fn child_open_probe() {
    let Ok(path) = std::env::var("SOP_CHILD_OPEN") else {
        return;
    };
    match Database::standalone(&path) {
        Ok(_) => println!("CHILD-OPENED"),
        Err(e) => println!("CHILD-ERROR: {e}"),
    }
}

/// What `child_open_probe` prints when run in a new process on `dir`.
fn probe_in_child(dir: &std::path::Path) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "basic::child_open_probe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOP_CHILD_OPEN", dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_second_process_gets_the_in_use_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::standalone(dir.path()).unwrap();
    let stdout = probe_in_child(dir.path());
    assert!(
        stdout.contains("CHILD-ERROR") && stdout.contains("is in use by another process"),
        "{stdout}"
    );
    assert!(stdout.contains("clustered mode"), "{stdout}");
    // Once this process lets go, the other can open it.
    drop(db);
    assert!(probe_in_child(dir.path()).contains("CHILD-OPENED"));
}

#[test]
fn sync_barriers_per_commit_do_not_grow_with_the_nodes_written() {
    rt().block_on(async {
        use sop_core::vfs::{FileSystem, StdFs};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(StdFs::new());
        let db = Database::open(
            dir.path(),
            sop_database::DatabaseOptions {
                fs: Some(fs.clone() as Arc<dyn FileSystem>),
                ..Default::default()
            },
        )
        .unwrap();
        let tx = db.begin(TxMode::ForWriting);
        db.new_btree::<u32, u32>(&tx, &StoreOptions::new("s").slot_length(10))
            .unwrap();
        tx.commit().await.unwrap();

        let mut counts = Vec::new();
        for (start, n) in [(0u32, 1u32), (1000, 2000), (5000, 1)] {
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, u32>(&tx, "s").unwrap();
            for k in start..start + n {
                t.add(k, k).await.unwrap();
            }
            let before = fs.sync_count();
            tx.commit().await.unwrap();
            counts.push(fs.sync_count() - before);
        }
        // 1 node, then hundreds of nodes, then 1 again: one sync of the log each, whatever
        // the size (the registry waits for the next checkpoint).
        assert_eq!(counts, [1, 1, 1], "{counts:?}");
        eprintln!("syncs per commit: {counts:?}");
        // A checkpoint writes the registry (its journal, blocks and store files synced) and
        // leaves the journal empty.
        let before = fs.sync_count();
        db.engine().checkpoint().unwrap();
        assert!(fs.sync_count() > before);
        assert_eq!(
            std::fs::metadata(dir.path().join("meta/registry.journal"))
                .unwrap()
                .len(),
            0
        );
    });
}

#[test]
fn opening_with_incompatible_options_names_the_setting() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        db.new_btree::<u32, u32>(&tx, &StoreOptions::new("o").slot_length(16))
            .unwrap();
        tx.commit().await.unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let err = db
            .open_btree_checked::<u32, u32>(&tx, &StoreOptions::new("o").slot_length(32))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Usage(sop_core::UsageError::InvalidOptions { .. })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("slot"), "{err}");
        db.open_btree_checked::<u32, u32>(&tx, &StoreOptions::new("o").slot_length(16))
            .unwrap();
        let err = db.open_btree::<u32, u32>(&tx, "missing").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Usage(sop_core::UsageError::StoreNotFound { .. })
            ),
            "{err}"
        );
        // A reader cannot write.
        let r = db.begin(TxMode::ForReading);
        let mut t = db.open_btree::<u32, u32>(&r, "o").unwrap();
        let err = t.add(1, 1).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Transaction(sop_core::TransactionError::TransactionState { .. })
            ),
            "{err}"
        );
        // Removing a store takes its data.
        drop(tx);
        db.remove_btree("o").unwrap();
        assert!(db.stores().unwrap().is_empty());
        assert!(!dir.path().join("meta/tables/o").exists());
        assert!(!dir.path().join("meta/stores/o.store").exists());
    });
}
