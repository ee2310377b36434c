//! Vector search: indexes a Gaussian mixture (fixed seed; default 20,000 vectors of 64
//! dimensions, `-- --n N --dims D`) or the rows of a CSV file (`-- --csv PATH [--label-last]`:
//! a real set; the last 100 rows are the queries), optimizes it (k-means centroids), then
//! measures recall@10 and queries/s against exact brute force for nprobe 1 to 64, with the
//! distance computations the triangle-inequality pruning saved. `cargo xtask bench --vector`
//! runs it at 100,000 x 128 and on scikit-learn's digits (from the Python package index).

use std::collections::HashSet;
use std::time::Instant;

use serde_json::json;
use sop::vector::{Metric, OptimizeOptions, QueryOptions, VectorStore, l2, optimize};
use sop::{Database, TxMode};

use sop_testkit::rng::TestRng as Rng;

/// Rows of numbers (the last column dropped when it is a label).
fn read_csv(path: &str, label_last: bool) -> anyhow::Result<Vec<Vec<f32>>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut row: Vec<f32> = line
            .split(',')
            .map(|x| x.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{path}:{}: {e}", i + 1))?;
        if label_last {
            row.pop();
        }
        rows.push(row);
    }
    Ok(rows)
}

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).map_or(Ok(default), |s| s.parse())?),
        None => Ok(default),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (points, queries) = match args.iter().position(|a| a == "--csv") {
        Some(i) => {
            let path = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("--csv needs a path"))?;
            let label = args.iter().any(|a| a == "--label-last");
            let mut rows = read_csv(path, label)?;
            anyhow::ensure!(rows.len() > 200, "{path}: too few rows");
            let queries = rows.split_off(rows.len() - 100);
            println!(
                "{} vectors of {} dimensions from {path}",
                rows.len(),
                rows[0].len()
            );
            (rows, queries)
        }
        None => {
            let n = arg(&args, "--n", 20_000)?;
            let d = arg(&args, "--dims", 64)?;
            let clusters = 64;
            let mut r = Rng::new(0x005e_ed0f_5eed);
            let centres: Vec<Vec<f32>> = (0..clusters)
                .map(|_| (0..d).map(|_| r.gauss() * 3.0).collect())
                .collect();
            let mut points: Vec<Vec<f32>> = (0..n + 200)
                .map(|i| {
                    centres[i % clusters]
                        .iter()
                        .map(|x| x + r.gauss())
                        .collect()
                })
                .collect();
            let queries = points.split_off(n);
            println!(
                "{n} vectors of {d} dimensions around {clusters} Gaussian centres (fixed seed)"
            );
            (points, queries)
        }
    };
    let (n, d, queries_n) = (points.len(), points[0].len(), queries.len());

    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let t = Instant::now();
    let tx = db.begin(TxMode::ForWriting);
    VectorStore::create(&tx, "mix", d, Metric::L2).await?;
    tx.commit().await?;
    for (b, chunk) in points.chunks(5_000).enumerate() {
        let tx = db.begin(TxMode::ForWriting);
        let mut v = VectorStore::open(&tx, "mix").await?;
        for (i, p) in chunk.iter().enumerate() {
            v.upsert(&format!("{:07}", b * 5_000 + i), p, json!(null))
                .await?;
        }
        tx.commit().await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!("indexed in {secs:.1} s: {:.0} vectors/s", n as f64 / secs);
    let t = Instant::now();
    let report = optimize(&db, "mix", &OptimizeOptions::default()).await?;
    println!(
        "optimize: {} centroids, {} vectors moved in {:.1} s",
        report.centroids,
        report.moved,
        t.elapsed().as_secs_f64()
    );

    // Exact answers, and the brute-force rate, over the same data in memory.
    let t = Instant::now();
    let truth: Vec<HashSet<String>> = queries
        .iter()
        .map(|q| {
            let mut dist: Vec<(f32, usize)> = points
                .iter()
                .enumerate()
                .map(|(i, p)| (l2(q, p), i))
                .collect();
            dist.select_nth_unstable_by(9, |a, b| a.0.total_cmp(&b.0));
            dist[..10].iter().map(|x| format!("{:07}", x.1)).collect()
        })
        .collect();
    let brute_qps = queries_n as f64 / t.elapsed().as_secs_f64();
    println!("brute force (in memory, one thread): {brute_qps:.0} queries/s");
    println!();
    println!(
        "| nprobe | recall@10 | queries/s | x brute force | distances/query | without pruning |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let tx = db.begin(TxMode::ForReading);
    let v = VectorStore::open(&tx, "mix").await?;
    for nprobe in [1, 2, 4, 8, 16, 32, 64] {
        let opts = QueryOptions {
            nprobe,
            ..QueryOptions::new(10)
        };
        let t = Instant::now();
        let (mut found, mut dist) = (0usize, 0u64);
        for (q, want) in queries.iter().zip(&truth) {
            let (hits, stats) = v.query(q, &opts).await?;
            found += hits.iter().filter(|h| want.contains(&h.id)).count();
            dist += stats.distances;
        }
        let qps = queries_n as f64 / t.elapsed().as_secs_f64();
        let mut full = 0u64;
        for q in &queries {
            let (_, s) = v
                .query(
                    q,
                    &QueryOptions {
                        no_pruning: true,
                        ..opts
                    },
                )
                .await?;
            full += s.distances;
        }
        println!(
            "| {nprobe} | {:.3} | {qps:.0} | {:.1} | {} | {} |",
            found as f64 / (queries_n * 10) as f64,
            qps / brute_qps,
            dist / queries_n as u64,
            full / queries_n as u64
        );
    }
    Ok(())
}
