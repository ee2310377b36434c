//! Self-healing: whether the centroids still fit the data (grown, drifted or skewed buckets),
//! and a background task that optimizes when they do not.

use std::sync::Arc;
use std::time::Duration;

use sop_core::Result;
use sop_database::Database;
use sop_txn::TxMode;

use crate::kmeans::Rng;
use crate::optimize::{OptimizeOptions, OptimizeReport, optimize};
use crate::store::VectorStore;

/// How well the current version's centroids fit the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// Items held.
    pub items: u64,
    /// Centroids of the current version (0: never optimized).
    pub centroids: usize,
    /// Items when the centroids were trained.
    pub trained_on: u64,
    /// The largest bucket's share of a sample of items, over the share of a bucket if all were
    /// equal (1.0: perfectly even; 8.0: one bucket holds 8 buckets' worth). Taken into account
    /// only when the sample has about 20 items per bucket.
    pub skew: f64,
    /// Why an optimize would help (`None`: it would not).
    pub reason: Option<String>,
}

/// Items before an untrained store is worth training.
const TRAIN_AT: u64 = 1_000;

impl VectorStore {
    /// Measures how well the centroids fit (a sample of up to 1,000 items through the lookup
    /// tree): an optimize helps when the store was never trained and holds over 1,000 items,
    /// grew 4x since training, or its sampled buckets are skewed over 8x.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn health(&self) -> Result<Health> {
        let items = self.count()?;
        let centroids = self.centroid_count();
        let trained_on = self.config.trained_on;
        let mut counts = vec![0u64; centroids.max(1)];
        let mut sampled = 0u64;
        // A fresh sample each time: a fixed one would give the same verdict for ever.
        let (hi, lo) = sop_core::Uuid::new_v4().high_low();
        let mut rng = Rng::new(hi ^ lo);
        for _ in 0..1_000.min(items) {
            let probe = (rng.next(), String::new());
            let mut found = self.lookup.range(probe..).next_key().await?;
            if found.is_none() {
                // Past the last hash: wrap to the first.
                found = self.lookup.iter().next_key().await?;
            }
            let Some((_, id)) = found else {
                continue;
            };
            if let Some(item) = self.items.get(&id).await?
                && let Some(p) = item.places.iter().find(|p| p.version == self.cur.v)
                && let Some(c) = counts.get_mut(p.centroid as usize)
            {
                *c += 1;
                sampled += 1;
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let skew = if sampled == 0 {
            1.0
        } else {
            let max = counts.iter().copied().max().unwrap_or(0) as f64;
            max / (sampled as f64 / counts.len() as f64)
        };
        let reason = if centroids == 0 && items >= TRAIN_AT {
            Some(format!("{items} items and no centroids yet"))
        } else if centroids > 0 && items > trained_on.saturating_mul(4).max(TRAIN_AT) {
            Some(format!("{items} items, centroids trained on {trained_on}"))
        } else if centroids > 1 && sampled >= 20 * centroids as u64 && skew > 8.0 {
            // Judged only with ~20 samples a bucket: fewer, and one bucket drawing two samples
            // looks skewed by chance.
            Some(format!(
                "buckets skewed: the largest holds {skew:.1}x its share"
            ))
        } else {
            None
        };
        Ok(Health {
            items,
            centroids,
            trained_on,
            skew,
            reason,
        })
    }
}

/// Optimizes the domain when [`VectorStore::health`] says it would help (or an optimize was
/// left half done); the report when it ran.
///
/// # Errors
/// As [`optimize`].
pub async fn optimize_if_needed(
    db: &Database,
    name: &str,
    opts: &OptimizeOptions,
) -> Result<Option<OptimizeReport>> {
    let (needed, unfinished) = {
        let tx = db.begin(TxMode::ForReading);
        let v = VectorStore::open(&tx, name).await?;
        (v.health().await?.reason.is_some(), v.config.next.is_some())
    };
    if !needed && !unfinished {
        return Ok(None);
    }
    optimize(db, name, opts).await.map(Some)
}

/// Checks the domain every `every` and optimizes it in the background when it needs it, while
/// readers and writers go on (see [`optimize`]); each round first removes the stores of versions
/// replaced before the last round (a reader still on one after a whole period fails with
/// `StoreNotFound` and retries). Stops when the handle is aborted or dropped with the runtime.
/// Errors (a conflict storm, a full disk) are reported and retried next time.
#[must_use]
pub fn spawn_self_healing(
    db: Arc<Database>,
    name: String,
    every: Duration,
    opts: OptimizeOptions,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            // Versions replaced at least one period ago: their readers have had time to end.
            if let Err(e) = crate::optimize::prune_versions(&db, &name).await {
                tracing::warn!(store = %name, error = %e, "pruning old vector versions failed");
            }
            if let Err(e) = optimize_if_needed(&db, &name, &opts).await {
                tracing::warn!(store = %name, error = %e, "self-healing optimize failed; retried later");
            }
        }
    })
}
