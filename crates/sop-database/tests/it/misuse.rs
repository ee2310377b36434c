//! What a user can type that must be impossible or a clean error: the folder opened twice while
//! something can still write, a store opened as other types, values too big to read back,
//! handles used after their transaction, refused writes in read-only transactions; and the
//! handles and readers that must work: a store opened twice in one transaction, several
//! cursors and lazy ranges at once.

use sop_core::{Error, StoreOptions};
use sop_database::{Database, TxMode};
use sop_txn::TableDefinition;

#[test]
fn the_folder_stays_locked_while_a_transaction_is_open_and_old_handles_never_write_after() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, String>(&tx, &StoreOptions::new("t"))
            .unwrap();
        drop(db);
        // The transaction can still write: a second database on the folder would corrupt it.
        let e = Database::standalone(dir.path()).unwrap_err();
        assert!(
            matches!(e, Error::Usage(sop_core::UsageError::InUse { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("drop them first"), "{e}");
        t.add(1, "one".into()).await.unwrap();
        tx.commit().await.unwrap();
        // Ended, it no longer holds the folder, though the handles live on.
        let db = Database::standalone(dir.path()).unwrap();
        let e = t.add(2, "two".into()).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Transaction(sop_core::TransactionError::TransactionState { .. })
            ),
            "{e}"
        );

        // An engine clone outliving its database cannot write once the folder is reopened.
        let old = db.engine().clone();
        let old_tx = old.begin(sop_txn::TxOptions::new(TxMode::ForWriting));
        drop(db);
        assert!(
            matches!(
                Database::standalone(dir.path()),
                Err(Error::Usage(sop_core::UsageError::InUse { .. }))
            ),
            "an open transaction of the old engine holds the folder"
        );
        drop(old_tx);
        let db = Database::standalone(dir.path()).unwrap();
        let late = old.begin(sop_txn::TxOptions::new(TxMode::ForWriting));
        let e = late.open_btree::<u32, String>("t").unwrap_err();
        assert!(
            matches!(
                e,
                Error::Transaction(sop_core::TransactionError::TransactionState { .. })
            ),
            "{e}"
        );
        assert!(e.to_string().contains("closed"), "{e}");
        assert!(old.compact().is_err());
        assert!(old.checkpoint().is_err());
        drop((late, old, t, tx));

        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, String>(&tx, "t").unwrap();
        t.add(3, "three".into()).await.unwrap();
        tx.commit().await.unwrap();
        drop((t, tx));
        assert!(db.verify(false).await.unwrap().is_clean());
        drop(db);
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, String>(&tx, "t").unwrap();
        let keys: Vec<u32> = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, [1, 3]);
    });
}

#[test]
fn a_store_opened_as_other_types_or_order_is_refused() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        const NUMBERS: TableDefinition<u32, String> = TableDefinition::new("numbers");
        {
            let db = Database::standalone(dir.path()).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_table(&tx, &NUMBERS).unwrap();
            t.add(7, "seven".into()).await.unwrap();
            tx.commit().await.unwrap();
        }
        // Reopened: the types were persisted with the store.
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        for e in [
            db.open_btree::<i64, String>(&tx, "numbers").map(|_| ()),
            db.open_btree::<u32, Vec<u8>>(&tx, "numbers").map(|_| ()),
            tx.open_btree_with::<u32, String, _>(
                "numbers",
                sop_btree::FnComparator(|a: &u32, b: &u32| b.cmp(a)),
            )
            .map(|_| ()),
        ] {
            let e = e.unwrap_err();
            assert!(
                matches!(e, Error::Usage(sop_core::UsageError::TypeMismatch { .. })),
                "{e}"
            );
            assert!(e.to_string().contains("u32"), "{e}");
        }
        // The refusals changed nothing: the right types still work in the same transaction.
        let mut t = db.open_table(&tx, &NUMBERS).unwrap();
        assert_eq!(t.get(&7).await.unwrap().as_deref(), Some("seven"));
        t.add(8, "eight".into()).await.unwrap();
        tx.commit().await.unwrap();
        assert!(db.verify(false).await.unwrap().is_clean());
    });
}

#[test]
fn a_value_or_key_too_big_to_read_back_is_refused_before_it_changes_anything() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, Vec<u8>>(&tx, &StoreOptions::new("blobs"))
            .unwrap();
        t.add(1, vec![1; 10]).await.unwrap();
        // Over the limit by one byte (calloc'd: no memory is touched).
        let max = usize::try_from(sop_core::codec::MAX_VALUE_BYTES).unwrap();
        let big = vec![0u8; max];
        let e = t.add(2, big.clone()).await.unwrap_err();
        assert!(
            matches!(e, Error::Usage(sop_core::UsageError::ValueTooLarge { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("streaming"), "{e}");
        let e = t.update(&1, big).await.unwrap_err();
        assert!(
            matches!(e, Error::Usage(sop_core::UsageError::ValueTooLarge { .. })),
            "{e}"
        );
        // Nothing changed and the transaction still commits.
        assert_eq!(t.get(&1).await.unwrap(), Some(vec![1; 10]));
        assert_eq!(t.count().unwrap(), 1);
        tx.commit().await.unwrap();

        let tx = db.begin(TxMode::ForWriting);
        let mut k = db
            .new_btree::<Vec<u8>, u8>(&tx, &StoreOptions::new("keys"))
            .unwrap();
        let e = k.add(vec![0u8; max], 1).await.unwrap_err();
        assert!(
            matches!(e, Error::Usage(sop_core::UsageError::ValueTooLarge { .. })),
            "{e}"
        );
        k.add(vec![1], 1).await.unwrap();
        tx.commit().await.unwrap();
    });
}

#[test]
fn a_handle_used_after_its_transaction_ended_errors_on_every_call() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("t"))
            .unwrap();
        for k in 0..100 {
            t.add(k, k).await.unwrap();
        }
        let mut range = t.range(..);
        assert!(range.next().await.unwrap().is_some());
        tx.commit().await.unwrap();
        let ended = |e: Error| {
            assert!(
                matches!(
                    e,
                    Error::Transaction(sop_core::TransactionError::TransactionState { .. })
                ),
                "{e}"
            )
        };
        ended(range.next().await.unwrap_err());
        ended(range.next_back().await.unwrap_err());
        drop(range);
        ended(t.count().unwrap_err());
        ended(t.get(&1).await.unwrap_err());
        ended(t.contains_key(&1).await.unwrap_err());
        ended(t.find(&1, true).await.unwrap_err());
        ended(t.first().await.unwrap_err());
        ended(t.next().await.unwrap_err());
        ended(t.current_value().await.unwrap_err());
        ended(t.add(500, 1).await.unwrap_err());
        ended(t.upsert(1, 1).await.unwrap_err());
        ended(t.remove(&1).await.unwrap_err());
        let mut c = t.cursor();
        ended(c.first().await.unwrap_err());
        ended(t.check().await.unwrap_err());
        // Rolled back and dropped transactions too.
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, u32>(&tx, "t").unwrap();
        tx.rollback().await.unwrap();
        ended(t.get(&1).await.unwrap_err());
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, u32>(&tx, "t").unwrap();
        drop(tx);
        ended(t.count().unwrap_err());
    });
}

#[test]
fn a_refused_write_in_a_read_only_transaction_leaves_its_reads_working() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("t"))
            .unwrap();
        for k in 0..50 {
            t.add(k, k * 2).await.unwrap();
        }
        tx.commit().await.unwrap();

        let tx = db.begin(TxMode::ForReading);
        let mut t = db.open_btree::<u32, u32>(&tx, "t").unwrap();
        assert!(t.find(&10, true).await.unwrap());
        let refused: Vec<Error> = vec![
            t.add(100, 1).await.unwrap_err(),
            t.upsert(1, 1).await.unwrap_err(),
            t.update(&1, 1).await.unwrap_err(),
            t.remove(&1).await.unwrap_err(),
            t.update_current_value(5).await.unwrap_err(),
            t.remove_current_item().await.unwrap_err(),
        ];
        for e in refused {
            assert!(
                matches!(
                    e,
                    Error::Transaction(sop_core::TransactionError::TransactionState { .. })
                ),
                "{e}"
            );
            assert!(e.to_string().contains("ForWriting"), "{e}");
        }
        // Reads (and the handle's own cursor) go on as before; the commit succeeds.
        assert_eq!(t.current_key(), Some(&10));
        assert_eq!(t.current_value().await.unwrap(), Some(20));
        assert_eq!(t.get(&3).await.unwrap(), Some(6));
        assert_eq!(t.range(..).collect().await.unwrap().len(), 50);
        tx.commit().await.unwrap();
    });
}

#[test]
fn a_store_opened_twice_in_one_transaction_shares_its_changes() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut a = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("t").slot_length(4))
            .unwrap();
        for k in 0..40 {
            a.add(k, k).await.unwrap();
        }
        let mut b = db.open_btree::<u32, u32>(&tx, "t").unwrap();
        // A cursor of `a` held while `b` changes the tree under it finds its place again.
        assert!(a.find(&20, true).await.unwrap());
        for k in 0..20 {
            b.remove(&k).await.unwrap();
        }
        b.add(100, 100).await.unwrap();
        assert_eq!(a.current_value().await.unwrap(), Some(20));
        assert!(a.next().await.unwrap());
        assert_eq!(a.current_key(), Some(&21));
        a.update_current_value(2100).await.unwrap();
        assert_eq!(b.get(&21).await.unwrap(), Some(2100));
        assert_eq!((a.count().unwrap(), b.count().unwrap()), (21, 21));
        a.add(200, 200).await.unwrap();
        assert_eq!(b.count().unwrap(), 22);
        assert!(matches!(
            db.open_btree::<u64, u32>(&tx, "t").unwrap_err(),
            Error::Usage(sop_core::UsageError::TypeMismatch { .. })
        ));
        tx.commit().await.unwrap();

        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, u32>(&tx, "t").unwrap();
        let keys: Vec<u32> = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|it| it.key)
            .collect();
        let want: Vec<u32> = (20..40).chain([100, 200]).collect();
        assert_eq!(keys, want);
        assert_eq!(t.get(&21).await.unwrap(), Some(2100));
        t.check().await.unwrap();
        assert!(db.verify(false).await.unwrap().is_clean());
    });
}

#[test]
fn ranges_and_cursors_work_side_by_side_on_one_handle() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("t").slot_length(8))
            .unwrap();
        for k in 0..300 {
            t.add(k, k + 1).await.unwrap();
        }
        tx.commit().await.unwrap();

        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, u32>(&tx, "t").unwrap();
        let (mut up, mut down) = (t.range(100..200), t.range(..));
        let mut c = t.cursor();
        assert!(c.find_descending(&150).await.unwrap());
        for i in 0..100u32 {
            assert_eq!(up.next().await.unwrap().unwrap().key, 100 + i);
            assert_eq!(down.next_back().await.unwrap().unwrap().key, 299 - i);
            assert_eq!(c.key(), Some(&(150 - i)));
            assert_eq!(c.value().await.unwrap(), Some(151 - i));
            c.previous().await.unwrap();
        }
        assert!(up.next().await.unwrap().is_none());
        assert_eq!(t.get(&7).await.unwrap(), Some(8));
        tx.commit().await.unwrap();
    });
}
