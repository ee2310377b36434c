//! `cargo xtask bench --cluster [--secs S] [--procs 1,2,4,8] [--keys K] [--records R]
//! [--workload partitioned,a,b]`: clustered scale-out. P OS processes open one database folder
//! in clustered mode against one private `redis-server` for S seconds:
//! - `partitioned`: each commits one key per transaction in a key range of its own (K keys; no
//!   two processes ever touch the same key);
//! - `a` / `b`: YCSB A (50% reads, 50% updates) and B (95% reads) over R shared records,
//!   scrambled Zipfian keys, every operation its own transaction.
//!
//! Prints, per workload and P, operations/s, the speed-up over P = 1, retries, and p50/p99
//! latency; written to `target/bench/cluster.md`. Each run is on a fresh folder.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sop::{ClusterOptions, Database, StoreOptions, TxMode};
use sop_bench::rng::Rng;
use sop_bench::ycsb::Zipfian;

const STORE: &str = "kv";
const VALUE: usize = 150;

fn main() -> Result<()> {
    if std::env::var("SOP_CLUSTER_WORKER").is_ok() {
        return worker();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| sop_bench::flag(&args, name);
    let secs: u64 = value("--secs").map_or(Ok(5), |s| s.parse())?;
    let keys: u64 = value("--keys").map_or(Ok(1_000), |s| s.parse())?;
    let records: u64 = value("--records").map_or(Ok(10_000), |s| s.parse())?;
    let workloads: Vec<String> = value("--workload")
        .unwrap_or_else(|| "partitioned,a,b".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let procs: Vec<usize> = value("--procs")
        .unwrap_or_else(|| "1,2,4,8".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let root = PathBuf::from(value("--dir").unwrap_or_else(|| "target/bench/cluster-data".into()));
    let redis = sop_testkit::RedisServer::start();
    let mut rows = Vec::new();
    for w in &workloads {
        if !matches!(w.as_str(), "partitioned" | "a" | "b") {
            bail!("unknown workload {w:?}: partitioned, a or b");
        }
        for &p in &procs {
            let dir = root.join(format!("{w}-p{p}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let (loaded, range) = if w == "partitioned" {
                (p as u64 * keys, keys)
            } else {
                (records, records)
            };
            load(&dir, &redis.url(), loaded)?;
            eprintln!("  {w}, P = {p}: {secs} s");
            rows.push(measure(&dir, &redis.url(), w, p, range, secs)?);
        }
    }
    let report = table(&rows, secs, keys, records);
    print!("{report}");
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/cluster.md", &report)?;
    eprintln!("written to target/bench/cluster.md");
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Clustered mode needs a multi-threaded tokio runtime (its Redis client, block_in_place).
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn value_of(k: u64) -> Vec<u8> {
    k.to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(VALUE)
        .collect()
}

/// Creates the store with `n` keys, in one process.
fn load(dir: &Path, url: &str, n: u64) -> Result<()> {
    runtime()?.block_on(async {
        let db = Database::open_clustered(dir, ClusterOptions::new(url)).await?;
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.new_btree::<u64, Vec<u8>>(&tx, &StoreOptions::new(STORE))?;
        for k in 0..n {
            t.add(k, value_of(k)).await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// What one process did.
struct Done {
    commits: u64,
    retries: u64,
    latencies_us: Vec<u64>,
}

/// One row of the table.
struct Row {
    workload: String,
    procs: usize,
    commits: u64,
    retries: u64,
    p50_us: u64,
    p99_us: u64,
}

fn measure(dir: &Path, url: &str, workload: &str, p: usize, keys: u64, secs: u64) -> Result<Row> {
    // All start at the same moment, after every process has opened the database.
    let start_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64 + 3_000;
    let children: Vec<Child> = (0..p)
        .map(|i| {
            Command::new(std::env::current_exe()?)
                .env("SOP_CLUSTER_WORKER", "1")
                .env("SOP_CLUSTER_DB", dir)
                .env("SOP_CLUSTER_REDIS", url)
                .env("SOP_CLUSTER_WORKLOAD", workload)
                .env("SOP_CLUSTER_SEED", (i as u64 + 1).to_string())
                .env(
                    "SOP_CLUSTER_FIRST",
                    if workload == "partitioned" {
                        (i as u64 * keys).to_string()
                    } else {
                        "0".into()
                    },
                )
                .env("SOP_CLUSTER_KEYS", keys.to_string())
                .env("SOP_CLUSTER_START", start_at.to_string())
                .env("SOP_CLUSTER_SECS", secs.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .context("cannot start a worker process")
        })
        .collect::<Result<_>>()?;
    let mut commits = 0;
    let mut retries = 0;
    let mut latencies = Vec::new();
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("a worker failed: {}", out.status);
        }
        let done = parse(&String::from_utf8_lossy(&out.stdout))?;
        commits += done.commits;
        retries += done.retries;
        latencies.extend(done.latencies_us);
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(Row {
        workload: workload.to_string(),
        procs: p,
        commits,
        retries,
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}

fn parse(out: &str) -> Result<Done> {
    let line = out
        .lines()
        .find(|l| l.starts_with("DONE "))
        .context("a worker printed no result")?;
    let mut parts = line["DONE ".len()..].split(' ');
    let mut next = || parts.next().context("a short result line");
    let commits = next()?.parse()?;
    let retries = next()?.parse()?;
    let latencies_us = next()?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    Ok(Done {
        commits,
        retries,
        latencies_us,
    })
}

/// A worker process: one-key transactions on its own keys until the time is up.
fn worker() -> Result<()> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let dir = PathBuf::from(var("SOP_CLUSTER_DB")?);
    let url = var("SOP_CLUSTER_REDIS")?;
    let first: u64 = var("SOP_CLUSTER_FIRST")?.parse()?;
    let keys: u64 = var("SOP_CLUSTER_KEYS")?.parse()?;
    let start_at: u64 = var("SOP_CLUSTER_START")?.parse()?;
    let secs: u64 = var("SOP_CLUSTER_SECS")?.parse()?;
    let workload = var("SOP_CLUSTER_WORKLOAD")?;
    let seed: u64 = var("SOP_CLUSTER_SEED")?.parse()?;
    // The share of operations that read: YCSB A 50%, B 95%; the partitioned workload writes.
    let reads = match workload.as_str() {
        "a" => 0.5,
        "b" => 0.95,
        _ => 0.0,
    };
    let zipf = (reads > 0.0).then(|| Zipfian::new(keys, 0.99));
    let mut rng = Rng::new(seed);
    let done = runtime()?.block_on(async {
        let db = Database::open_clustered(&dir, ClusterOptions::new(url)).await?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(now))).await;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut done = Done {
            commits: 0,
            retries: 0,
            latencies_us: Vec::new(),
        };
        let mut i = 0u64;
        while Instant::now() < deadline {
            let k = match &zipf {
                Some(z) => z.next_scrambled(&mut rng, keys),
                None => first + i % keys,
            };
            i += 1;
            let began = Instant::now();
            let read = reads > 0.0 && rng.unit() < reads;
            loop {
                let mode = if read {
                    TxMode::ForReading
                } else {
                    TxMode::ForWriting
                };
                let tx = db.begin(mode);
                let r = async {
                    let mut t = db.open_btree::<u64, Vec<u8>>(&tx, STORE)?;
                    let found = if read {
                        t.get_ref(&k).await?.is_some()
                    } else {
                        t.upsert(k, value_of(k + i)).await?;
                        true
                    };
                    drop(t);
                    tx.commit().await.map(|()| found)
                }
                .await;
                match r {
                    Ok(true) => break,
                    Ok(false) => bail!("key {k} is missing"),
                    // Run again, as an application would: conflicts, busy locks, and a Redis
                    // too slow to answer under load (all counted as retries).
                    Err(e)
                        if e.is_retryable()
                            || matches!(
                                e,
                                sop::Error::Coordination(_)
                                    | sop::Error::Transaction(
                                        sop::TransactionError::Timeout { .. }
                                    )
                            ) =>
                    {
                        let _ = tx.rollback().await;
                        done.retries += 1;
                        if matches!(e, sop::Error::Coordination(_)) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    Err(e) => return Err(anyhow::Error::new(e)),
                }
            }
            done.latencies_us
                .push(u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX));
            done.commits += 1;
        }
        Ok::<_, anyhow::Error>(done)
    })?;
    let lat: Vec<String> = done.latencies_us.iter().map(u64::to_string).collect();
    println!("DONE {} {} {}", done.commits, done.retries, lat.join(","));
    Ok(())
}

fn table(rows: &[Row], secs: u64, keys: u64, records: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Clustered, {secs} s per run, one private redis-server, one folder, every operation its \
         own durable transaction. partitioned: each process upserts its own {keys} keys; a / b: \
         YCSB A (50% reads) / B (95% reads) over {records} shared records, scrambled Zipfian\n"
    );
    let _ = writeln!(
        out,
        "| workload | processes | operations/s | speed-up over 1 | retries | p50 µs | p99 µs |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let base = rows
            .iter()
            .find(|b| b.workload == r.workload)
            .map_or(0.0, |b| b.commits as f64);
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {} | {} | {} |",
            r.workload,
            r.procs,
            r.commits as f64 / secs as f64,
            if base > 0.0 {
                r.commits as f64 / base
            } else {
                0.0
            },
            r.retries,
            r.p50_us,
            r.p99_us
        );
    }
    out
}
