//! Clustered mode without a cluster-wide gate: processes on disjoint key ranges and one on a
//! shared hot range commit in parallel through SIGKILLs and a Redis restart; a process stopped
//! (SIGSTOP) at its commit point past its locks cannot overwrite what another committed since.
//! Workers are this test binary started again (`cluster_scale::worker`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sop_core::{Error, StoreOptions};
use sop_database::{ClusterOptions, Database, TxMode, TxOptions, is_retryable};
use sop_testkit::RedisServer;

const RANGES: u64 = 4;
const PAIRS: u64 = 6;
const HOT: u64 = 6;
const HOT_START: i64 = 100;
const STORE: &str = "kv";

/// The two keys of pair `j` of range `r`: always written together, to the same value.
fn pair(r: u64, j: u64) -> (u64, u64) {
    (r * 1000 + 2 * j, r * 1000 + 2 * j + 1)
}

fn hot(i: u64) -> u64 {
    100_000 + i
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(path: &Path, url: &str) -> Database {
    let mut o = ClusterOptions::new(url);
    o.redis.command_timeout = Duration::from_secs(1);
    o.redis.connect_timeout = Duration::from_secs(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Database::open_clustered(path, o.clone()).await {
            Ok(db) => return db,
            Err(Error::Coordination(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

async fn setup(path: &Path, url: &str) {
    let db = open(path, url).await;
    let tx = db.begin(TxMode::ForWriting);
    let mut t = db
        .new_btree::<u64, i64>(&tx, &StoreOptions::new(STORE).slot_length(8))
        .unwrap();
    for r in 0..RANGES {
        for j in 0..PAIRS {
            let (a, b) = pair(r, j);
            t.add(a, 0).await.unwrap();
            t.add(b, 0).await.unwrap();
        }
    }
    for i in 0..HOT {
        t.add(hot(i), HOT_START).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Whether an error means "try again" to a worker (a conflict, a busy lock, Redis away).
fn again(e: &Error) -> bool {
    is_retryable(e)
        || matches!(
            e,
            Error::Coordination(_)
                | Error::Transaction(
                    sop_core::TransactionError::Timeout { .. }
                        | sop_core::TransactionError::LockBusy { .. }
                )
        )
}

/// One commit of a range worker on pair `j`: both keys must hold one value (a commit is never
/// half visible), and both move on by one. Returns the new value.
async fn bump_pair(db: &Database, r: u64, j: u64) -> Result<i64, Error> {
    let (ka, kb) = pair(r, j);
    let tx = db.begin(TxMode::ForWriting);
    let mut t = db.open_btree::<u64, i64>(&tx, STORE)?;
    let a = t.get(&ka).await?.unwrap_or(-1);
    let b = t.get(&kb).await?.unwrap_or(-2);
    assert_eq!(a, b, "HALF-VISIBLE: pair {r}/{j} read as {a} and {b}");
    t.upsert(ka, a + 1).await?;
    t.upsert(kb, a + 1).await?;
    drop(t);
    tx.commit().await?;
    Ok(a + 1)
}

/// One commit of the hot worker: the hot range must add up, then one unit moves.
async fn move_hot(db: &Database, from: u64, to: u64) -> Result<(), Error> {
    let tx = db.begin(TxMode::ForWriting);
    let mut t = db.open_btree::<u64, i64>(&tx, STORE)?;
    let items = t.range(hot(0)..hot(HOT)).collect().await?;
    let sum: i64 = items.iter().map(|i| i.value).sum();
    assert_eq!(
        sum,
        HOT_START * HOT as i64,
        "HALF-VISIBLE: the hot range adds up to {sum}"
    );
    let f = t.get(&hot(from)).await?.unwrap_or(0);
    let g = t.get(&hot(to)).await?.unwrap_or(0);
    t.upsert(hot(from), f - 1).await?;
    t.upsert(hot(to), g + 1).await?;
    drop(t);
    tx.commit().await
}

/// A worker process (does nothing unless started as one): `SOP_SCALE_ROLE` is `range:<r>`,
/// `hot` or `stall`; prints `DONE ...` after each acknowledged commit.
#[test]
fn worker() {
    let Ok(path) = std::env::var("SOP_SCALE_DB") else {
        return;
    };
    let url = std::env::var("SOP_SCALE_REDIS").unwrap();
    let role = std::env::var("SOP_SCALE_ROLE").unwrap();
    let n: u64 = std::env::var("SOP_SCALE_N").unwrap().parse().unwrap();
    if role == "standalone" {
        return rt().block_on(standalone_then_killed(Path::new(&path), n));
    }
    rt().block_on(async move {
        let db = open(Path::new(&path), &url).await;
        if role == "stall" {
            return stall(&db).await;
        }
        let mut s = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for i in 0..n {
            loop {
                let r = if let Some(r) = role.strip_prefix("range:") {
                    let r: u64 = r.parse().unwrap();
                    bump_pair(&db, r, i % PAIRS)
                        .await
                        .map(|v| format!("DONE {r} {} {v}", i % PAIRS))
                } else {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let from = s % HOT;
                    let to = (from + 1 + (s / HOT) % (HOT - 1)) % HOT;
                    move_hot(&db, from, to)
                        .await
                        .map(|()| "DONE hot".to_string())
                };
                match r {
                    Ok(line) => {
                        println!("{line}");
                        break;
                    }
                    Err(e) if again(&e) => tokio::time::sleep(Duration::from_millis(5)).await,
                    Err(e) => panic!("{role}: {e}"),
                }
            }
        }
    });
}

/// Commits `n` keys standalone (left in the log: no checkpoint before the kill), then waits
/// to be killed.
async fn standalone_then_killed(path: &Path, n: u64) {
    let db = Database::standalone(path).unwrap();
    for k in 0..n {
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
        t.upsert(500_000 + k, k as i64).await.unwrap();
        drop(t);
        tx.commit().await.unwrap();
    }
    println!("COMMITTED");
    std::thread::sleep(Duration::from_secs(600));
}

/// The stalled writer: changes key `hot(0)` in a transaction whose locks last 1 s, and stops
/// at its commit point long enough to be stopped there.
async fn stall(db: &Database) {
    sop_txn::testing::before_shared_commit_point(|| {
        use std::io::Write;
        println!("AT COMMIT POINT");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(1500));
    });
    let tx = db.begin_with(TxOptions::new(TxMode::ForWriting).max_time(Duration::from_secs(1)));
    let mut t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
    t.upsert(hot(0), 111).await.unwrap();
    drop(t);
    match tx.commit().await {
        Ok(()) => println!("RESULT committed"),
        Err(e) => println!("RESULT failed: {e}"),
    }
}

fn spawn(path: &Path, url: &str, role: &str, n: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cluster_scale::worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOP_SCALE_DB", path)
        .env("SOP_SCALE_REDIS", url)
        .env("SOP_SCALE_ROLE", role)
        .env("SOP_SCALE_N", n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a worker; its `DONE` lines, and whether it ended well (with its panics if not).
fn finish(child: Child) -> (bool, Vec<String>, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let done = stdout
        .lines()
        // The harness may print its "test ... " on the same line as the first one.
        .filter_map(|l| l.split_once("DONE ").map(|(_, rest)| rest))
        .map(str::to_string)
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("HALF"))
        .collect::<Vec<_>>()
        .join("\n");
    (out.status.success(), done, stderr)
}

fn commits() -> u64 {
    std::env::var("SOP_SCALE_COMMITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250)
}

#[test]
fn disjoint_ranges_and_a_hot_range_through_kills_and_a_redis_restart() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    rt().block_on(setup(dir.path(), &url));
    let n = commits();
    let mut workers: Vec<Child> = (1..RANGES)
        .map(|r| spawn(dir.path(), &url, &format!("range:{r}"), n))
        .collect();
    workers.push(spawn(dir.path(), &url, "hot", n));
    let victim = spawn(dir.path(), &url, "range:0", n * 20);
    std::thread::sleep(Duration::from_millis(800));
    server.restart();
    std::thread::sleep(Duration::from_millis(800));
    // SIGKILL the range-0 worker wherever it is, and let another take over its range.
    let mut victim = victim;
    victim.kill().unwrap();
    let (_, mut acked, _) = finish(victim);
    workers.push(spawn(dir.path(), &url, "range:0", n));
    std::thread::sleep(Duration::from_millis(300));
    server.restart();
    for w in workers {
        let (ok, done, panics) = finish(w);
        assert!(ok, "a worker failed:\n{panics}");
        acked.extend(done);
    }
    // Every acknowledged commit is there: a pair's value is at least the last one acked.
    let mut last = BTreeMap::<(u64, u64), i64>::new();
    let mut hot_done = 0;
    for line in &acked {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == "hot" {
            hot_done += 1;
            continue;
        }
        let key = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let v: i64 = f[2].parse().unwrap();
        let e = last.entry(key).or_default();
        *e = (*e).max(v);
    }
    assert!(
        hot_done >= n as usize,
        "the hot worker finished only {hot_done}"
    );
    rt().block_on(async {
        let db = open(dir.path(), &url).await;
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
        for r in 0..RANGES {
            for j in 0..PAIRS {
                let (ka, kb) = pair(r, j);
                let a = t.get(&ka).await.unwrap().unwrap();
                let b = t.get(&kb).await.unwrap().unwrap();
                assert_eq!(a, b, "pair {r}/{j} is half committed");
                let acked = last.get(&(r, j)).copied().unwrap_or(0);
                // The killed worker may have committed one more than it could print.
                assert!(a >= acked, "pair {r}/{j}: {a} < acknowledged {acked}");
                assert!(a <= acked + 1 || r == 0, "pair {r}/{j}: {a} > {acked} + 1");
            }
        }
        let sum: i64 = t
            .range(hot(0)..hot(HOT))
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|i| i.value)
            .sum();
        assert_eq!(sum, HOT_START * HOT as i64);
        t.check().await.unwrap();
        tx.commit().await.unwrap();
    });
    // And the folder verifies clean once every process is gone.
    let db = Database::standalone(dir.path()).unwrap();
    rt().block_on(crate::support::assert_verified(
        &db,
        "after the clustered run",
    ));
}

#[test]
fn a_writer_stopped_at_its_commit_point_past_its_locks_cannot_overwrite() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    rt().block_on(setup(dir.path(), &url));
    let mut stalled = spawn(dir.path(), &url, "stall", 1);
    let mut lines = BufReader::new(stalled.stdout.take().unwrap()).lines();
    loop {
        let Some(line) = lines.next() else {
            let out = stalled.wait_with_output().unwrap();
            panic!(
                "the worker ended early: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if line.unwrap().ends_with("AT COMMIT POINT") {
            break;
        }
    }
    let pid = stalled.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Its node locks (1 s) run out while it is stopped; this process takes them and commits
    // the same key.
    rt().block_on(async {
        let db = open(dir.path(), &url).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
            t.upsert(hot(0), 222).await.unwrap();
            drop(t);
            match tx.commit().await {
                Ok(()) => break,
                Err(e) if again(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(stalled.wait().unwrap().success());
    let result = rest
        .iter()
        .find(|l| l.contains("RESULT"))
        .expect("the stalled worker reported nothing");
    assert!(
        result.contains("RESULT failed"),
        "the stalled commit went through: {result}"
    );
    rt().block_on(async {
        let db = open(dir.path(), &url).await;
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
        assert_eq!(t.get(&hot(0)).await.unwrap(), Some(222), "overwritten");
        tx.commit().await.unwrap();
    });
}

#[test]
fn a_folder_moves_between_standalone_and_clustered_without_losing_a_commit() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    {
        // Standalone first: a store and commits that are only in the log when the process
        // is killed.
        let db = Database::standalone(dir.path()).unwrap();
        rt().block_on(async {
            let tx = db.begin(TxMode::ForWriting);
            db.new_btree::<u64, i64>(&tx, &StoreOptions::new(STORE).slot_length(8))
                .unwrap();
            tx.commit().await.unwrap();
        });
    }
    let mut child = spawn(dir.path(), &url, "standalone", 30);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().ends_with("COMMITTED")),
        "the standalone worker did not commit"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Clustered: sees every standalone commit, and adds its own.
    rt().block_on(async {
        let db = open(dir.path(), &url).await;
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
        for k in 0..30u64 {
            assert_eq!(t.get(&(500_000 + k)).await.unwrap(), Some(k as i64), "lost");
            t.upsert(600_000 + k, -(k as i64)).await.unwrap();
        }
        drop(t);
        tx.commit().await.unwrap();
    });
    // Standalone again: everything is there, it verifies clean, and it goes on committing.
    for round in 0..2 {
        let db = Database::standalone(dir.path()).unwrap();
        rt().block_on(async {
            crate::support::assert_verified(&db, "standalone after clustered").await;
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
            for k in 0..30u64 {
                assert_eq!(t.get(&(500_000 + k)).await.unwrap(), Some(k as i64));
                assert_eq!(t.get(&(600_000 + k)).await.unwrap(), Some(-(k as i64)));
            }
            t.upsert(700_000 + round, 1).await.unwrap();
            drop(t);
            tx.commit().await.unwrap();
        });
    }
    rt().block_on(async {
        let db = open(dir.path(), &url).await;
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u64, i64>(&tx, STORE).unwrap();
        assert_eq!(t.count().unwrap(), 62);
        tx.commit().await.unwrap();
    });
}

#[test]
fn a_store_removed_while_another_process_commits_to_it_leaves_nothing_behind() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    rt().block_on(async {
        // Two databases on one folder in one process: each has its own registry and locks,
        // exactly as two processes.
        let a = open(dir.path(), &url).await;
        let b = std::sync::Arc::new(open(dir.path(), &url).await);
        let tx = a.begin(TxMode::ForWriting);
        let mut t = a
            .new_btree::<u64, i64>(&tx, &StoreOptions::new("gone").slot_length(4))
            .unwrap();
        for k in 0..64 {
            t.add(k, 0).await.unwrap();
        }
        drop(t);
        tx.commit().await.unwrap();
        let writer = {
            let b = b.clone();
            tokio::spawn(async move {
                let (mut ok, mut refused) = (0u64, 0u64);
                for i in 0..400u64 {
                    let tx = b.begin(TxMode::ForWriting);
                    let r = async {
                        let mut t = b.open_btree::<u64, i64>(&tx, "gone")?;
                        t.upsert(i % 64, i as i64).await?;
                        t.upsert(1000 + i, 1).await?;
                        drop(t);
                        tx.commit().await
                    }
                    .await;
                    match r {
                        Ok(()) => ok += 1,
                        Err(Error::Usage(sop_core::UsageError::StoreNotFound { .. })) => {
                            refused += 1;
                        }
                        Err(e) if again(&e) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (ok, refused)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.remove_btree("gone").unwrap();
        let (ok, refused) = writer.await.unwrap();
        assert!(
            ok > 0 && refused > 0,
            "the removal did not land mid-run: {ok} {refused}"
        );
        let tx = b.begin(TxMode::ForReading);
        assert!(matches!(
            b.open_btree::<u64, i64>(&tx, "gone"),
            Err(Error::Usage(sop_core::UsageError::StoreNotFound { .. }))
        ));
        drop(tx);
    });
    assert!(
        !dir.path().join("meta/tables/gone").exists(),
        "a commit after the removal brought the table back"
    );
    let db = Database::standalone(dir.path()).unwrap();
    rt().block_on(crate::support::assert_verified(
        &db,
        "after a clustered removal",
    ));
}
