//! The streaming store through the blocking API: `std::io` writers and readers with seeks, a
//! writer dropped after writing stores what it buffered (as `BufWriter`), and a commit while a
//! writer holds bytes fails instead of keeping half a value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Seek, SeekFrom, Write};

use sop::TxMode;
use sop::blocking::{Database, StreamingStore};

type S = StreamingStore<u64>;

#[test]
fn std_io_streams_round_trip_with_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::standalone(dir.path()).unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let tx = db.begin(TxMode::ForWriting);
    let s = S::new(&tx, &S::options("files"))
        .unwrap()
        .with_chunk_size(4096)
        .unwrap();
    {
        let mut w = s.writer(&7).unwrap();
        for piece in data.chunks(777) {
            w.write_all(piece).unwrap();
        }
        // Dropped without finish: stored on drop, as BufWriter does.
    }
    {
        let mut w = s.writer(&7).unwrap();
        w.seek(SeekFrom::Start(10_000)).unwrap();
        w.write_all(b"PATCH").unwrap();
        w.finish().unwrap();
    }
    tx.commit().unwrap();

    let tx = db.begin(TxMode::ForReading);
    let mut s = S::open(&tx, "files").unwrap();
    let mut want = data.clone();
    want[10_000..10_005].copy_from_slice(b"PATCH");
    assert_eq!(s.len(&7).unwrap(), Some(50_000));
    let mut r = s.reader(&7).unwrap().expect("stored");
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, want);
    r.seek(SeekFrom::End(-10)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, want[49_990..]);
}

#[test]
fn a_commit_while_a_writer_is_open_with_bytes_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::standalone(dir.path()).unwrap();
    let tx = db.begin(TxMode::ForWriting);
    let s = S::new(&tx, &S::options("files"))
        .unwrap()
        .with_chunk_size(1000)
        .unwrap();
    let mut w = s.writer(&1).unwrap();
    w.write_all(&[5u8; 2500]).unwrap();
    let e = tx.commit().unwrap_err();
    assert_eq!(e.kind(), sop::ErrorKind::Usage, "{e}");
    drop(w);
    let tx = db.begin(TxMode::ForReading);
    assert!(db.store_info("files").unwrap().is_none());
    drop(tx);
}
