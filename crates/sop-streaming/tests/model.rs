//! Streamed values against a `Vec<u8>` model: random writes, seeks, partial updates, truncates
//! and reads, with tiny chunk sizes so every operation crosses chunk boundaries, through
//! commits and a reopened database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sop_database::Database;
use sop_streaming::StreamingStore;
use sop_txn::TxMode;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[derive(Debug, Clone)]
enum Op {
    WriteAt(u64, Vec<u8>),
    Append(Vec<u8>),
    Truncate(u64),
    ReadAt(u64, usize),
    /// A writer at an offset writing several pieces, seeking between them.
    Writer(u64, Vec<(i64, Vec<u8>)>),
    /// A reader from an offset reading in pieces of this size to the end.
    Reader(u64, usize),
    Put(Vec<u8>),
    Commit,
    Reopen,
    /// SOP's chunk calls, by position among the value's chunks (taken modulo their count).
    UpdateChunk(usize, Vec<u8>),
    RemoveChunk(usize),
    AddChunk(Vec<u8>),
    /// Later writes use another chunk size (values keep the chunks they have).
    ChunkSize(usize),
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..80, bytes()).prop_map(|(o, d)| Op::WriteAt(o, d)),
        2 => bytes().prop_map(Op::Append),
        2 => (0u64..80).prop_map(Op::Truncate),
        3 => (0u64..90, 0usize..50).prop_map(|(o, n)| Op::ReadAt(o, n)),
        2 => (0u64..60, prop::collection::vec((-10i64..10, bytes()), 1..4))
            .prop_map(|(o, w)| Op::Writer(o, w)),
        2 => (0u64..70, 1usize..20).prop_map(|(o, n)| Op::Reader(o, n)),
        1 => bytes().prop_map(Op::Put),
        1 => Just(Op::Commit),
        1 => Just(Op::Reopen),
        1 => (any::<usize>(), bytes()).prop_map(|(i, d)| Op::UpdateChunk(i, d)),
        1 => any::<usize>().prop_map(Op::RemoveChunk),
        1 => bytes().prop_map(Op::AddChunk),
        1 => prop_oneof![Just(1usize), 2usize..9, Just(16usize)].prop_map(Op::ChunkSize),
    ]
}

fn write_model(m: &mut Vec<u8>, at: u64, d: &[u8]) {
    let at = at as usize;
    if m.len() < at + d.len() {
        m.resize((at + d.len()).max(m.len()), 0);
    }
    m[at..at + d.len()].copy_from_slice(d);
}

async fn run(mut chunk: usize, ops: Vec<Op>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut db = Database::standalone(dir.path())?;
    let key = "blob".to_string();
    let other = "other".to_string();
    let mut model: Option<Vec<u8>> = None;
    let mut committed: Option<Vec<u8>> = None;
    let tx0 = db.begin(TxMode::ForWriting);
    let mut s = StreamingStore::<String>::new(&tx0, &StreamingStore::<String>::options("s"))?;
    // A neighbour value, so a value's chunks are never alone in the tree.
    s.put(&other, b"neighbour bytes").await?;
    tx0.commit().await?;
    let mut tx = db.begin(TxMode::ForWriting);
    let mut s = StreamingStore::<String>::open(&tx, "s")?.with_chunk_size(chunk)?;
    for op in ops {
        match op {
            Op::WriteAt(o, d) => {
                s.write_at(&key, o, &d).await?;
                let m = model.get_or_insert_with(Vec::new);
                if (o as usize) > m.len() {
                    m.resize(o as usize, 0);
                }
                write_model(m, o, &d);
            }
            Op::Append(d) => {
                s.append(&key, &d).await?;
                model.get_or_insert_with(Vec::new).extend_from_slice(&d);
            }
            Op::Truncate(n) => {
                s.truncate(&key, n).await?;
                model.get_or_insert_with(Vec::new).resize(n as usize, 0);
            }
            Op::Put(d) => {
                s.put(&key, &d).await?;
                model = Some(d);
            }
            Op::ReadAt(o, n) => {
                let mut buf = vec![0u8; n];
                let got = s.read_at(&key, o, &mut buf).await?;
                let m = model.clone().unwrap_or_default();
                let want = m.get(o as usize..).unwrap_or_default();
                let want = &want[..want.len().min(n)];
                assert_eq!(&buf[..got], want, "read_at({o}, {n})");
            }
            Op::Writer(o, pieces) => {
                let mut w = s.writer(&key).await?;
                let m = model.get_or_insert_with(Vec::new);
                let mut pos = AsyncSeekExt::seek(&mut w, std::io::SeekFrom::Start(o)).await?;
                for (delta, d) in pieces {
                    if pos as i64 + delta >= 0 {
                        pos = AsyncSeekExt::seek(&mut w, std::io::SeekFrom::Current(delta)).await?;
                    }
                    w.write_all(&d).await?;
                    if (pos as usize) > m.len() && !d.is_empty() {
                        m.resize(pos as usize, 0);
                    }
                    if !d.is_empty() {
                        write_model(m, pos, &d);
                    }
                    pos += d.len() as u64;
                }
                w.shutdown().await?;
            }
            Op::Reader(o, step) => {
                let want = model
                    .clone()
                    .map(|m| m.get(o as usize..).unwrap_or_default().to_vec());
                match s.reader(&key).await? {
                    None => assert!(want.is_none(), "reader: no value, model has one"),
                    Some(mut r) => {
                        AsyncSeekExt::seek(&mut r, std::io::SeekFrom::Start(o)).await?;
                        let mut got = Vec::new();
                        let mut buf = vec![0u8; step];
                        loop {
                            let n = AsyncReadExt::read(&mut r, &mut buf).await?;
                            if n == 0 {
                                break;
                            }
                            got.extend_from_slice(&buf[..n]);
                        }
                        assert_eq!(Some(got), want, "reader from {o}");
                    }
                }
            }
            Op::UpdateChunk(i, d) => {
                let keys = s.chunk_keys(&key).await?;
                if keys.is_empty() {
                    assert!(!s.update_chunk(&key, 0, &d).await?);
                } else {
                    let c = &keys[i % keys.len()];
                    assert!(s.update_chunk(&key, c.index, &d).await?);
                    let m = model.get_or_insert_with(Vec::new);
                    m.splice(c.offset as usize..c.end() as usize, d);
                }
            }
            Op::RemoveChunk(i) => {
                let keys = s.chunk_keys(&key).await?;
                if keys.is_empty() {
                    assert!(!s.remove_chunk(&key, 0).await?);
                } else {
                    let c = &keys[i % keys.len()];
                    assert!(s.remove_chunk(&key, c.index).await?);
                    if keys.len() == 1 {
                        model = None; // the last chunk gone: no value
                    } else if let Some(m) = model.as_mut() {
                        m.drain(c.offset as usize..c.end() as usize);
                    }
                }
            }
            Op::AddChunk(d) => {
                let n = s.chunk_count(&key).await?;
                assert!(
                    !s.add_chunk(&key, n + 1, &d).await.is_ok_and(|added| added),
                    "a gap"
                );
                assert!(s.add_chunk(&key, n, &d).await?);
                model.get_or_insert_with(Vec::new).extend_from_slice(&d);
            }
            Op::ChunkSize(c) => {
                chunk = c;
                s = s.with_chunk_size(c)?;
            }
            Op::Commit => {
                tx.commit().await?;
                committed = model.clone();
                tx = db.begin(TxMode::ForWriting);
                s = StreamingStore::<String>::open(&tx, "s")?.with_chunk_size(chunk)?;
            }
            Op::Reopen => {
                // Uncommitted changes go with the transaction.
                tx.rollback().await?;
                drop(s);
                drop(tx);
                drop(db);
                db = Database::standalone(dir.path())?;
                model = committed.clone();
                tx = db.begin(TxMode::ForWriting);
                s = StreamingStore::<String>::open(&tx, "s")?.with_chunk_size(chunk)?;
            }
        }
        // Length and chunk layout from keys alone agree with the model.
        let len = s.len(&key).await?;
        assert_eq!(len, model.as_ref().map(|m| m.len() as u64), "len");
        let keys = s.chunk_keys(&key).await?;
        let mut at = 0;
        for (i, c) in keys.iter().enumerate() {
            assert_eq!(c.index, i as u64, "chunks numbered without gaps");
            assert_eq!(c.offset, at, "chunks end to end");
            at = c.end();
        }
        assert_eq!(s.chunk_count(&key).await?, keys.len() as u64);
    }
    let whole = s.get(&key).await?;
    assert_eq!(whole, model);
    assert_eq!(
        s.get(&other).await?.as_deref(),
        Some(&b"neighbour bytes"[..])
    );
    tx.commit().await?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]
    #[test]
    fn streamed_values_behave_as_byte_vectors(
        chunk in prop_oneof![Just(1usize), 2usize..9, Just(16usize)],
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(chunk, ops)).unwrap();
    }
}
