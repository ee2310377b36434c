//! The vector store: CRUD with payloads and filters, recall@10 after an optimize on a
//! Gaussian mixture against brute force, pruning that skips distance computations without
//! changing results, deletes and rollbacks that leave no ghosts, an optimize beside a
//! concurrent writer, and bad input as typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use sop_core::ErrorKind;
use sop_database::Database;
use sop_txn::TxMode;
use sop_vector::{Metric, OptimizeOptions, QueryOptions, VectorStore, l2, optimize};

use sop_testkit::rng::TestRng as Rng;

/// `n` points of dimension `d` around `clusters` Gaussian centres (fixed seed).
fn mixture(n: usize, d: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..d).map(|_| r.gauss() * 4.0).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % clusters];
            c.iter().map(|x| x + r.gauss()).collect()
        })
        .collect()
}

fn brute(points: &[Vec<f32>], q: &[f32], k: usize) -> Vec<usize> {
    let mut d: Vec<(f32, usize)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (l2(q, p), i))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|x| x.1).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_after_optimize_and_pruning_that_skips_work() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let (n, d) = (6_000, 32);
    // Queries from the same mixture, not stored.
    let mut points = mixture(n + 100, d, 24, 7);
    let queries = points.split_off(n);
    let tx = db.begin(TxMode::ForWriting);
    let mut v = VectorStore::create(&tx, "mix", d, Metric::L2).await?;
    for (i, p) in points.iter().enumerate() {
        v.upsert(&format!("{i:05}"), p, json!({"i": i, "even": i % 2 == 0}))
            .await?;
    }
    tx.commit().await?;

    let report = optimize(&db, "mix", &OptimizeOptions::default()).await?;
    assert_eq!(report.version, 1);
    assert!(report.centroids > 20, "{report:?}");
    assert_eq!(report.moved, n as u64);

    let tx = db.begin(TxMode::ForReading);
    let v = VectorStore::open(&tx, "mix").await?;
    assert_eq!(v.count()?, n as u64);
    let mut best_recall = 0.0f64;
    for nprobe in [1, 4, 16] {
        let (mut found, mut total) = (0usize, 0usize);
        let (mut pruned_d, mut full_d) = (0u64, 0u64);
        for q in &queries {
            let want: HashSet<String> = brute(&points, q, 10)
                .into_iter()
                .map(|i| format!("{i:05}"))
                .collect();
            let opts = QueryOptions {
                nprobe,
                ..QueryOptions::new(10)
            };
            let (hits, stats) = v.query(q, &opts).await?;
            let no = QueryOptions {
                nprobe,
                no_pruning: true,
                ..QueryOptions::new(10)
            };
            let (all, full) = v.query(q, &no).await?;
            // Pruning never changes what a probe finds, only how much it computes.
            assert_eq!(hits, all);
            assert!(stats.distances <= full.distances);
            assert_eq!(full.distances, full.scanned);
            pruned_d += stats.distances;
            full_d += full.distances;
            found += hits.iter().filter(|h| want.contains(&h.id)).count();
            total += 10;
        }
        let recall = found as f64 / total as f64;
        eprintln!(
            "nprobe {nprobe}: recall@10 {recall:.3}, distances {pruned_d} with pruning, {full_d} without"
        );
        if nprobe == 16 {
            // Far buckets are where the stored distances rule items out (near ones, in 32
            // dimensions, hold items all about as far from their centroid as the query).
            assert!(
                pruned_d * 10 < full_d * 9,
                "pruning skipped under 10% at nprobe {nprobe}"
            );
        }
        best_recall = best_recall.max(recall);
    }
    assert!(best_recall >= 0.95, "recall@10 {best_recall}");
    // A filter sees payloads.
    let even = |p: &serde_json::Value| p["even"] == json!(true);
    let opts = QueryOptions {
        nprobe: 16,
        filter: Some(&even),
        ..QueryOptions::new(10)
    };
    let (hits, _) = v.query(&queries[0], &opts).await?;
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.payload["even"] == json!(true)));
    Ok(())
}

#[tokio::test]
async fn crud_metrics_deletes_rollbacks_and_bad_input() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut cos = VectorStore::create(&tx, "cos", 3, Metric::Cosine).await?;
    let mut dotv = VectorStore::create(&tx, "dot", 2, Metric::Dot).await?;
    // The same id in two stores: two items.
    cos.upsert("x", &[1.0, 0.0, 0.0], json!("in cos")).await?;
    dotv.upsert("x", &[1.0, 1.0], json!("in dot")).await?;
    cos.upsert("y", &[0.0, 2.0, 0.0], json!(null)).await?;
    dotv.upsert("y", &[3.0, 0.0], json!(null)).await?;
    let (hits, _) = cos.query(&[0.0, 5.0, 0.1], &QueryOptions::new(2)).await?;
    assert_eq!(hits[0].id, "y");
    assert!(
        (hits[0].score - 0.9998).abs() < 1e-3,
        "cosine similarity {}",
        hits[0].score
    );
    let (hits, _) = dotv.query(&[1.0, 0.0], &QueryOptions::new(2)).await?;
    assert_eq!((hits[0].id.as_str(), hits[0].score), ("y", 3.0));
    assert_eq!(cos.get("x").await?.unwrap().1, json!("in cos"));
    assert_eq!(dotv.get("x").await?.unwrap().1, json!("in dot"));
    // Bad input: typed errors, nothing changed.
    for e in [
        cos.upsert("z", &[1.0, 2.0], json!(null)).await.unwrap_err(),
        cos.upsert("z", &[f32::NAN, 0.0, 1.0], json!(null))
            .await
            .unwrap_err(),
        cos.upsert("z", &[f32::INFINITY, 0.0, 1.0], json!(null))
            .await
            .unwrap_err(),
        cos.upsert("z", &[0.0, 0.0, 0.0], json!(null))
            .await
            .unwrap_err(),
        cos.upsert("", &[1.0, 0.0, 0.0], json!(null))
            .await
            .unwrap_err(),
        cos.query(&[1.0, 0.0, 0.0], &QueryOptions::new(0))
            .await
            .unwrap_err(),
        cos.query(
            &[1.0, 0.0, 0.0],
            &QueryOptions {
                nprobe: 0,
                ..QueryOptions::new(1)
            },
        )
        .await
        .unwrap_err(),
        cos.query(&[0.0, 0.0, 0.0], &QueryOptions::new(1))
            .await
            .unwrap_err(),
        cos.query(&[1.0, 0.0], &QueryOptions::new(1))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    }
    assert!(
        VectorStore::create(&tx, "zero", 0, Metric::L2)
            .await
            .is_err()
    );
    // Norms in f64: tiny and huge vectors have a direction under cosine.
    cos.upsert("tiny", &[1e-23, 0.0, 0.0], json!(null)).await?;
    cos.upsert("huge", &[0.0, 0.0, 1e20], json!(null)).await?;
    assert_eq!(cos.get("tiny").await?.unwrap().0, vec![1.0, 0.0, 0.0]);
    assert_eq!(cos.get("huge").await?.unwrap().0, vec![0.0, 0.0, 1.0]);
    assert!(cos.delete("tiny").await? && cos.delete("huge").await?);
    // Under L2 a vector whose distances would overflow f32 is refused.
    let mut l2s = VectorStore::create(&tx, "l2", 2, Metric::L2).await?;
    let e = l2s
        .upsert("big", &[3e18, 3e18], json!(null))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    l2s.upsert("p", &[1.0, 1.0], json!(null)).await?;
    // k far beyond the items: no allocation of k, no panic.
    let (hits, _) = l2s
        .query(&[0.0, 0.0], &QueryOptions::new(usize::MAX))
        .await?;
    assert_eq!(hits.len(), 1);
    assert_eq!(cos.count()?, 2);
    tx.commit().await?;

    // Delete: never returned again; a rolled-back upsert leaves no ghost.
    let tx = db.begin(TxMode::ForWriting);
    let mut cos = VectorStore::open(&tx, "cos").await?;
    assert!(cos.delete("y").await?);
    assert!(!cos.delete("y").await?);
    let (hits, _) = cos.query(&[0.0, 1.0, 0.0], &QueryOptions::new(5)).await?;
    assert!(hits.iter().all(|h| h.id != "y"));
    tx.commit().await?;
    let tx = db.begin(TxMode::ForWriting);
    let mut cos = VectorStore::open(&tx, "cos").await?;
    cos.upsert("ghost", &[0.0, 1.0, 0.0], json!(null)).await?;
    cos.upsert("x", &[0.0, 0.0, 1.0], json!("moved")).await?;
    tx.rollback().await?;
    let tx = db.begin(TxMode::ForReading);
    let cos = VectorStore::open(&tx, "cos").await?;
    let (hits, _) = cos.query(&[0.0, 1.0, 0.0], &QueryOptions::new(5)).await?;
    assert_eq!(
        hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["x"]
    );
    assert_eq!(
        cos.get("x").await?.unwrap(),
        (vec![1.0, 0.0, 0.0], json!("in cos"))
    );
    assert_eq!(cos.count()?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_beside_a_writer_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Arc::new(Database::standalone(dir.path())?);
    let d = 8;
    let points = mixture(3_000, d, 6, 3);
    let tx = db.begin(TxMode::ForWriting);
    let mut v = VectorStore::create(&tx, "live", d, Metric::L2).await?;
    for (i, p) in points.iter().enumerate().take(2_000) {
        v.upsert(&format!("{i:05}"), p, json!(i)).await?;
    }
    tx.commit().await?;
    // A writer adds the other 1,000 (and moves some of the first ones) while optimize runs.
    let writer = {
        let (db, points) = (Arc::clone(&db), points.clone());
        tokio::spawn(async move {
            for chunk in (2_000..3_000).collect::<Vec<_>>().chunks(50) {
                let chunk = chunk.to_vec();
                let points = points.clone();
                db.run(TxMode::ForWriting, 100, |tx| {
                    let (chunk, points) = (chunk.clone(), points.clone());
                    async move {
                        let mut v = VectorStore::open(&tx, "live").await?;
                        for i in chunk {
                            v.upsert(&format!("{i:05}"), &points[i], json!(i)).await?;
                            let j = i - 2_000;
                            v.upsert(&format!("{j:05}"), &points[j], json!(j)).await?;
                        }
                        Ok(())
                    }
                })
                .await?;
            }
            anyhow::Ok(())
        })
    };
    let opts = OptimizeOptions {
        batch: 200,
        ..OptimizeOptions::default()
    };
    let report = optimize(&db, "live", &opts).await?;
    writer.await??;
    assert_eq!(report.version, 1);
    let tx = db.begin(TxMode::ForReading);
    let v = VectorStore::open(&tx, "live").await?;
    assert_eq!(v.count()?, 3_000);
    // Every item is found at its own place (its nearest neighbour is itself).
    for (i, p) in points.iter().enumerate().step_by(7) {
        let (hits, _) = v
            .query(
                p,
                &QueryOptions {
                    nprobe: 4,
                    ..QueryOptions::new(1)
                },
            )
            .await?;
        assert_eq!(hits[0].id, format!("{i:05}"), "item {i}");
        assert_eq!(v.get(&format!("{i:05}")).await?.unwrap().0, *p);
    }
    // A full scan of the current version holds each item exactly once.
    let (hits, _) = v
        .query(
            &points[0],
            &QueryOptions {
                nprobe: 10_000,
                ..QueryOptions::new(5_000)
            },
        )
        .await?;
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!((hits.len(), ids.len()), (3_000, 3_000));
    Ok(())
}
