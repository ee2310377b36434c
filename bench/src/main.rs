//! `cargo xtask bench [--n N] [--engines a,b,..]`: redb's benchmark workload over sop-rs and its
//! peers, one engine after the other in one run, then a markdown table of operations per second
//! and sop-rs/peer ratios, printed and written to `target/bench/report.md`.
//!
//! Workload (fixed seed; 24-byte random keys, 150-byte random values): bulk load of N keys in
//! one transaction; 1,000 transactions of one key; 100 transactions of 1,000 keys; N random
//! point reads in one read transaction, and again with one read transaction per read; N/10
//! range reads of 10 keys; N random reads on 2 threads; removal of half the
//! keys in one transaction; bytes on disk after the writes, again 5 s later (background
//! reclamation), and after the removal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sop_bench::rng::Rng;
use sop_bench::{Kv, disk_usage, engines};

const KEY: usize = 24;
const VALUE: usize = 150;
/// The pause before the second size measurement.
const SETTLE: Duration = Duration::from_secs(5);

struct Phase {
    name: &'static str,
    ops: u64,
    took: Duration,
}

struct Run {
    engine: String,
    durability: &'static str,
    phases: Vec<Phase>,
    size_loaded: u64,
    size_settled: u64,
    size_after_remove: u64,
}

fn pairs(rng: &mut Rng, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n).map(|_| (rng.bytes(KEY), rng.bytes(VALUE))).collect()
}

fn timed(name: &'static str, ops: u64, f: impl FnOnce() -> Result<()>) -> Result<Phase> {
    let start = Instant::now();
    f().with_context(|| format!("phase {name}"))?;
    let took = start.elapsed();
    eprintln!(
        "    {name:<28} {ops:>9} ops in {:>9.1} ms: {:>12.0} ops/s",
        took.as_secs_f64() * 1e3,
        ops as f64 / took.as_secs_f64()
    );
    Ok(Phase { name, ops, took })
}

fn run_engine(name: &str, root: &std::path::Path, n: usize) -> Result<Run> {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let kv: Arc<dyn Kv> = Arc::from(engines::open(name, &dir)?);
    eprintln!("  {name}: {}", kv.durability());
    let mut rng = Rng::new(42);
    let load = pairs(&mut rng, n);
    let singles = pairs(&mut rng, 1_000);
    let batches: Vec<_> = (0..100).map(|_| pairs(&mut rng, 1_000)).collect();
    let mut keys: Vec<Vec<u8>> = load.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(singles.iter().map(|(k, _)| k.clone()));
    keys.extend(batches.iter().flatten().map(|(k, _)| k.clone()));
    let reads: Vec<Vec<u8>> = (0..n)
        .map(|_| keys[rng.below(keys.len() as u64) as usize].clone())
        .collect();
    let starts: Vec<Vec<u8>> = reads.iter().take(n / 10).cloned().collect();

    let mut phases = Vec::new();
    phases.push(timed("bulk load (1 txn)", n as u64, || kv.write(&load))?);
    phases.push(timed("individual writes (1 key/txn)", 1_000, || {
        singles
            .iter()
            .try_for_each(|p| kv.write(std::slice::from_ref(p)))
    })?);
    phases.push(timed("batch writes (1,000 keys/txn)", 100_000, || {
        batches.iter().try_for_each(|b| kv.write(b))
    })?);
    phases.push(timed("random reads", n as u64, || {
        let bytes = kv.get(&reads)?;
        anyhow::ensure!(
            bytes == n * VALUE,
            "read {bytes} bytes, expected {}",
            n * VALUE
        );
        Ok(())
    })?);
    // How most applications read: every read in a transaction of its own (each engine's `get`
    // begins and ends one read transaction per call).
    phases.push(timed("random reads, 1 txn/read", n as u64, || {
        let mut bytes = 0;
        for k in &reads {
            bytes += kv.get(std::slice::from_ref(k))?;
        }
        anyhow::ensure!(
            bytes == n * VALUE,
            "read {bytes} bytes, expected {}",
            n * VALUE
        );
        Ok(())
    })?);
    phases.push(timed(
        "range reads (10 keys)",
        (n / 10 * 10) as u64,
        || {
            let got = kv.scan(&starts, 10)?;
            anyhow::ensure!(got > starts.len() * 9, "range reads returned {got} items");
            Ok(())
        },
    )?);
    phases.push(timed("random reads, 2 threads", n as u64, || {
        let halves: Vec<Vec<Vec<u8>>> = reads.chunks(n.div_ceil(2)).map(<[_]>::to_vec).collect();
        let handles: Vec<_> = halves
            .into_iter()
            .map(|h| {
                let kv = Arc::clone(&kv);
                std::thread::spawn(move || kv.get(&h).map(|b| b / VALUE))
            })
            .collect();
        let mut found = 0;
        for h in handles {
            found += h.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
        }
        anyhow::ensure!(found == n, "found {found} of {n}");
        Ok(())
    })?);
    let size_loaded = disk_usage(&dir);
    // Engines that reclaim in the background (sop-rs's compaction, fjall's) are measured again
    // after a pause with nothing to do; the row above stays the one taken right away.
    std::thread::sleep(SETTLE);
    let size_settled = disk_usage(&dir);
    let half: Vec<Vec<u8>> = load.iter().take(n / 2).map(|(k, _)| k.clone()).collect();
    phases.push(timed("remove half (1 txn)", half.len() as u64, || {
        kv.remove(&half)
    })?);
    let durability = kv.durability();
    drop(kv);
    let size_after_remove = disk_usage(&dir);
    eprintln!(
        "    on disk: {:.1} MiB loaded, {:.1} MiB after removing half",
        size_loaded as f64 / (1 << 20) as f64,
        size_after_remove as f64 / (1 << 20) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        engine: name.into(),
        durability,
        phases,
        size_loaded,
        size_settled,
        size_after_remove,
    })
}

fn report(runs: &[Run], n: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "N = {n}; 24-byte random keys, 150-byte random values; operations per second (higher is better)\n"
    );
    let _ = write!(out, "| phase |");
    for r in runs {
        let _ = write!(out, " {} |", r.engine);
    }
    let _ = write!(out, "\n|---|");
    for _ in runs {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    let phases = runs.first().map_or(0, |r| r.phases.len());
    for i in 0..phases {
        let _ = write!(out, "| {} |", runs[0].phases[i].name);
        for r in runs {
            let p = &r.phases[i];
            let _ = write!(out, " {:.0} |", p.ops as f64 / p.took.as_secs_f64());
        }
        out.push('\n');
    }
    for (label, f) in [
        (
            "MiB on disk, loaded",
            (|r: &Run| r.size_loaded) as fn(&Run) -> u64,
        ),
        ("MiB on disk, loaded, 5 s later", |r: &Run| r.size_settled),
        ("MiB on disk, after removal", |r: &Run| r.size_after_remove),
    ] {
        let _ = write!(out, "| {label} (lower is better) |");
        for r in runs {
            let _ = write!(out, " {:.1} |", f(r) as f64 / (1 << 20) as f64);
        }
        out.push('\n');
    }
    // Ratios of each sop-rs configuration to each peer.
    let sops: Vec<&Run> = runs
        .iter()
        .filter(|r| r.engine.starts_with("sop"))
        .collect();
    let peers: Vec<&Run> = runs
        .iter()
        .filter(|r| !r.engine.starts_with("sop"))
        .collect();
    if !sops.is_empty() && !peers.is_empty() {
        let _ = writeln!(
            out,
            "\nsop-rs / peer (above 1.0: sop-rs is faster; for size: sop-rs is smaller){}\n",
            if sops.len() > 1 {
                "; cells: default / tuned"
            } else {
                ""
            }
        );
        let _ = write!(out, "| phase |");
        for p in &peers {
            let _ = write!(out, " vs {} |", p.engine);
        }
        let _ = write!(out, "\n|---|");
        for _ in &peers {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        for i in 0..phases {
            let _ = write!(out, "| {} |", runs[0].phases[i].name);
            for p in &peers {
                let cells: Vec<String> = sops
                    .iter()
                    .map(|s| {
                        format!(
                            "{:.2}",
                            p.phases[i].took.as_secs_f64() / s.phases[i].took.as_secs_f64()
                        )
                    })
                    .collect();
                let _ = write!(out, " {} |", cells.join(" / "));
            }
            out.push('\n');
        }
        for (label, f) in [
            (
                "size on disk, loaded",
                (|r: &Run| r.size_loaded) as fn(&Run) -> u64,
            ),
            ("size on disk, loaded, 5 s later", |r: &Run| r.size_settled),
            ("size on disk, after removal", |r: &Run| r.size_after_remove),
        ] {
            let _ = write!(out, "| {label} |");
            for p in &peers {
                let cells: Vec<String> = sops
                    .iter()
                    .map(|s| format!("{:.2}", f(p) as f64 / f(s) as f64))
                    .collect();
                let _ = write!(out, " {} |", cells.join(" / "));
            }
            out.push('\n');
        }
    }
    let _ = writeln!(out, "\nDurability per engine:\n");
    for r in runs {
        let _ = writeln!(out, "- {}: {}", r.engine, r.durability);
    }
    out
}

fn main() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| sop_bench::flag(&args, name);
    let n: usize = value("--n").map_or(Ok(1_000_000), |s| s.parse())?;
    let names: Vec<String> = value("--engines").map_or_else(
        || engines::ALL.iter().map(|s| (*s).to_string()).collect(),
        |s| s.split(',').map(str::to_string).collect(),
    );
    let root = PathBuf::from(value("--dir").unwrap_or_else(|| "target/bench/data".into()));
    std::fs::create_dir_all(&root)?;
    eprintln!(
        "bench: N = {n}, engines {names:?}, data in {}",
        root.display()
    );
    let mut runs = Vec::new();
    for name in &names {
        runs.push(run_engine(name, &root, n)?);
    }
    let table = report(&runs, n);
    println!("{table}");
    let out = PathBuf::from("target/bench/report.md");
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(&out, &table)?;
    eprintln!("written to {}", out.display());
    Ok(())
}
