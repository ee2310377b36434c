//! `cargo xtask bench --cluster [--secs S] [--procs 1,2,4,8] [--keys K]`: clustered scale-out.
//! P OS processes open one database folder in clustered mode against one private
//! `redis-server`; each commits one key per transaction in a key range of its own (the
//! partitioned workload: no two processes ever touch the same key) for S seconds. Prints, per P,
//! transactions/s, the speed-up over P = 1, retries, and p50/p99 commit latency; written to
//! `target/bench/cluster.md`. Each P runs on a fresh folder (the same data loaded first).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sop::{ClusterOptions, Database, StoreOptions, TxMode};

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
    let procs: Vec<usize> = value("--procs")
        .unwrap_or_else(|| "1,2,4,8".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let root = PathBuf::from(value("--dir").unwrap_or_else(|| "target/bench/cluster-data".into()));
    let redis = sop_testkit::RedisServer::start();
    let mut rows = Vec::new();
    for &p in &procs {
        let dir = root.join(format!("p{p}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        load(&dir, &redis.url(), p as u64 * keys)?;
        eprintln!("  P = {p}: {secs} s of one-key transactions, {keys} keys per process");
        rows.push(measure(&dir, &redis.url(), p, keys, secs)?);
    }
    let report = table(&rows, secs, keys);
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
    procs: usize,
    commits: u64,
    retries: u64,
    p50_us: u64,
    p99_us: u64,
}

fn measure(dir: &Path, url: &str, p: usize, keys: u64, secs: u64) -> Result<Row> {
    // All start at the same moment, after every process has opened the database.
    let start_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64 + 3_000;
    let children: Vec<Child> = (0..p)
        .map(|i| {
            Command::new(std::env::current_exe()?)
                .env("SOP_CLUSTER_WORKER", "1")
                .env("SOP_CLUSTER_DB", dir)
                .env("SOP_CLUSTER_REDIS", url)
                .env("SOP_CLUSTER_FIRST", (i as u64 * keys).to_string())
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
            let k = first + i % keys;
            i += 1;
            let began = Instant::now();
            loop {
                let tx = db.begin(TxMode::ForWriting);
                let r = async {
                    let mut t = db.open_btree::<u64, Vec<u8>>(&tx, STORE)?;
                    t.upsert(k, value_of(k + i)).await?;
                    tx.commit().await
                }
                .await;
                match r {
                    Ok(()) => break,
                    Err(e) if e.is_retryable() => {
                        let _ = tx.rollback().await;
                        done.retries += 1;
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

fn table(rows: &[Row], secs: u64, keys: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Clustered, partitioned: each process upserts its own {keys} keys, one key per durable \
         transaction, for {secs} s; one private redis-server; one folder\n"
    );
    let _ = writeln!(
        out,
        "| processes | transactions/s | speed-up over 1 | retries | p50 commit µs | p99 commit µs |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    let base = rows.first().map_or(0.0, |r| r.commits as f64);
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} | {} | {} | {} |",
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
