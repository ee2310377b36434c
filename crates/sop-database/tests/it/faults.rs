//! One I/O error at every file-system call of a commit (the Nth call fails, the rest work): the
//! commit returns an error or Ok, the same open database stays consistent (exactly before or
//! after), and once the fault is gone a retry succeeds, without reopening.

use std::sync::Arc;

use crate::support::{read_two, two_stores};
use sop_core::vfs::{Fault, FaultyFs, FileSystem, StdFs};

use sop_database::{Database, DatabaseOptions, TxMode};

async fn change(db: &Database) -> sop_core::Result<()> {
    let tx = db.begin(TxMode::ForWriting);
    for i in 0..2 {
        let mut t = db.open_btree::<u32, String>(&tx, &two_stores(i).name)?;
        for k in 40..52 {
            t.add(k, format!("new{k}")).await?;
        }
        for k in (0..40).step_by(4) {
            t.remove(&k).await?;
        }
    }
    tx.commit().await
}

#[test]
fn an_io_error_anywhere_in_a_commit_leaves_a_consistent_store_and_a_retry_succeeds() {
    let rt = crate::support::rt();
    rt.block_on(async {
        let mut n = 0u64;
        let (mut failed, mut ok) = (0, 0);
        loop {
            let dir = tempfile::tempdir().unwrap();
            let faulty = Arc::new(FaultyFs::new(Arc::new(StdFs::new())));
            let db = Database::open(
                dir.path(),
                DatabaseOptions {
                    fs: Some(faulty.clone() as Arc<dyn FileSystem>),
                    background_maintenance: false,
                    ..DatabaseOptions::default()
                },
            )
            .unwrap();
            crate::support::fill_two(&db).await;
            let before = read_two(&db).await;

            faulty.inject(Fault {
                prefix: Some(dir.path().to_path_buf()),
                op: None,
                errno: 5,
                skip: n,
                times: Some(1),
            });
            let r = change(&db).await;
            let reached = !faulty.has_unreached_fault();
            faulty.clear();
            let got = read_two(&db).await;
            if r.is_ok() {
                ok += 1;
                assert_ne!(got, before, "call {n}: Ok but nothing changed");
            } else {
                failed += 1;
                assert_eq!(got, before, "call {n}: a failed commit left a partial change");
                change(&db).await.unwrap_or_else(|e| panic!("call {n}: retry failed: {e}"));
            }
            let after = read_two(&db).await;
            drop(db);
            // And the disk agrees after a reopen.
            let db = Database::standalone(dir.path())
                .unwrap_or_else(|e| panic!("call {n}: reopen failed: {e:?}"));
            assert_eq!(read_two(&db).await, after, "call {n}: reopen differs");
            if !reached {
                break;
            }
            n += 1;
        }
        eprintln!("{n} failing calls tried: {failed} commits failed and were retried, {ok} succeeded anyway");
        assert!(failed > 0);
    });
}
