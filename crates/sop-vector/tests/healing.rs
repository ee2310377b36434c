//! Self-healing: skewed, drifted data makes the store ask for an optimize; the optimize runs in
//! the background while 2 writers and 2 readers go on; afterwards recall is no worse, the work
//! per query smaller, and nothing is lost. Hybrid search fuses as RRF computed by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;
use sop_database::Database;
use sop_search::SearchIndex;
use sop_txn::TxMode;
use sop_vector::{
    Metric, OptimizeOptions, QueryOptions, VectorStore, hybrid_search, l2, optimize,
    optimize_if_needed, rrf,
};

use sop_testkit::rng::TestRng as Rng;

fn cluster_set(n: usize, centres: &[Vec<f32>], r: &mut Rng) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            centres[i % centres.len()]
                .iter()
                .map(|x| x + r.gauss())
                .collect()
        })
        .collect()
}

async fn recall(
    db: &Database,
    all: &[(String, Vec<f32>)],
    queries: &[Vec<f32>],
    nprobe: usize,
) -> anyhow::Result<(f64, u64)> {
    let tx = db.begin(TxMode::ForReading);
    let v = VectorStore::open(&tx, "skew").await?;
    let (mut found, mut work) = (0usize, 0u64);
    for q in queries {
        let mut d: Vec<(f32, &String)> = all.iter().map(|(id, p)| (l2(q, p), id)).collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        let want: HashSet<&String> = d.iter().take(10).map(|x| x.1).collect();
        let (hits, stats) = v
            .query(
                q,
                &QueryOptions {
                    nprobe,
                    ..QueryOptions::new(10)
                },
            )
            .await?;
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
        work += stats.distances;
    }
    Ok((found as f64 / (queries.len() * 10) as f64, work))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_data_heals_in_the_background_while_readers_and_writers_go_on() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = Arc::new(Database::standalone(dir.path())?);
    let d = 16;
    let mut r = Rng::new(11);
    let old_centres: Vec<Vec<f32>> = (0..8)
        .map(|_| (0..d).map(|_| r.gauss() * 6.0).collect())
        .collect();
    // The data drifts: new clusters far from the old ones.
    let new_centres: Vec<Vec<f32>> = (0..16)
        .map(|_| (0..d).map(|_| 30.0 + r.gauss() * 6.0).collect())
        .collect();
    let mut all: Vec<(String, Vec<f32>)> = Vec::new();
    let tx = db.begin(TxMode::ForWriting);
    let mut v = VectorStore::create(&tx, "skew", d, Metric::L2).await?;
    for (i, p) in cluster_set(1_200, &old_centres, &mut r)
        .into_iter()
        .enumerate()
    {
        let id = format!("old{i:05}");
        v.upsert(&id, &p, json!(null)).await?;
        all.push((id, p));
    }
    tx.commit().await?;
    optimize(&db, "skew", &OptimizeOptions::default()).await?;
    // Heavily skewed: 6,000 drifted items all land in the few old buckets nearest them.
    let drifted = cluster_set(6_000, &new_centres, &mut r);
    let tx = db.begin(TxMode::ForWriting);
    let mut v = VectorStore::open(&tx, "skew").await?;
    for (i, p) in drifted.iter().enumerate() {
        let id = format!("new{i:05}");
        v.upsert(&id, p, json!(null)).await?;
        all.push((id, p.clone()));
    }
    let health = v.health().await?;
    assert!(health.reason.is_some(), "{health:?}");
    tx.commit().await?;
    let queries = cluster_set(50, &new_centres, &mut Rng::new(77));
    let (before, work_before) = recall(&db, &all, &queries, 8).await?;

    // The optimize in the background; 2 writers and 2 readers meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let extra = cluster_set(400, &new_centres, &mut Rng::new(5));
    let healer = {
        let db = Arc::clone(&db);
        tokio::spawn(async move {
            optimize_if_needed(
                &db,
                "skew",
                &OptimizeOptions {
                    batch: 300,
                    ..OptimizeOptions::default()
                },
            )
            .await
        })
    };
    let mut writers = Vec::new();
    for w in 0..2 {
        let (db, extra) = (Arc::clone(&db), extra.clone());
        writers.push(tokio::spawn(async move {
            for (i, p) in extra.iter().enumerate().filter(|(i, _)| i % 2 == w) {
                let id = format!("extra{i:05}");
                db.run(TxMode::ForWriting, 200, |tx| {
                    let (id, p) = (id.clone(), p.clone());
                    async move {
                        let mut v = VectorStore::open(&tx, "skew").await?;
                        v.upsert(&id, &p, json!({"w": w})).await
                    }
                })
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    let optimizing = Arc::new(AtomicBool::new(true));
    let during = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..2 {
        // One reader probes the items there before; the other the ones the writers add
        // meanwhile (as each becomes visible).
        let probe: Vec<(String, Vec<f32>)> = if r == 0 {
            all.clone()
        } else {
            extra
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("extra{i:05}"), p.clone()))
                .collect()
        };
        let (db, stop, reads) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&reads));
        let (optimizing, during) = (Arc::clone(&optimizing), Arc::clone(&during));
        readers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (id, p) = &probe[(i * 7919) % probe.len()];
                let tx = db.begin(TxMode::ForReading);
                let v = VectorStore::open(&tx, "skew").await?;
                let was_optimizing = optimizing.load(Ordering::Relaxed);
                // An item is always found where it is, before, during and after the switch
                // (one the writers have not added yet is simply not there).
                if v.get(id).await?.is_some() {
                    let (hits, _) = v
                        .query(
                            p,
                            &QueryOptions {
                                nprobe: 3,
                                ..QueryOptions::new(1)
                            },
                        )
                        .await?;
                    anyhow::ensure!(
                        hits.first().map(|h| h.score) == Some(0.0),
                        "item {id} not found: {hits:?}"
                    );
                    reads.fetch_add(1, Ordering::Relaxed);
                    if was_optimizing {
                        during.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
                tokio::task::yield_now().await;
            }
            anyhow::Ok(())
        }));
    }
    let report = healer.await??.expect("the store needed an optimize");
    optimizing.store(false, Ordering::Relaxed);
    for w in writers {
        w.await??;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await??;
    }
    assert_eq!(report.version, 2);
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert!(
        during.load(Ordering::Relaxed) > 0,
        "no read overlapped the optimize"
    );
    for (i, p) in extra.iter().enumerate() {
        all.push((format!("extra{i:05}"), p.clone()));
    }
    // At the same nprobe, recall at least as good for less work: the skewed store reached its
    // recall by scanning huge buckets; the healed one does with small ones.
    let (after, work_after) = recall(&db, &all, &queries, 8).await?;
    eprintln!(
        "recall@10 at nprobe 8: before {before:.3} ({work_before} distances), after {after:.3} ({work_after} distances)"
    );
    assert!(after >= before, "recall fell: {before} -> {after}");
    assert!(
        work_after < work_before,
        "the healed buckets should cost less per query"
    );
    // Nothing lost: every item once, each found at its place.
    let tx = db.begin(TxMode::ForReading);
    let v = VectorStore::open(&tx, "skew").await?;
    assert_eq!(v.count()?, all.len() as u64);
    for (id, p) in all.iter().step_by(13) {
        assert_eq!(v.get(id).await?.map(|x| x.0).as_ref(), Some(p), "{id}");
    }
    assert!(v.health().await?.reason.is_none());
    Ok(())
}

#[tokio::test]
async fn hybrid_search_is_rrf_of_both_rankings() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut text = SearchIndex::open_or_create(&tx, "docs")?;
    let mut vecs = VectorStore::create(&tx, "docs_vec", 2, Metric::L2).await?;
    let docs = [
        ("a", "rust storage engine", [0.0, 0.0]),
        ("b", "storage of vectors", [1.0, 0.0]),
        ("c", "a rust vector store", [0.0, 1.0]),
        ("d", "cooking with butter", [5.0, 5.0]),
        ("e", "rust rust rust", [3.0, 3.0]),
    ];
    for (id, t, v) in &docs {
        text.add(id, t).await?;
        vecs.upsert(id, v, json!(null)).await?;
    }
    let q_text = "rust storage";
    let q_vec = [0.9, 0.1];
    let by_text: Vec<String> = text
        .search(q_text, 5)
        .await?
        .into_iter()
        .map(|h| h.doc_id)
        .collect();
    let (hits, _) = vecs.query(&q_vec, &QueryOptions::new(5)).await?;
    let by_vec: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    let fused = hybrid_search(&text, &vecs, q_text, &q_vec, 5, 5, 8).await?;
    // By hand: 1/(60 + rank) summed over both lists.
    let mut want: Vec<(String, f64)> = Vec::new();
    for (id, ..) in &docs {
        let mut s = 0.0;
        for list in [&by_text, &by_vec] {
            if let Some(pos) = list.iter().position(|x| x == id) {
                s += 1.0 / (60.0 + (pos + 1) as f64);
            }
        }
        if s > 0.0 {
            want.push((id.to_string(), s));
        }
    }
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(fused.len(), want.len());
    for (g, w) in fused.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        assert!((g.1 - w.1).abs() < 1e-12);
    }
    assert_eq!(rrf(&[], 60.0), vec![]);
    tx.commit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_optimize_is_resumed_or_cancelled() -> anyhow::Result<()> {
    for cancel in [false, true] {
        let dir = tempfile::tempdir()?;
        let db = Database::standalone(dir.path())?;
        let centres: Vec<Vec<f32>> = (0..4).map(|c| vec![c as f32 * 10.0; 4]).collect();
        let points = cluster_set(1_500, &centres, &mut Rng::new(3));
        let tx = db.begin(TxMode::ForWriting);
        let mut v = VectorStore::create(&tx, "c", 4, Metric::L2).await?;
        for (i, p) in points.iter().enumerate() {
            v.upsert(&format!("{i:05}"), p, json!(i)).await?;
        }
        tx.commit().await?;
        // The "crash": phase 1 done and 2 batches of 200 moved, then nothing.
        let crash = OptimizeOptions {
            batch: 200,
            crash_after_batches: Some(2),
            ..OptimizeOptions::default()
        };
        assert!(optimize(&db, "c", &crash).await.is_err());
        // Still answering from version 0; writers meanwhile write both versions.
        let tx = db.begin(TxMode::ForWriting);
        let mut v = VectorStore::open(&tx, "c").await?;
        assert_eq!(v.version(), 0);
        v.upsert("late", &points[0], json!("late")).await?;
        assert!(v.delete("00001").await?);
        tx.commit().await?;
        if cancel {
            assert!(sop_vector::cancel_optimize(&db, "c").await?);
            assert!(!sop_vector::cancel_optimize(&db, "c").await?);
            // A later optimize starts afresh: items the cancelled one had moved are moved again.
            let report = optimize(&db, "c", &OptimizeOptions::default()).await?;
            assert!(!report.resumed);
            assert_eq!(report.moved, 1_500);
        } else {
            let report = optimize_if_needed(&db, "c", &OptimizeOptions::default())
                .await?
                .expect("an unfinished optimize is finished");
            assert!(report.resumed);
            assert_eq!(report.version, 1);
        }
        let tx = db.begin(TxMode::ForReading);
        let v = VectorStore::open(&tx, "c").await?;
        assert_eq!(v.version(), if cancel { 2 } else { 1 });
        assert_eq!(v.count()?, 1_500);
        let (hits, _) = v
            .query(
                &points[0],
                &QueryOptions {
                    nprobe: 64,
                    ..QueryOptions::new(2_000)
                },
            )
            .await?;
        let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!((hits.len(), ids.len()), (1_500, 1_500), "each item once");
        assert!(ids.contains("late") && !ids.contains("00001"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_healing_task_trains_a_store_that_needs_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Arc::new(Database::standalone(dir.path())?);
    let centres: Vec<Vec<f32>> = (0..6).map(|c| vec![c as f32 * 8.0; 8]).collect();
    let tx = db.begin(TxMode::ForWriting);
    let mut v = VectorStore::create(&tx, "auto", 8, Metric::L2).await?;
    for (i, p) in cluster_set(1_200, &centres, &mut Rng::new(9))
        .iter()
        .enumerate()
    {
        v.upsert(&format!("{i:05}"), p, json!(null)).await?;
    }
    assert!(
        v.health().await?.reason.is_some(),
        "1,200 items, never trained"
    );
    tx.commit().await?;
    let task = sop_vector::spawn_self_healing(
        Arc::clone(&db),
        "auto".into(),
        std::time::Duration::from_millis(20),
        OptimizeOptions::default(),
    );
    let start = std::time::Instant::now();
    loop {
        let tx = db.begin(TxMode::ForReading);
        let v = VectorStore::open(&tx, "auto").await?;
        if v.version() == 1 {
            assert!(v.centroid_count() > 1);
            assert!(v.health().await?.reason.is_none());
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "never healed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    Ok(())
}
