//! The project's task runner, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `test`: the gate CI runs: `cargo fmt --check`, clippy with warnings denied, the whole
//!   workspace's tests (debug), then the model tests in release: the B-tree's at 10,000 cases
//!   each, the database's at 256, and a full scan of 1,000,000 items within a memory bound;
//!   and the Python bindings' pytest suite against a wheel built by maturin (`python.rs`).
//! - `test --quick`: the same without the release model run.
//! - `stress`: the long runs (bank, clustered, 100 SIGKILL rounds, the large power-loss workload).
//! - `fuzz [--secs N]`: every cargo-fuzz target in `fuzz/` for N seconds.
//! - `bench [--n N] [--engines ..]`: sop-rs and its peers on redb's workload (`bench/`, its own
//!   workspace so the peers never enter the default build); `bench --micro`: criterion;
//!   `bench --cluster`: P processes in clustered mode on one folder (`bench/src/bin/cluster.rs`).
//! - `ycsb [...]`: the YCSB core workloads.

mod python;

use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(flags.contains(&"--quick")),
        Some("integration") => integration(flags.contains(&"--docker")),
        Some("stress") => stress(),
        Some("fuzz") => fuzz(
            flags
                .iter()
                .position(|f| *f == "--secs")
                .and_then(|i| flags.get(i + 1))
                .copied()
                .unwrap_or("60"),
        ),
        Some("bench") if flags.contains(&"--micro") => run(
            "cargo",
            &[
                "bench",
                "-p",
                "sop-btree",
                "-p",
                "sop-registry",
                "-p",
                "sop-blobstore-ec",
                "-p",
                "sop-database",
            ],
        ),
        Some("bench") if flags.contains(&"--cluster") => peers("cluster", &flags),
        // Recall@10 and queries/s against brute force, nprobe 1..64, 100,000 x 128.
        Some("bench") if flags.contains(&"--vector") => vector_bench(),
        // BM25 over the Markdown of the registry's crates: documents/s and queries/s.
        Some("bench") if flags.contains(&"--search") => {
            example("text_search", &["--rounds", "500"])
        }
        Some("bench") => peers("sop-bench", &flags),
        Some("ycsb") => peers("ycsb", &flags),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\ntasks:\n  test [--quick]   fmt, clippy, tests (+ release model and scan-memory tests unless --quick)\n  integration [--docker]\n                   clustered-mode tests against a private redis-server (--docker: the compose deployment)\n  stress           long clustered, concurrency, kill and power-loss runs, a 4 GiB streamed value\n  bench --vector   vector recall@10 and queries/s against brute force (100,000 x 128)\n  bench --search   BM25 indexing and query rates over the registry's crate docs
  fuzz [--secs N]  every fuzz target for N seconds (default 60; nightly + cargo-fuzz)\n  bench [--n N] [--engines sop,redb,..]
                   sop-rs side by side with redb, LMDB, SQLite, fjall (bench/, own workspace)
  bench --micro    the criterion micro-benchmarks
  bench --cluster [--secs S] [--procs 1,2,4,8] [--workload partitioned,a,b]
                   clustered scale-out: P processes, one folder, one private redis-server
  ycsb [--workload a..f|a,c] [--records N] [--ops M] [--threads T] [--engines ..]
                   YCSB core workloads"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn test(quick: bool) -> Result<(), String> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run("cargo", &["test", "--workspace"])?;
    // The Python bindings: a wheel built by maturin into a virtualenv, and their pytest suite.
    python::pytest()?;
    if !quick {
        // Property tests default to 10,000 cases in release builds.
        run(
            "cargo",
            &[
                "test",
                "--release",
                "-p",
                "sop-btree",
                "--test",
                "it",
                "model",
            ],
        )?;
        // A full scan of 1,000,000 items within a memory bound (allocator counts).
        run(
            "cargo",
            &["test", "--release", "-p", "sop", "--test", "scan_memory"],
        )?;
        // The offline agent answers (the README's command, on a fresh database).
        let _ = std::fs::remove_dir_all("target/doctor-ci");
        run(
            "cargo",
            &[
                "run",
                "--release",
                "-p",
                "sop-agent",
                "--example",
                "doctor",
                "--",
                "--db",
                "target/doctor-ci",
                "--ask",
                "I keep throwing up and have diarrhea",
            ],
        )?;
        // The database's model test: 256 cases in release builds.
        run(
            "cargo",
            &[
                "test",
                "--release",
                "-p",
                "sop-database",
                "--test",
                "it",
                "model",
            ],
        )?;
    }
    Ok(())
}

fn integration(docker: bool) -> Result<(), String> {
    if docker {
        let engine = Command::new("docker")
            .args(["info"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if engine.is_ok_and(|s| s.success()) {
            return run(
                "docker",
                &[
                    "compose",
                    "-f",
                    "deploy/compose.yaml",
                    "up",
                    "--build",
                    "--abort-on-container-exit",
                ],
            );
        }
        eprintln!(
            "no Docker engine here (`docker info` failed): running the local-process suite instead"
        );
    }
    run("cargo", &["test", "-p", "sop-coord", "--test", "redis"])?;
    run(
        "cargo",
        &["test", "-p", "sop-database", "--test", "it", "cluster"],
    )
}

fn stress() -> Result<(), String> {
    // Bigger runs of the clustered and in-process bank tests (the sizes are read by the tests),
    // the 100-round SIGKILL test, and the large power-loss workload cut at every sync point.
    let base = [
        "test",
        "--release",
        "-p",
        "sop-database",
        "--test",
        "it",
        "--",
    ];
    run_env(
        &[&base[..], &["cluster", "bank::", "kill::"]].concat(),
        &[
            ("SOP_CLUSTER_TRANSFERS", "2000"),
            ("SOP_SCALE_COMMITS", "3000"),
            ("SOP_BANK_TRANSFERS", "100000"),
            ("SOP_KILL_ROUNDS", "100"),
        ],
    )?;
    run_env(
        &[&base[..], &["powerloss::", "--nocapture"]].concat(),
        &[("SOP_POWERLOSS_LARGE", "1")],
    )?;
    // A 4 GiB value uploaded in one transaction and read back, within 256 MiB of memory.
    example("streaming", &["--gib", "4", "--max-rss-mib", "256"])
}

/// The vector example on the synthetic mixture, then on a real set from a package registry:
/// scikit-learn's digits (1,797 x 64), fetched with pip (skipped, saying so, without it).
fn vector_bench() -> Result<(), String> {
    example("vector_search", &["--n", "100000", "--dims", "128"])?;
    let dir = "target/bench-data";
    let fetched = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "scikit-learn==1.9.1",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            dir,
        ])
        .status()
        .is_ok_and(|s| s.success());
    let extract = "import glob,gzip,zipfile;\
        w=sorted(glob.glob('target/bench-data/scikit_learn-1.9.1-*.whl'))[0];\
        open('target/bench-data/digits.csv','wb').write(gzip.decompress(\
        zipfile.ZipFile(w).read('sklearn/datasets/data/digits.csv.gz')))";
    if !fetched
        || !std::process::Command::new("python3")
            .args(["-c", extract])
            .status()
            .is_ok_and(|s| s.success())
    {
        eprintln!("(no python3/pip or no network: the real set is skipped)");
        return Ok(());
    }
    example(
        "vector_search",
        &["--csv", "target/bench-data/digits.csv", "--label-last"],
    )
}

/// `cargo run --release -p sop --example NAME -- ARGS`.
fn example(name: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["run", "--release", "-p", "sop", "--example", name, "--"];
    all.extend_from_slice(args);
    run("cargo", &all)
}

/// Every fuzz target for `secs` seconds each (nightly toolchain and `cargo install cargo-fuzz`).
fn fuzz(secs: &str) -> Result<(), String> {
    let max_time = format!("-max_total_time={secs}");
    for target in FUZZ_TARGETS {
        run(
            "cargo",
            &[
                "+nightly",
                "fuzz",
                "run",
                "-O",
                target,
                "--",
                &max_time,
                "-print_final_stats=1",
            ],
        )?;
    }
    Ok(())
}

/// The targets in `fuzz/fuzz_targets`.
const FUZZ_TARGETS: [&str; 7] = [
    "node",
    "segment",
    "commit_record",
    "ec_records",
    "registry_block",
    "journal",
    "store_info",
];

/// Runs a binary of the `bench/` workspace in release mode with the given flags.
fn peers(bin: &str, flags: &[&str]) -> Result<(), String> {
    let mut args = vec![
        "run",
        "--release",
        "--manifest-path",
        "bench/Cargo.toml",
        "--bin",
        bin,
        "--",
    ];
    args.extend_from_slice(flags);
    run("cargo", &args)
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let mut cmd = Command::new("cargo");
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    eprintln!("==> {env:?} {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("stress run failed: {status}"))
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let line = format!("{program} {}", args.join(" "));
    eprintln!("==> {line}");
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("cannot start `{line}`: {e}"))?;
    eprintln!(
        "<== {line}: {status} in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}
