//! Optimize: train centroids on a uniform sample (k-means++ then Lloyd) and rebuild the domain
//! into version N + 1 in small transactions while reads and writes go on, then switch.
//!
//! 1. One transaction: centroids of N + 1 from a sample drawn through the lookup tree; the
//!    configuration says `next = N + 1`. From then on every writer writes both versions (a
//!    writer that began before conflicts on the configuration it read, and retries).
//! 2. Batches of items in id order, one transaction each: every item without a place in N + 1
//!    gets one. A crash here is resumed by the next `optimize` (the configuration still says
//!    `next`), or undone by [`cancel_optimize`].
//! 3. One transaction: `version = N + 1`, `next = None`. Queries read N + 1 from then on.
//!
//! The stores of versions older than the current one stay until [`prune_versions`] removes
//! them (a reader that began before the switch may still be reading them).

use sop_core::Result;
use sop_database::Database;
use sop_txn::TxMode;

use crate::kmeans::{Rng, train};
use crate::layout::{self, Config, Place, Stored, Vector, dist_bits};
use crate::store::{CONFIG, VectorStore, create_version};

/// How an optimize runs.
#[derive(Clone, Copy, Debug)]
pub struct OptimizeOptions {
    /// Centroids to train (`None`: about the square root of the item count, 1 to 4,096).
    pub nlist: Option<usize>,
    /// Items sampled for training (at least 40 per centroid is enough).
    pub sample: usize,
    /// Lloyd iterations.
    pub iterations: usize,
    /// Items moved per transaction.
    pub batch: usize,
    /// Seed of the sample and of k-means (the same seed and data give the same centroids).
    pub seed: u64,
    /// Tests only: stop (as a crash would) after this many batches of phase 2.
    #[doc(hidden)]
    pub crash_after_batches: Option<usize>,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            nlist: None,
            sample: 20_000,
            iterations: 12,
            batch: 500,
            seed: 0x5eed,
            crash_after_batches: None,
        }
    }
}

/// What an optimize did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptimizeReport {
    /// The version now read.
    pub version: u32,
    /// Centroids of that version.
    pub centroids: usize,
    /// Items placed in it by the rebuild (not counting those writers placed meanwhile).
    pub moved: u64,
    /// Whether it finished an optimize a crash had interrupted.
    pub resumed: bool,
}

/// Retries a transaction body on conflicts (small transactions beside concurrent writers).
async fn run<T, F, Fut>(db: &Database, mode: TxMode, work: F) -> Result<T>
where
    F: Fn(sop_txn::Transaction) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    db.run(mode, 100, work).await
}

/// Rebuilds the domain `name` into a new version with trained centroids and switches to it.
///
/// # Errors
/// Storage errors; conflicts that 100 retries of one batch did not get past.
pub async fn optimize(db: &Database, name: &str, opts: &OptimizeOptions) -> Result<OptimizeReport> {
    let mut report = OptimizeReport::default();
    // Phase 1: the next version's centroids (or the one a crash left). Sampling and k-means
    // run in a read-only transaction (they would make a writing one conflict with every
    // concurrent insert); a short writing one then creates the version if the configuration
    // is still the one trained on.
    let (seen, count, centroids) = {
        let tx = db.begin(TxMode::ForReading);
        let mut v = VectorStore::open(&tx, name).await?;
        if v.config.next.is_some() {
            (v.config.clone(), 0, Vec::new())
        } else {
            let count = usize::try_from(v.count()?).unwrap_or(usize::MAX);
            let k = opts.nlist.unwrap_or_else(|| count.isqrt()).clamp(1, 4096);
            let sample = sample(&mut v, opts.sample.max(k), opts.seed).await?;
            (
                v.config.clone(),
                count,
                train(&sample, k, opts.iterations, opts.seed),
            )
        }
    };
    let (old, next) = run(db, TxMode::ForWriting, |tx| {
        let (seen, centroids) = (seen.clone(), centroids.clone());
        async move {
            let mut v = VectorStore::open(&tx, name).await?;
            if let Some(n) = v.config.next {
                return Ok((v.config.version, n, true));
            }
            if v.config.version != seen.version || seen.next.is_some() {
                return Err(changed(name));
            }
            // Above every version ever begun (and any store a crash left).
            let mut n = v.config.version.max(v.config.last);
            let prefix = format!("{}_vectors_v", name);
            for s in tx.stores()? {
                if let Some(x) = s.strip_prefix(&prefix).and_then(|x| x.parse::<u32>().ok()) {
                    n = n.max(x);
                }
            }
            let n = n + 1;
            create_version(&tx, name, n)?;
            let mut cs = tx.open_btree::<u32, Vector>(&layout::centroids(name, n))?;
            for (i, c) in centroids.iter().enumerate() {
                cs.add(u32::try_from(i).unwrap_or(u32::MAX), Vector(c.clone()))
                    .await?;
            }
            let config = Config {
                next: Some(n),
                last: n,
                trained_on: count as u64,
                ..v.config.clone()
            };
            v.meta.upsert(CONFIG.to_string(), config).await?;
            Ok((v.config.version, n, false))
        }
    })
    .await
    .map(|(o, n, resumed)| {
        report.resumed = resumed;
        (o, n)
    })?;
    // Phase 2: every item into the next version, a batch per transaction.
    let mut after = String::new();
    let mut batches = 0usize;
    loop {
        let from = after.clone();
        let (moved, last) = run(db, TxMode::ForWriting, |tx| {
            let from = from.clone();
            async move {
                let mut v = VectorStore::open(&tx, name).await?;
                move_batch(&mut v, old, next, &from, opts.batch.max(1)).await
            }
        })
        .await?;
        report.moved += moved;
        batches += 1;
        if opts.crash_after_batches.is_some_and(|n| batches >= n) {
            return Err(sop_core::Error::Usage(
                sop_core::UsageError::InvalidConfig {
                    what: "optimize",
                    reason: "stopped by crash_after_batches (a test's simulated crash)".into(),
                },
            ));
        }
        match last {
            Some(l) => after = l,
            None => break,
        }
    }
    // Phase 3: the switch, only if this build is still the one under way (another optimize
    // may have finished it, or `cancel_optimize` dropped it).
    run(db, TxMode::ForWriting, |tx| async move {
        let mut v = VectorStore::open(&tx, name).await?;
        if v.config.version != old || v.config.next != Some(next) {
            return Err(changed(name));
        }
        let config = Config {
            version: next,
            next: None,
            ..v.config.clone()
        };
        v.meta.upsert(CONFIG.to_string(), config).await
    })
    .await?;
    let tx = db.begin(TxMode::ForReading);
    let v = VectorStore::open(&tx, name).await?;
    report.version = v.version();
    report.centroids = v.centroid_count();
    Ok(report)
}

/// Abandons an optimize a crash left half done: the next version's stores are emptied and
/// the configuration forgets it (items keep their places in the current version).
///
/// # Errors
/// Storage errors.
pub async fn cancel_optimize(db: &Database, name: &str) -> Result<bool> {
    let next = run(db, TxMode::ForWriting, |tx| async move {
        let mut v = VectorStore::open(&tx, name).await?;
        let Some(n) = v.config.next else {
            return Ok(None);
        };
        let config = Config {
            next: None,
            ..v.config.clone()
        };
        v.meta.upsert(CONFIG.to_string(), config).await?;
        Ok(Some(n))
    })
    .await?;
    let Some(n) = next else { return Ok(false) };
    db.remove_btree(&layout::vectors(name, n))?;
    db.remove_btree(&layout::centroids(name, n))?;
    Ok(true)
}

/// Removes the stores of versions older than the current one; how many versions.
///
/// # Errors
/// Storage errors.
pub async fn prune_versions(db: &Database, name: &str) -> Result<u32> {
    let tx = db.begin(TxMode::ForReading);
    let v = VectorStore::open(&tx, name).await?;
    let (current, next) = (v.config.version, v.config.next);
    let stores = tx.stores()?;
    drop(v);
    drop(tx);
    let mut n = 0;
    for old in 0..current {
        if Some(old) == next {
            continue;
        }
        let (c, vs) = (layout::centroids(name, old), layout::vectors(name, old));
        if stores.contains(&vs) {
            db.remove_btree(&vs)?;
            db.remove_btree(&c)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Another optimize finished or cancelled the one under way.
fn changed(name: &str) -> sop_core::Error {
    sop_core::Error::Usage(sop_core::UsageError::InvalidConfig {
        what: "optimize",
        reason: format!(
            "the vector store {name:?} changed under this optimize (another optimize finished \
             or cancelled it); run it again"
        ),
    })
}

/// Up to `n` stored-form vectors drawn uniformly through the lookup tree (random probes land
/// on the next item by hash order).
async fn sample(v: &mut VectorStore, n: usize, seed: u64) -> Result<Vec<Vec<f32>>> {
    let count = usize::try_from(v.count()?).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if count == 0 {
        return Ok(out);
    }
    let mut ids: Vec<String> = Vec::new();
    if count <= n {
        let mut range = v.lookup.iter();
        while let Some(it) = range.next_key().await? {
            ids.push(it.1);
        }
    } else {
        let mut rng = Rng::new(seed);
        let mut seen = std::collections::HashSet::new();
        let mut tries = 0;
        while ids.len() < n && tries < n * 4 {
            tries += 1;
            let probe = (rng.next(), String::new());
            let mut range = v.lookup.range(probe..);
            let id = match range.next_key().await? {
                Some(k) => k.1,
                None => match v.lookup.iter().next_key().await? {
                    Some(k) => k.1,
                    None => break,
                },
            };
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        }
    }
    for id in ids {
        if let Some((x, _)) = v.get(&id).await? {
            out.push(x);
        }
    }
    Ok(out)
}

/// Places up to `batch` items after `from` (in id order) in version `next`; how many were
/// placed and the last id looked at (`None`: no items left).
async fn move_batch(
    v: &mut VectorStore,
    old: u32,
    next: u32,
    from: &str,
    batch: usize,
) -> Result<(u64, Option<String>)> {
    let mut todo = Vec::new();
    let mut last = None;
    {
        let lo = std::ops::Bound::Excluded(from.to_string());
        let lo = if from.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            lo
        };
        let mut range = v.items.range((lo, std::ops::Bound::Unbounded));
        while let Some(it) = range.next().await? {
            last = Some(it.key.clone());
            if !it.value.places.iter().any(|p| p.version == next) {
                todo.push((it.key, it.value));
            }
            if todo.len() >= batch {
                break;
            }
        }
    }
    if v.config.version != old || v.config.next != Some(next) {
        return Err(changed(&v.name));
    }
    let Some(nv) = v.next.as_mut().filter(|n| n.v == next) else {
        return Err(changed(&v.name));
    };
    let mut moved = 0;
    for (id, mut item) in todo {
        let Some(p) = item.places.iter().find(|p| p.version == old).copied() else {
            continue;
        };
        let key = (p.centroid, dist_bits(p.dist), id.clone());
        let Some(s) = v.cur.vectors.get(&key).await? else {
            continue;
        };
        let np: Place = nv.place(&s.vector.0);
        nv.vectors
            .upsert(
                (np.centroid, dist_bits(np.dist), id.clone()),
                Stored {
                    vector: s.vector,
                    payload: s.payload,
                },
            )
            .await?;
        item.places.retain(|q| q.version == old);
        item.places.push(np);
        v.items.upsert(id, item).await?;
        moved += 1;
    }
    Ok((moved, last))
}
