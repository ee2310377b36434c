//! kill -9 during an upload of 1 GiB leaves either nothing or the whole value, and the upload
//! and read back stay within a bounded memory (the process's peak RSS).
//!
//! The test runs this test binary again as the uploading child (`child_upload`, which does
//! nothing unless `SOP_STREAM_CHILD` names a folder), and kills it with SIGKILL: once half way
//! through the upload, once after its commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sop_database::Database;
use sop_streaming::StreamingStore;
use sop_txn::TxMode;

const GIB: u64 = 1 << 30;
const BLOCK: usize = 1 << 20;
const CHILD: &str = "SOP_STREAM_CHILD";

/// The `i`th MiB of the value: deterministic, not compressible, cheap.
fn block(i: u64, out: &mut [u8]) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for w in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn note(progress: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(progress)
        .expect("progress file");
    writeln!(f, "{line}").expect("progress write");
}

#[test]
fn child_upload() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let dir = Path::new(&dir);
    let progress = dir.join("progress");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let db = Database::standalone(dir.join("db")).expect("open");
        let tx = db.begin(TxMode::ForWriting);
        let s = StreamingStore::<String>::open_or_create(
            &tx,
            &StreamingStore::<String>::options("uploads"),
        )
        .expect("store");
        let mut w = s
            .create(&"dataset".to_string())
            .await
            .expect("writer")
            .expect("new");
        let mut buf = vec![0u8; BLOCK];
        for i in 0..GIB / BLOCK as u64 {
            block(i, &mut buf);
            w.write(&buf).await.expect("write");
            if i % 64 == 63 {
                note(&progress, &format!("written {}", (i + 1) * BLOCK as u64));
            }
        }
        w.finish().await.expect("finish");
        tx.commit().await.expect("commit");
        note(&progress, &format!("committed rss {}", peak_rss_kib()));
        // Read it back whole, a chunk at a time.
        let tx = db.begin(TxMode::ForReading);
        let s = StreamingStore::<String>::open(&tx, "uploads").expect("open");
        let mut r = s
            .reader(&"dataset".to_string())
            .await
            .expect("r")
            .expect("value");
        let mut got = vec![0u8; BLOCK];
        let mut n = 0u64;
        loop {
            let k = r.read(&mut got).await.expect("read");
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        note(&progress, &format!("read {n} rss {}", peak_rss_kib()));
        std::thread::sleep(Duration::from_secs(600));
    });
}

fn progress_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("progress")).unwrap_or_default()
}

/// Runs the child until `ready` says so (or it exits), then SIGKILLs it.
fn run_child_until(dir: &Path, ready: impl Fn(&str) -> bool) -> String {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["child_upload", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let start = Instant::now();
    loop {
        let p = progress_of(dir);
        if ready(&p) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child ended early ({status}): {p}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "child too slow: {p}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    progress_of(dir)
}

async fn stored(dir: &Path) -> anyhow::Result<Option<(u64, bool)>> {
    let db = Database::standalone(dir.join("db"))?;
    let tx = db.begin(TxMode::ForReading);
    let Some(_) = tx.store_info("uploads")? else {
        return Ok(None);
    };
    let mut s = StreamingStore::<String>::open(&tx, "uploads")?;
    let key = "dataset".to_string();
    let Some(len) = s.len(&key).await? else {
        return Ok(None);
    };
    // Compare block by block with what the child wrote.
    let mut want = vec![0u8; BLOCK];
    let mut got = vec![0u8; BLOCK];
    let mut same = len == GIB;
    for i in 0..len.div_ceil(BLOCK as u64) {
        block(i, &mut want);
        let n = s.read_at(&key, i * BLOCK as u64, &mut got).await?;
        same &= got[..n] == want[..n];
    }
    Ok(Some((len, same)))
}

fn rss_after(p: &str, tag: &str) -> u64 {
    p.lines()
        .find_map(|l| {
            l.starts_with(tag)
                .then(|| l.rsplit(' ').next()?.parse().ok())?
        })
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn kill_during_an_upload_leaves_nothing_and_after_commit_the_whole() -> anyhow::Result<()> {
    if std::env::var(CHILD).is_ok() {
        return Ok(());
    }
    // Half way through the upload: nothing of it after reopening.
    let mid = tempfile::tempdir()?;
    let p = run_child_until(mid.path(), |p| p.contains(&format!("written {}", GIB / 2)));
    assert!(!p.contains("committed"), "{p}");
    assert_eq!(
        stored(mid.path()).await?,
        None,
        "a killed upload left something: {p}"
    );
    drop(mid);

    // After the commit (killed while reading it back or sleeping): the whole value.
    let done = tempfile::tempdir()?;
    let p = run_child_until(done.path(), |p| p.contains("read "));
    assert_eq!(stored(done.path()).await?, Some((GIB, true)), "{p}");
    // Memory stays at a few chunks (20 MiB each) whatever the value's size.
    let (up, read) = (rss_after(&p, "committed"), rss_after(&p, "read"));
    eprintln!("1 GiB upload: peak RSS {up} KiB; after reading it back {read} KiB");
    assert!(up < 256 * 1024, "upload peak RSS {up} KiB: {p}");
    assert!(read < 256 * 1024, "read-back peak RSS {read} KiB: {p}");
    Ok(())
}
