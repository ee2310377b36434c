//! `cargo xtask ycsb [--workload a..f|a,c,..] [--records N] [--ops M] [--threads T]
//! [--engines sop,redb,..]`: YCSB core workloads, each on a freshly loaded store, reporting
//! throughput and p50/p99/p999 latency per operation kind; printed and written to
//! `target/bench/ycsb.md`.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use sop_bench::engines;
use sop_bench::ycsb::{self, Workload};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| sop_bench::flag(&args, name);
    let spec = value("--workload").unwrap_or_else(|| "a..f".into());
    let names: Vec<char> = if spec == "a..f" {
        "abcdef".chars().collect()
    } else {
        spec.split(',')
            .filter_map(|s| s.trim().chars().next())
            .collect()
    };
    let records: u64 = value("--records").map_or(Ok(100_000), |s| s.parse())?;
    let ops: u64 = value("--ops").map_or(Ok(20_000), |s| s.parse())?;
    let threads: usize = value("--threads").map_or(Ok(1), |s| s.parse())?;
    let engine_names: Vec<String> = value("--engines").map_or_else(
        || vec!["sop".to_string()],
        |s| s.split(',').map(str::to_string).collect(),
    );
    let root = PathBuf::from(value("--dir").unwrap_or_else(|| "target/bench/ycsb-data".into()));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "YCSB: {records} records of 1 KB, {ops} operations per workload, {threads} thread(s); every operation one durable transaction\n"
    );
    let _ = writeln!(
        out,
        "| engine | workload | ops/s | operation | p50 µs | p99 µs | p99.9 µs |"
    );
    let _ = writeln!(out, "|---|---|---:|---|---:|---:|---:|");
    for engine in &engine_names {
        for &w in &names {
            let workload = Workload::core(w)?;
            let dir = root.join(format!("{engine}-{w}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let kv: Arc<dyn sop_bench::Kv> = Arc::from(engines::open(engine, &dir)?);
            eprintln!("{engine} {w}: loading {records} records");
            ycsb::load(kv.as_ref(), records)?;
            let mut o = ycsb::run(Arc::clone(&kv), workload, records, ops, threads)?;
            let tput = o.ops as f64 / o.secs;
            eprintln!("{engine} {w}: {tput:.0} ops/s");
            for (op, lat) in &mut o.latencies {
                let _ = writeln!(
                    out,
                    "| {engine} | {w} | {tput:.0} | {op:?} ({}) | {} | {} | {} |",
                    lat.0.len(),
                    lat.quantile(0.5),
                    lat.quantile(0.99),
                    lat.quantile(0.999)
                );
            }
            drop(kv);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    println!("{out}");
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/ycsb.md", &out)?;
    eprintln!("written to target/bench/ycsb.md");
    Ok(())
}
