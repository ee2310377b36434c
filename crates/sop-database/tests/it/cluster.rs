//! Clustered mode against a real redis-server: several OS processes (this test binary started
//! again as workers) share one store folder and one Redis.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sop_core::{Error, StoreOptions, Uuid};
use sop_database::{ClusterOptions, Database, TxMode, is_retryable};
use sop_testkit::RedisServer;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options(url: &str) -> ClusterOptions {
    let mut o = ClusterOptions::new(url);
    o.redis.command_timeout = Duration::from_secs(1);
    o.redis.connect_timeout = Duration::from_secs(1);
    o
}

/// Opens clustered, retrying while Redis is down (a worker started during a Redis restart).
async fn open(path: &Path, url: &str) -> Database {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Database::open_clustered(path, options(url)).await {
            Ok(db) => return db,
            Err(Error::Coordination(sop_core::CoordinationError::Redis { .. }))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

async fn setup(path: &Path, url: &str) {
    crate::support::create_bank(&open(path, url).await).await;
}

/// One worker process: `SOP_WORKER_TRANSFERS` transfers, printing `DONE <id>` per committed
/// transfer and `ERRORS <kinds>` at the end. Does nothing when not started as a worker.
#[test]
fn worker() {
    let Ok(path) = std::env::var("SOP_WORKER_DB") else {
        return;
    };
    let url = std::env::var("SOP_WORKER_REDIS").unwrap();
    let n: usize = std::env::var("SOP_WORKER_TRANSFERS")
        .unwrap()
        .parse()
        .unwrap();
    let seed: u64 = std::env::var("SOP_WORKER_SEED").unwrap().parse().unwrap();
    rt().block_on(async move {
        let db = Arc::new(open(Path::new(&path), &url).await);
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut errors = std::collections::BTreeMap::<String, u64>::new();
        for _ in 0..n {
            let Some((from, to, amount)) = crate::support::next_transfer(&mut s) else {
                continue;
            };
            let id = Uuid::new_v4();
            loop {
                match crate::support::transfer(&db, 50, (id, from, to, amount)).await {
                    Ok(attempts) => {
                        *errors.entry("conflict retries".into()).or_default() += attempts - 1;
                        break;
                    }
                    Err(
                        e @ (Error::Coordination(sop_core::CoordinationError::Redis { .. })
                        | Error::Transaction(sop_core::TransactionError::Timeout { .. })),
                    )
                    | Err(e @ Error::Transaction(sop_core::TransactionError::LockBusy { .. })) => {
                        *errors.entry(kind(&e)).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) if is_retryable(&e) => {
                        *errors.entry(kind(&e)).or_default() += 1;
                    }
                    Err(e) => panic!("worker {seed}: {e}"),
                }
            }
            println!("DONE {id}");
        }
        println!("ERRORS {errors:?}");
    });
}

fn kind(e: &Error) -> String {
    format!("{e:?}")
        .split([' ', '{', '('])
        .next()
        .unwrap_or("")
        .to_string()
}

fn spawn_worker(path: &Path, url: &str, transfers: usize, seed: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cluster::worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOP_WORKER_DB", path)
        .env("SOP_WORKER_REDIS", url)
        .env("SOP_WORKER_TRANSFERS", transfers.to_string())
        .env("SOP_WORKER_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (bool, BTreeSet<Uuid>, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let done = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("DONE "))
        .map(|s| s.parse().unwrap())
        .collect();
    let summary = format!(
        "{}\n{}",
        stdout
            .lines()
            .filter(|l| l.starts_with("ERRORS"))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("worker"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    (out.status.success(), done, summary)
}

async fn verify(path: &Path, url: &str, committed: &BTreeSet<Uuid>) {
    crate::support::assert_bank(&open(path, url).await, committed).await;
}

fn transfers() -> usize {
    std::env::var("SOP_CLUSTER_TRANSFERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150)
}

#[test]
fn four_processes_share_one_store() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(setup(dir.path(), &server.url()));
    let workers: Vec<Child> = (0..4)
        .map(|i| spawn_worker(dir.path(), &server.url(), transfers(), i + 1))
        .collect();
    let mut committed = BTreeSet::new();
    for w in workers {
        let (ok, done, summary) = finish(w);
        assert!(ok, "a worker failed:\n{summary}");
        assert!(!summary.contains("Corruption"), "{summary}");
        eprintln!("worker: {} transfers; {summary}", done.len());
        committed.extend(done);
    }
    assert!(committed.len() > transfers() * 3, "{}", committed.len());
    rt().block_on(verify(dir.path(), &server.url(), &committed));
}

#[test]
fn redis_restarts_and_a_killed_process_do_not_break_invariants() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    rt().block_on(setup(dir.path(), &url));
    let mut workers: Vec<Child> = (0..3)
        .map(|i| spawn_worker(dir.path(), &url, transfers() * 4, i + 10))
        .collect();
    let victim = spawn_worker(dir.path(), &url, transfers() * 20, 99);
    std::thread::sleep(Duration::from_millis(700));
    server.restart();
    std::thread::sleep(Duration::from_millis(700));
    // SIGKILL one process in the middle of its work, and start a replacement.
    let mut victim = victim;
    victim.kill().unwrap();
    let (_, victim_done, _) = finish(victim);
    workers.push(spawn_worker(dir.path(), &url, transfers() * 2, 100));
    std::thread::sleep(Duration::from_millis(700));
    server.restart();
    let mut committed = victim_done;
    for w in workers {
        let (ok, done, summary) = finish(w);
        assert!(ok, "a worker failed:\n{summary}");
        assert!(!summary.contains("Corruption"), "{summary}");
        eprintln!("worker: {} transfers; {summary}", done.len());
        committed.extend(done);
    }
    // The killed worker's half-done transaction left only pieces nothing points at.
    rt().block_on(verify(dir.path(), &url, &committed));
}

#[test]
fn a_commit_in_one_process_is_read_right_after_by_another() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let a = open(dir.path(), &server.url()).await;
        let b = open(dir.path(), &server.url()).await;
        let tx = a.begin(TxMode::ForWriting);
        let mut t = a
            .new_btree::<u32, u64>(
                &tx,
                &StoreOptions::with_value_size("c", sop_core::ValueDataSize::Medium),
            )
            .unwrap();
        t.add(1, 0).await.unwrap();
        tx.commit().await.unwrap();
        for i in 1..=100u64 {
            let tx = a.begin(TxMode::ForWriting);
            let mut t = a.open_btree::<u32, u64>(&tx, "c").unwrap();
            t.update(&1, i).await.unwrap();
            tx.commit().await.unwrap();
            let tx = b.begin(TxMode::ForReading);
            let t = b.open_btree::<u32, u64>(&tx, "c").unwrap();
            assert_eq!(
                t.get(&1).await.unwrap(),
                Some(i),
                "stale read after a commit"
            );
            tx.commit().await.unwrap();
        }
    });
}

#[test]
fn unreachable_redis_fails_fast_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let port = sop_testkit::free_port();
        let mut o = ClusterOptions::new(format!("redis://127.0.0.1:{port}"));
        o.redis.connect_timeout = Duration::from_millis(500);
        let t = Instant::now();
        let err = Database::open_clustered(dir.path(), o).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(
            matches!(
                err,
                Error::Coordination(sop_core::CoordinationError::Redis { .. })
            ),
            "{err}"
        );

        // Redis dies under an open database: commits fail with the typed error, in time, and
        // nothing committed is lost.
        let mut server = RedisServer::start();
        let db = open(dir.path(), &server.url()).await;
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("u"))
            .unwrap();
        t.add(1, 1).await.unwrap();
        tx.commit().await.unwrap();
        server.stop();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, u32>(&tx, "u").unwrap();
        t.add(2, 2).await.unwrap();
        let t0 = Instant::now();
        let err = tx.commit().await.unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(
            matches!(
                err,
                Error::Coordination(sop_core::CoordinationError::Redis { .. })
            ),
            "{err}"
        );
        server.restart();
        drop(db);
        let db = open(dir.path(), &server.url()).await;
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, u32>(&tx, "u").unwrap();
        assert_eq!(t.range(..).collect().await.unwrap().len(), 1);
    });
}

#[test]
fn standalone_and_clustered_exclude_each_other() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let c = open(dir.path(), &server.url()).await;
        let err = Database::standalone(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::Usage(sop_core::UsageError::InUse { .. })),
            "{err}"
        );
        drop(c);
        let s = Database::standalone(dir.path()).unwrap();
        let err = Database::open_clustered(dir.path(), options(&server.url()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Usage(sop_core::UsageError::InUse { .. })),
            "{err}"
        );
        drop(s);
    });
}

#[test]
fn a_process_that_vanishes_mid_transaction_leaves_nothing_visible_across_redis_restarts() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    rt().block_on(async {
        let db = open(dir.path(), &url).await;
        let big = StoreOptions::with_value_size("big", sop_core::ValueDataSize::Big).slot_length(4);
        let tx = db.begin(TxMode::ForWriting);
        db.new_btree::<u32, Vec<u8>>(&tx, &big).unwrap();
        tx.commit().await.unwrap();

        // Another "process" writes a big value ahead of its commit, then vanishes without a
        // trace (no rollback): its value is in its own log segment, and nothing points at it.
        let other = open(dir.path(), &url).await;
        let tx = other.begin_with(
            sop_database::TxOptions::new(TxMode::ForWriting).max_time(Duration::from_millis(300)),
        );
        let mut t = other.open_btree::<u32, Vec<u8>>(&tx, "big").unwrap();
        t.add(1, vec![7; 4000]).await.unwrap();
        std::mem::forget(t);
        std::mem::forget(tx);

        let write = |v: u32| {
            let db = &db;
            async move {
                loop {
                    let tx = db.begin(TxMode::ForWriting);
                    let mut t = db.open_btree::<u32, Vec<u8>>(&tx, "big").unwrap();
                    t.upsert(100, vec![v as u8]).await.unwrap();
                    match tx.commit().await {
                        Ok(()) => return,
                        Err(Error::Coordination(sop_core::CoordinationError::Redis { .. })) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        };
        write(1).await;
        // Redis restarts (every lock is gone): commits go on, fenced by handle versions.
        server.restart();
        tokio::time::sleep(Duration::from_millis(300)).await;
        write(2).await;
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, Vec<u8>>(&tx, "big").unwrap();
        t.check().await.unwrap();
        assert_eq!(
            t.get(&1).await.unwrap(),
            None,
            "an uncommitted value is visible"
        );
        assert_eq!(t.get(&100).await.unwrap(), Some(vec![2]));
        assert_eq!(t.count().unwrap(), 1);
        tx.commit().await.unwrap();
        drop(other);
    });
}

#[test]
fn the_bank_runs_on_a_three_master_redis_cluster_with_a_master_restarted() {
    let mut cluster = sop_testkit::RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.url();
    rt().block_on(setup(dir.path(), &url));
    let mut workers: Vec<Child> = (0..4)
        .map(|i| spawn_worker(dir.path(), &url, transfers() * 6, i + 40))
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    // One master goes (its locks and cache entries with it) and comes back, mid-run.
    cluster.restart(1);
    assert!(
        workers.iter_mut().all(|w| w.try_wait().unwrap().is_none()),
        "the workers finished before the restart: give them more work"
    );
    let mut committed = BTreeSet::new();
    for w in workers {
        let (ok, done, summary) = finish(w);
        assert!(ok, "a worker failed:\n{summary}");
        assert!(!summary.contains("Corruption"), "{summary}");
        eprintln!("worker: {} transfers; {summary}", done.len());
        committed.extend(done);
    }
    assert!(committed.len() > transfers() * 3, "{}", committed.len());
    rt().block_on(verify(dir.path(), &url, &committed));
    let db = Database::standalone(dir.path()).unwrap();
    rt().block_on(crate::support::assert_verified(
        &db,
        "after the cluster run",
    ));
}
