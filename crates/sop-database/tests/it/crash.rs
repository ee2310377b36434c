//! A commit interrupted at every file-system call it makes (every later call fails, as if the
//! process died there) is rolled back or completed on reopen: the trees show all of it or none
//! of it, and the database verifies clean.

use std::sync::Arc;

use crate::support::{read_two, two_stores};
use sop_core::vfs::{Fault, FaultyFs, FileSystem, StdFs};

use sop_database::{Database, DatabaseOptions, TxMode};

#[test]
fn a_commit_cut_at_any_point_is_all_or_nothing_after_reopen() {
    let rt = crate::support::rt();
    rt.block_on(async {
        let mut cut = 0u64;
        let mut outcomes = (0usize, 0usize);
        loop {
            let dir = tempfile::tempdir().unwrap();
            {
                let db = Database::standalone(dir.path()).unwrap();
                crate::support::fill_two(&db).await;
            }
            let before = {
                let db = Database::standalone(dir.path()).unwrap();
                read_two(&db).await
            };

            let faulty = Arc::new(FaultyFs::new(Arc::new(StdFs::new())));
            let options = DatabaseOptions {
                fs: Some(faulty.clone() as Arc<dyn FileSystem>),
                background_maintenance: false,
                ..DatabaseOptions::default()
            };
            let mut after = before.clone();
            let committed = {
                let db = Database::open(dir.path(), options).unwrap();
                let tx = db.begin(TxMode::ForWriting);
                for (i, m) in after.iter_mut().enumerate() {
                    let mut t = db
                        .open_btree::<u32, String>(&tx, &two_stores(i).name)
                        .unwrap();
                    // Splits, merges, updates and removals across both stores.
                    for k in 40..60 {
                        t.add(k, format!("new{k}")).await.unwrap();
                        m.insert(k, format!("new{k}"));
                    }
                    for k in (0..40).step_by(3) {
                        t.remove(&k).await.unwrap();
                        m.remove(&k);
                    }
                    t.update(&1, "updated".into()).await.unwrap();
                    m.insert(1, "updated".into());
                }
                faulty.inject(Fault {
                    prefix: Some(dir.path().to_path_buf()),
                    op: None,
                    errno: 5,
                    skip: cut,
                    times: None,
                });
                let r = tx.commit().await;
                let reached = !faulty.has_unreached_fault();
                drop(tx);
                drop(db);
                if !reached {
                    assert!(r.is_ok(), "{r:?}");
                    break;
                }
                r.is_ok()
            };

            let db = Database::standalone(dir.path()).unwrap();
            let got = read_two(&db).await;
            if got == after {
                outcomes.1 += 1;
            } else {
                assert!(
                    !committed,
                    "cut {cut}: commit returned Ok but the change is not all there"
                );
                assert_eq!(got, before, "cut {cut}: a partial commit is visible");
                outcomes.0 += 1;
            }
            crate::support::assert_recovered(&db, &got, &format!("cut {cut}")).await;
            cut += 1;
        }
        eprintln!(
            "{cut} cut points: {} rolled back, {} completed",
            outcomes.0, outcomes.1
        );
        assert!(outcomes.0 > 0 && outcomes.1 > 0);
    });
}
