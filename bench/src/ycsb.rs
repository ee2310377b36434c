//! The YCSB core workloads over any [`Kv`]: key choice, operation mix, latency recording.
//!
//! As YCSB's `CoreWorkload`: keys are `user` + an FNV-64 hash of the record number (so key order
//! is unrelated to insertion order); records are 1 KB (10 fields of 100 bytes, stored as one
//! value); request keys follow a scrambled Zipfian distribution with constant 0.99 (workload D:
//! the "latest" distribution, skewed to the newest records); scans (E) start at a Zipfian key and
//! read a uniform 1..=100 records; inserts take the next record number. Every operation is its
//! own transaction; read-modify-write (F) is a read then an update, as YCSB's client does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};

use crate::Kv;
use crate::rng::Rng;

/// Bytes of a record.
pub const RECORD: usize = 1000;
/// YCSB's Zipfian constant.
pub const THETA: f64 = 0.99;

/// An operation kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// Point read.
    Read,
    /// Overwrite of an existing record.
    Update,
    /// New record.
    Insert,
    /// Short range read.
    Scan,
    /// Read, then update the same record.
    ReadModifyWrite,
}

/// A workload's operation mix: proportions of read, update, insert, scan, read-modify-write.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// `a`..`f`.
    pub name: char,
    /// Proportions, summing to 1.
    pub mix: [(Op, f64); 5],
    /// Whether request keys follow "latest" instead of Zipfian.
    pub latest: bool,
}

impl Workload {
    /// YCSB's core workload `name` (`a`..=`f`).
    ///
    /// # Errors
    /// Any other name.
    pub fn core(name: char) -> Result<Workload> {
        let m = |r, u, i, s, f| {
            [
                (Op::Read, r),
                (Op::Update, u),
                (Op::Insert, i),
                (Op::Scan, s),
                (Op::ReadModifyWrite, f),
            ]
        };
        let (mix, latest) = match name {
            'a' => (m(0.5, 0.5, 0.0, 0.0, 0.0), false),
            'b' => (m(0.95, 0.05, 0.0, 0.0, 0.0), false),
            'c' => (m(1.0, 0.0, 0.0, 0.0, 0.0), false),
            'd' => (m(0.95, 0.0, 0.05, 0.0, 0.0), true),
            'e' => (m(0.0, 0.0, 0.05, 0.95, 0.0), false),
            'f' => (m(0.5, 0.0, 0.0, 0.0, 0.5), false),
            other => bail!("unknown workload {other:?}: a, b, c, d, e or f"),
        };
        Ok(Workload { name, mix, latest })
    }

    fn pick(&self, rng: &mut Rng) -> Op {
        let mut x = rng.unit();
        for (op, p) in self.mix {
            if x < p {
                return op;
            }
            x -= p;
        }
        self.mix[0].0
    }
}

/// The key of record `n`: `user` + FNV-64 of `n`, as YCSB with `insertorder=hashed`.
#[must_use]
pub fn key(n: u64) -> Vec<u8> {
    format!("user{}", fnv64(n)).into_bytes()
}

/// FNV-1a over the 8 bytes of `v`.
#[must_use]
pub fn fnv64(v: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// YCSB's `ZipfianGenerator` (Gray et al., "Quickly generating billion-record synthetic
/// databases"), over `0..items`; the popular items are the small numbers.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    theta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// Over `0..items` with constant `theta`.
    #[must_use]
    pub fn new(items: u64, theta: f64) -> Self {
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        Zipfian {
            items,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
            theta,
        }
    }

    /// The next value.
    pub fn next(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let v = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.items - 1)
    }

    /// The next value, scrambled over `0..n` (YCSB's `ScrambledZipfianGenerator`): popular
    /// records are spread over the key space instead of clustered.
    pub fn next_scrambled(&self, rng: &mut Rng, n: u64) -> u64 {
        fnv64(self.next(rng)) % n.max(1)
    }
}

/// Latencies of one operation kind, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Latencies(pub Vec<u32>);

impl Latencies {
    /// The `q` quantile (0..=1), in microseconds.
    #[must_use]
    pub fn quantile(&mut self, q: f64) -> u32 {
        if self.0.is_empty() {
            return 0;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[i.min(self.0.len() - 1)]
    }
}

/// One workload's result.
#[derive(Debug)]
pub struct Outcome {
    /// Operations done.
    pub ops: u64,
    /// Seconds taken.
    pub secs: f64,
    /// Latencies per operation kind.
    pub latencies: std::collections::BTreeMap<Op, Latencies>,
}

/// Loads `records` records, in transactions of up to 10,000.
///
/// # Errors
/// The engine's.
pub fn load(kv: &dyn Kv, records: u64) -> Result<()> {
    let mut rng = Rng::new(7);
    let mut batch = Vec::with_capacity(10_000);
    for n in 0..records {
        batch.push((key(n), rng.bytes(RECORD)));
        if batch.len() == 10_000 {
            kv.write(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        kv.write(&batch)?;
    }
    Ok(())
}

/// Runs `ops` operations of `w` on `threads` threads over a store loaded with `records`.
///
/// # Errors
/// The engine's; a read that misses a loaded record.
pub fn run(
    kv: Arc<dyn Kv>,
    w: Workload,
    records: u64,
    ops: u64,
    threads: usize,
) -> Result<Outcome> {
    let inserted = Arc::new(AtomicU64::new(records));
    let zipf = Arc::new(Zipfian::new(records, THETA));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (kv, inserted, zipf) = (Arc::clone(&kv), Arc::clone(&inserted), Arc::clone(&zipf));
            let share = ops / threads as u64 + u64::from((t as u64) < ops % threads as u64);
            std::thread::spawn(
                move || -> Result<std::collections::BTreeMap<Op, Latencies>> {
                    let mut rng = Rng::new(1000 + t as u64);
                    let mut lat: std::collections::BTreeMap<Op, Latencies> = Default::default();
                    for _ in 0..share {
                        let op = w.pick(&mut rng);
                        let n = inserted.load(Ordering::Acquire);
                        let target = if w.latest {
                            // Skewed to the newest: latest - zipf(latest).
                            n - 1 - zipf.next(&mut rng).min(n - 1)
                        } else {
                            zipf.next_scrambled(&mut rng, records)
                        };
                        let t0 = Instant::now();
                        match op {
                            Op::Read => {
                                let got = kv.get(&[key(target)])?;
                                // A record another thread is inserting may not be committed yet
                                // (its number is taken before its insert returns); a loaded one
                                // must be there.
                                if got != RECORD && target < records {
                                    bail!("record {target} missing ({got} bytes)");
                                }
                            }
                            Op::Update => kv.write(&[(key(target), rng.bytes(RECORD))])?,
                            Op::Insert => {
                                let id = inserted.fetch_add(1, Ordering::AcqRel);
                                kv.write(&[(key(id), rng.bytes(RECORD))])?;
                            }
                            Op::Scan => {
                                let len = 1 + rng.below(100) as usize;
                                kv.scan(&[key(target)], len)?;
                            }
                            Op::ReadModifyWrite => {
                                let got = kv.get(&[key(target)])?;
                                if got != RECORD {
                                    bail!("record {target} missing ({got} bytes)");
                                }
                                kv.write(&[(key(target), rng.bytes(RECORD))])?;
                            }
                        }
                        let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
                        lat.entry(op).or_default().0.push(us);
                    }
                    Ok(lat)
                },
            )
        })
        .collect();
    let mut latencies: std::collections::BTreeMap<Op, Latencies> = Default::default();
    for h in handles {
        let part = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        for (op, l) in part {
            latencies.entry(op).or_default().0.extend(l.0);
        }
    }
    Ok(Outcome {
        ops,
        secs: start.elapsed().as_secs_f64(),
        latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_prefers_small_numbers_and_stays_in_range() {
        let z = Zipfian::new(1000, THETA);
        let mut rng = Rng::new(1);
        let mut hits = vec![0u32; 1000];
        for _ in 0..100_000 {
            hits[z.next(&mut rng) as usize] += 1;
        }
        // Item 0 is by far the most popular; the top 10 take a large share.
        assert!(hits[0] > hits[10] * 5, "{:?}", &hits[..12]);
        let top: u32 = hits[..10].iter().sum();
        assert!(top > 25_000, "{top}");
    }
}
