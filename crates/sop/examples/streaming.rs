//! Streaming: uploads a synthetic multi-GB file (default 4 GiB; `-- --gib N` for another
//! size) into a streaming store in one transaction through `std::io::Write`, reads it back
//! through `std::io::Read` checking every byte, seeks into the middle, and prints throughput
//! and the process's peak memory (it stays at a few 20 MiB chunks whatever the size;
//! `--max-rss-mib N` makes it fail above N).

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Instant;

use sop::TxMode;
use sop::blocking::{Database, StreamingStore};

const MIB: u64 = 1 << 20;

/// The `i`th MiB of the file: deterministic and not compressible.
fn block(i: u64, out: &mut [u8]) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for w in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
    }
}

/// The process's peak resident memory (Linux), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

fn progress(what: &str, done: u64, total: u64, t: Instant) {
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    print!(
        "\r{what}: {:>6} / {} MiB  {:>7.1} MiB/s",
        done / MIB,
        total / MIB,
        done as f64 / MIB as f64 / secs
    );
    let _ = std::io::stdout().flush();
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let gib: u64 = match args.iter().position(|a| a == "--gib") {
        Some(i) => args.get(i + 1).map_or(Ok(4), |s| s.parse())?,
        None => 4,
    };
    let total = gib * 1024 * MIB;
    let dir = tempfile::tempdir()?;
    println!(
        "streaming {gib} GiB through a database in {}",
        dir.path().display()
    );
    let db = Database::standalone(dir.path())?;
    let key = "dataset.bin".to_string();
    let mut buf = vec![0u8; MIB as usize];

    let tx = db.begin(TxMode::ForWriting);
    let files = StreamingStore::<String>::new(&tx, &StreamingStore::<String>::options("files"))?;
    let t = Instant::now();
    let mut w = files.writer(&key)?;
    for i in 0..total / MIB {
        block(i, &mut buf);
        w.write_all(&buf)?;
        if i % 64 == 63 {
            progress("upload", (i + 1) * MIB, total, t);
        }
    }
    w.finish()?;
    tx.commit()?;
    progress("upload", total, total, t);
    println!("  (one transaction, committed)");

    let tx = db.begin(TxMode::ForReading);
    let mut files = StreamingStore::<String>::open(&tx, "files")?;
    let len = files.len(&key)?.unwrap_or(0);
    let chunks = files.chunk_count(&key)?;
    println!(
        "stored: {} MiB in {chunks} chunks (from keys alone)",
        len / MIB
    );
    anyhow::ensure!(len == total, "stored {len} bytes, wrote {total}");

    let t = Instant::now();
    let mut r = files
        .reader(&key)?
        .ok_or_else(|| anyhow::anyhow!("value missing"))?;
    let mut want = vec![0u8; MIB as usize];
    for i in 0..total / MIB {
        r.read_exact(&mut buf)?;
        block(i, &mut want);
        anyhow::ensure!(buf == want, "MiB {i} differs");
        if i % 64 == 63 {
            progress("read back", (i + 1) * MIB, total, t);
        }
    }
    progress("read back", total, total, t);
    println!("  (every byte checked)");

    // Seek to the middle and read one MiB: one chunk read, found from keys.
    let mid = total / MIB / 2;
    r.seek(SeekFrom::Start(mid * MIB))?;
    r.read_exact(&mut buf)?;
    block(mid, &mut want);
    anyhow::ensure!(buf == want, "MiB {mid} differs after a seek");
    println!("seek to MiB {mid}: ok");
    tx.commit()?;
    let peak = peak_rss_mib();
    match peak {
        Some(m) => println!("peak resident memory: {m} MiB"),
        None => println!("peak resident memory: unknown on this system"),
    }
    // `--max-rss-mib N`: fail when the peak is over N (cargo xtask stress checks 256).
    if let Some(i) = args.iter().position(|a| a == "--max-rss-mib") {
        let max: u64 = args.get(i + 1).map_or(Ok(256), |s| s.parse())?;
        let peak = peak.ok_or_else(|| anyhow::anyhow!("peak memory unknown on this system"))?;
        anyhow::ensure!(
            peak <= max,
            "peak resident memory {peak} MiB is over {max} MiB"
        );
    }
    Ok(())
}
