//! A read-only engine over a log whose last commits were never checkpointed (a power cut):
//! it replays them in memory, reads them all, and changes nothing in the log or the metadata.

use sop_core::StoreOptions;
use sop_core::meta::Metadata;
use sop_txn::{TxMode, TxOptions};

use crate::rig::Rig;

/// Every file of the log folder with its bytes.
fn log_bytes(fs: &sop_core::vfs::SimFs) -> Vec<(String, Vec<u8>)> {
    use sop_core::vfs::FileSystem;
    let dir = std::path::Path::new("/sim/log");
    fs.list_dir(dir)
        .unwrap()
        .into_iter()
        .map(|n| {
            let bytes = sop_core::vfs::read_file(fs, &dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

#[tokio::test]
async fn a_read_only_engine_replays_the_log_in_memory_and_writes_nothing() {
    let rig = Rig::new();
    let (engine, _) = rig.open(1 << 40).unwrap();
    for round in 0..10u32 {
        let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
        let mut t = if round == 0 {
            tx.new_btree::<u32, u32>(&StoreOptions::new("t").slot_length(8))
                .unwrap()
        } else {
            tx.open_btree::<u32, u32>("t").unwrap()
        };
        for k in 0..50 {
            t.upsert(k, round).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    // A power cut: no checkpoint ever ran, so every commit is only in the log.
    let image = rig.crash_image();
    drop(engine);
    let log_before = log_bytes(&image.fs);
    let (ro, report) = image.open_read_only().unwrap();
    assert_eq!(report.replayed, 10);
    let tx = ro.begin(TxOptions::new(TxMode::ForReading));
    let t = tx.open_btree::<u32, u32>("t").unwrap();
    let items = t.range(..).collect().await.unwrap();
    assert_eq!(items.len(), 50);
    assert!(items.iter().all(|it| it.value == 9));
    let w = ro.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = w.open_btree::<u32, u32>("t").unwrap();
    assert!(
        t.add(99, 1)
            .await
            .unwrap_err()
            .to_string()
            .contains("read-only")
    );
    assert!(ro.checkpoint().is_err());
    drop((t, w, tx, ro));
    // Nothing changed: the metadata still has no store (never checkpointed) and a writable
    // open replays the same ten commits.
    assert!(image.meta.store_names().unwrap().is_empty());
    assert_eq!(log_bytes(&image.fs), log_before);
    let (rw, report) = image.open(1 << 40).unwrap();
    assert_eq!(report.replayed, 10);
    drop(rw);
}
