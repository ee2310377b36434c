//! SOP's nine streaming scenarios (its `streaming_data_store_test.go`, run there against
//! Cassandra and Redis), plus rollback, an unfinished writer, and values that survive a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sop_database::Database;
use sop_streaming::StreamingStore;
use sop_txn::{Transaction, TxMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type S = StreamingStore<String>;

fn k(s: &str) -> String {
    s.to_string()
}

fn new_store(tx: &Transaction, name: &str) -> anyhow::Result<S> {
    Ok(S::new(tx, &S::options(name))?)
}

/// Writes `n` JSON chunks under `key` with SOP's encoder ("{i}. a huge chunk, about 10MB.").
async fn encode(s: &S, key: &str, n: usize) -> anyhow::Result<()> {
    let mut e = s.encoder(&k(key)).await?.expect("a new value");
    for i in 0..n {
        e.encode(&format!("{i}. a huge chunk, about 10MB.")).await?;
    }
    Ok(())
}

async fn decode_all(s: &S, key: &str) -> anyhow::Result<Vec<String>> {
    let mut d = s.decoder(&k(key), 0).await?.expect("a value");
    let mut out = Vec::new();
    while let Some(v) = d.next::<String>().await? {
        out.push(v);
    }
    Ok(out)
}

fn expected(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{i}. a huge chunk, about 10MB."))
        .collect()
}

async fn with_db<F, Fut>(f: F) -> anyhow::Result<()>
where
    F: FnOnce(Database) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    f(db).await
}

#[tokio::test]
async fn scenario_1_empty_store() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let mut s = new_store(&tx, "videos")?;
        assert!(s.reader(&k("x")).await?.is_none());
        assert!(s.decoder(&k("x"), 0).await?.is_none());
        assert!(!s.remove(&k("x")).await?);
        assert!(!s.find_chunk(&k("x"), 0).await?);
        assert!(!s.update_chunk(&k("x"), 0, b"a").await?);
        assert!(!s.remove_chunk(&k("x"), 0).await?);
        assert_eq!(s.len(&k("x")).await?, None);
        assert_eq!(s.chunk_count(&k("x")).await?, 0);
        assert_eq!(s.count()?, 0);
        assert!(s.keys().await?.is_empty());
        // A chunk index that would leave a gap is a typed error, not a hole.
        let e = s.add_chunk(&k("x"), 3, b"a").await.unwrap_err();
        assert_eq!(e.kind(), sop_core::ErrorKind::Usage, "{e}");
        // Options a streaming store cannot work with.
        for bad in [
            S::options("a").slot_length(10),
            S::options("b").unique(false),
            sop_core::StoreOptions::new("c"),
            sop_core::StoreOptions::with_value_size("d", sop_core::ValueDataSize::Medium)
                .slot_length(100),
        ] {
            let e = S::new(&tx, &bad).unwrap_err();
            assert_eq!(e.kind(), sop_core::ErrorKind::Usage, "{e}");
        }
        tx.commit().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn scenario_2_ten_chunks_written_ten_decoded() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "videos")?;
        encode(&s, "fooVideo", 10).await?;
        tx.commit().await?;
        let tx = db.begin(TxMode::ForReading);
        let mut s = S::open(&tx, "videos")?;
        assert_eq!(s.chunk_count(&k("fooVideo")).await?, 10);
        assert_eq!(decode_all(&s, "fooVideo").await?, expected(10));
        // Resume from a chunk (SOP's FindChunk + decode: "seek to timestamp").
        let mut d = s.decoder(&k("fooVideo"), 7).await?.expect("chunk 7");
        assert_eq!(d.next::<String>().await?, Some(expected(10)[7].clone()));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn scenario_3_two_items() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "videos")?;
        encode(&s, "fooVideo", 10).await?;
        encode(&s, "fooVideo2", 20).await?;
        tx.commit().await?;
        let tx = db.begin(TxMode::ForReading);
        let mut s = S::open(&tx, "videos")?;
        assert_eq!(decode_all(&s, "fooVideo").await?, expected(10));
        assert_eq!(decode_all(&s, "fooVideo2").await?, expected(20));
        assert_eq!(s.keys().await?, vec![k("fooVideo"), k("fooVideo2")]);
        assert_eq!(s.count()?, 30);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn scenario_4_remove_middle_item() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "videos")?;
        encode(&s, "a", 5).await?;
        encode(&s, "b", 5).await?;
        encode(&s, "c", 5).await?;
        tx.commit().await?;
        let tx = db.begin(TxMode::ForWriting);
        let mut s = S::open(&tx, "videos")?;
        assert!(s.remove(&k("b")).await?);
        tx.commit().await?;
        let tx = db.begin(TxMode::ForReading);
        let mut s = S::open(&tx, "videos")?;
        assert_eq!(decode_all(&s, "a").await?, expected(5));
        assert_eq!(decode_all(&s, "c").await?, expected(5));
        assert!(s.decoder(&k("b"), 0).await?.is_none());
        assert_eq!(s.keys().await?, vec![k("a"), k("c")]);
        assert_eq!(s.count()?, 10);
        Ok(())
    })
    .await
}

/// Writes `from` chunks, then rewrites the value with `to` through the update encoder.
async fn update(db: &Database, from: usize, to: usize) -> anyhow::Result<()> {
    let tx = db.begin(TxMode::ForWriting);
    let s = new_store(&tx, "videos")?;
    encode(&s, "v", from).await?;
    tx.commit().await?;
    let tx = db.begin(TxMode::ForWriting);
    let s = S::open(&tx, "videos")?;
    let mut e = s.update_encoder(&k("v")).await?;
    for i in 0..to {
        e.encode(&format!("{i}. a huge chunk, about 10MB.")).await?;
    }
    assert_eq!(e.count(), to as u64);
    assert_eq!(s.count()?, to as u64);
    tx.commit().await?;
    let tx = db.begin(TxMode::ForReading);
    let s = S::open(&tx, "videos")?;
    assert_eq!(s.count()?, to as u64);
    assert_eq!(decode_all(&s, "v").await?, expected(to));
    Ok(())
}

#[tokio::test]
async fn scenario_5_update_ten_to_nine() -> anyhow::Result<()> {
    with_db(|db| async move { update(&db, 10, 9).await }).await
}

#[tokio::test]
async fn scenario_6_update_fifty_to_five() -> anyhow::Result<()> {
    with_db(|db| async move { update(&db, 50, 5).await }).await
}

#[tokio::test]
async fn scenario_7_extend_five_to_seven() -> anyhow::Result<()> {
    with_db(|db| async move { update(&db, 5, 7).await }).await
}

#[tokio::test]
async fn scenario_8_update_five_to_five() -> anyhow::Result<()> {
    with_db(|db| async move { update(&db, 5, 5).await }).await
}

#[tokio::test]
async fn scenario_9_remove_one_of_three() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "videos")?;
        encode(&s, "v50", 50).await?;
        encode(&s, "v5", 5).await?;
        encode(&s, "v15", 15).await?;
        tx.commit().await?;
        let tx = db.begin(TxMode::ForWriting);
        let mut s = S::open(&tx, "videos")?;
        assert!(s.remove(&k("v5")).await?);
        tx.commit().await?;
        let tx = db.begin(TxMode::ForReading);
        let s = S::open(&tx, "videos")?;
        assert_eq!(s.count()?, 65);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn chunk_level_calls_keep_offsets_and_numbering() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let mut s = new_store(&tx, "raw")?;
        let key = k("v");
        assert!(s.add_chunk(&key, 0, b"aaa").await?);
        assert!(s.add_chunk(&key, 1, b"bb").await?);
        assert!(s.add_chunk(&key, 2, b"c").await?);
        assert!(!s.add_chunk(&key, 1, b"zz").await?, "AddIfNotExist");
        assert_eq!(s.get(&key).await?.as_deref(), Some(&b"aaabbc"[..]));
        assert!(s.update_chunk(&key, 0, b"A").await?);
        assert_eq!(s.get(&key).await?.as_deref(), Some(&b"Abbc"[..]));
        let mut buf = [0u8; 2];
        assert_eq!(s.read_at(&key, 1, &mut buf).await?, 2);
        assert_eq!(&buf, b"bb");
        assert!(s.remove_chunk(&key, 1).await?);
        assert_eq!(s.get(&key).await?.as_deref(), Some(&b"Ac"[..]));
        let keys = s.chunk_keys(&key).await?;
        assert_eq!(
            keys.iter()
                .map(|c| (c.index, c.offset, c.len))
                .collect::<Vec<_>>(),
            vec![(0, 0, 1), (1, 1, 1)]
        );
        let (c, bytes) = s.get_chunk(&key, 1).await?.expect("chunk 1");
        assert_eq!((c.offset, bytes.as_slice()), (1, &b"c"[..]));
        tx.commit().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_rolled_back_upload_leaves_nothing() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "up")?.with_chunk_size(1000)?;
        let mut w = s.create(&k("big")).await?.expect("new");
        w.write_all(&vec![7u8; 10_000]).await?;
        w.shutdown().await?;
        tx.commit().await?;

        let tx = db.begin(TxMode::ForWriting);
        let mut s = S::open(&tx, "up")?.with_chunk_size(1000)?;
        let mut w = s.replace(&k("big")).await?;
        w.write_all(&vec![9u8; 25_000]).await?;
        w.shutdown().await?;
        let mut w = s.create(&k("new")).await?.expect("new");
        w.write_all(b"never").await?;
        w.finish().await?;
        assert_eq!(s.len(&k("big")).await?, Some(25_000));
        tx.rollback().await?;

        let tx = db.begin(TxMode::ForReading);
        let mut s = S::open(&tx, "up")?;
        assert_eq!(s.get(&k("big")).await?, Some(vec![7u8; 10_000]));
        assert_eq!(s.len(&k("new")).await?, None);
        assert_eq!(s.count()?, 10);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_writer_dropped_unfinished_fails_the_commit() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "up")?.with_chunk_size(1000)?;
        let mut w = s.create(&k("half")).await?.expect("new");
        w.write_all(&vec![1u8; 1500]).await?; // one chunk stored, 500 bytes buffered
        drop(w);
        let e = tx.commit().await.unwrap_err();
        assert!(e.to_string().contains("finish"), "{e}");

        let tx = db.begin(TxMode::ForReading);
        assert!(tx.store_info("up")?.is_none(), "nothing of it committed");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn values_survive_a_reopen_and_seek_reads() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let db = Database::standalone(dir.path())?;
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "files")?.with_chunk_size(4096)?;
        let mut w = s.writer(&k("f")).await?;
        for piece in data.chunks(1000) {
            w.write_all(piece).await?;
        }
        w.shutdown().await?;
        tx.commit().await?;
    }
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut s = S::open(&tx, "files")?.with_chunk_size(4096)?;
    assert_eq!(s.len(&k("f")).await?, Some(100_000));
    assert_eq!(s.chunk_count(&k("f")).await?, 100_000u64.div_ceil(4096));
    let mut r = s.reader(&k("f")).await?.expect("stored");
    tokio::io::AsyncSeekExt::seek(&mut r, std::io::SeekFrom::Start(54_321)).await?;
    let mut buf = vec![0u8; 10_000];
    r.read_exact(&mut buf).await?;
    assert_eq!(buf, data[54_321..64_321]);
    // A partial update rewrites the chunks it covers, and only those.
    let before = s.chunk_keys(&k("f")).await?;
    s.write_at(&k("f"), 8190, b"XYZW").await?;
    assert_eq!(
        s.chunk_keys(&k("f")).await?,
        before,
        "same chunks, same offsets"
    );
    let mut four = [0u8; 4];
    s.read_at(&k("f"), 8190, &mut four).await?;
    assert_eq!(&four, b"XYZW");
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_commit_while_a_writer_holds_bytes_fails_and_keeps_nothing() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "up")?.with_chunk_size(1000)?;
        let mut w = s.create(&k("v")).await?.expect("new");
        w.write_all(&[1u8; 1500]).await?; // one chunk stored, 500 bytes buffered
        let e = tx.commit().await.unwrap_err();
        assert_eq!(e.kind(), sop_core::ErrorKind::Usage, "{e}");
        assert!(e.to_string().contains("finish"), "{e}");
        drop(w);
        let tx = db.begin(TxMode::ForReading);
        assert!(tx.store_info("up")?.is_none(), "nothing of it committed");
        drop(tx);

        // Flushed (nothing buffered), the commit goes through with every byte.
        let tx = db.begin(TxMode::ForWriting);
        let mut s = new_store(&tx, "up")?.with_chunk_size(1000)?;
        let mut w = s.create(&k("v")).await?.expect("new");
        w.write_all(&[1u8; 1500]).await?;
        w.flush().await?;
        assert_eq!(s.len(&k("v")).await?, Some(1500));
        tx.commit().await?;
        drop(w);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_decoder_reads_values_cut_by_chunk_boundaries() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let s = new_store(&tx, "j")?.with_chunk_size(4)?;
        let mut w = s.create(&k("v")).await?.expect("new");
        w.write_all(b"12345\n[1, 2]\n\"abcdefgh\" 7 -0.5e3").await?;
        w.finish().await?;
        let mut d = s.decoder(&k("v"), 0).await?.expect("value");
        assert_eq!(
            d.next::<serde_json::Value>().await?,
            Some(serde_json::json!(12345))
        );
        assert_eq!(
            d.next::<serde_json::Value>().await?,
            Some(serde_json::json!([1, 2]))
        );
        assert_eq!(d.next::<String>().await?.as_deref(), Some("abcdefgh"));
        assert_eq!(d.next::<i64>().await?, Some(7));
        assert_eq!(d.next::<f64>().await?, Some(-500.0));
        assert_eq!(d.next::<i64>().await?, None);
        tx.commit().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn offsets_past_the_longest_value_are_typed_errors() -> anyhow::Result<()> {
    with_db(|db| async move {
        let tx = db.begin(TxMode::ForWriting);
        let mut s = new_store(&tx, "big")?;
        let max = sop_streaming::MAX_VALUE_LEN;
        for e in [
            s.write_at(&k("v"), u64::MAX - 1, b"abc").await.unwrap_err(),
            s.write_at(&k("v"), max, b"a").await.unwrap_err(),
            s.truncate(&k("v"), u64::MAX).await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), sop_core::ErrorKind::Usage, "{e}");
        }
        let mut w = s.writer(&k("v")).await?;
        let e = w
            .seek(std::io::SeekFrom::Start(u64::MAX - 1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), sop_core::ErrorKind::Usage, "{e}");
        assert!(w.seek(std::io::SeekFrom::Current(-1)).await.is_err());
        w.seek(std::io::SeekFrom::Start(max - 1)).await?;
        assert!(
            w.write(b"ab").await.is_err(),
            "one byte past the longest value"
        );
        drop(w);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn two_uploads_into_one_node_merge_and_both_commit() -> anyhow::Result<()> {
    // Two transactions stream different values into one leaf of the chunk tree: the second
    // merges onto the first's node, replaying its chunks by the ids of values already written.
    let dir = tempfile::tempdir()?;
    {
        let db = Database::standalone(dir.path())?;
        let tx = db.begin(TxMode::ForWriting);
        let mut s = new_store(&tx, "up")?;
        s.put(&k("base"), b"base").await?;
        tx.commit().await?;

        let a = db.begin(TxMode::ForWriting);
        let b = db.begin(TxMode::ForWriting);
        let sa = S::open(&a, "up")?.with_chunk_size(100)?;
        let sb = S::open(&b, "up")?.with_chunk_size(100)?;
        let mut wa = sa.create(&k("a")).await?.expect("new");
        wa.write_all(&[b'a'; 1000]).await?;
        wa.shutdown().await?;
        let mut wb = sb.create(&k("b")).await?.expect("new");
        wb.write_all(&[b'b'; 1050]).await?;
        wb.shutdown().await?;
        a.commit().await?;
        b.commit().await?;
    }
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForReading);
    let mut s = S::open(&tx, "up")?;
    assert_eq!(s.get(&k("a")).await?, Some(vec![b'a'; 1000]));
    assert_eq!(s.get(&k("b")).await?, Some(vec![b'b'; 1050]));
    assert_eq!(s.get(&k("base")).await?.as_deref(), Some(&b"base"[..]));
    assert_eq!(s.count()?, 1 + 10 + 11);
    Ok(())
}
