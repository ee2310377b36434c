//! A vector domain in one transaction: configuration, items, the lookup tree, and the current
//! (and, during an optimize, the next) version's centroids and vectors.

use serde_json::Value;
use sop_core::{CorruptionError, Error, Result, StoreOptions, UsageError, ValueDataSize};
use sop_txn::{Store, Transaction};

use crate::kmeans::nearest;
use crate::layout::{self, Config, Item, Place, Stored, VecKey, dist_bits};
use crate::vector::{Metric, Vector, norm};

/// One version's centroids (read once per handle) and vectors.
pub(crate) struct Version {
    pub v: u32,
    /// Empty: the version has no centroids (one bucket, 0, around the origin).
    pub centroids: Vec<Vec<f32>>,
    pub vectors: Store<VecKey, Stored>,
}

impl Version {
    pub async fn open(tx: &Transaction, name: &str, v: u32) -> Result<Self> {
        let cstore = tx.open_btree::<u32, Vector>(&layout::centroids(name, v))?;
        let mut centroids = Vec::new();
        let mut range = cstore.iter();
        while let Some(it) = range.next().await? {
            centroids.push(it.value.0);
        }
        Ok(Version {
            v,
            centroids,
            vectors: tx.open_btree(&layout::vectors(name, v))?,
        })
    }

    /// Where a (stored-form) vector goes in this version.
    pub fn place(&self, x: &[f32]) -> Place {
        let (centroid, dist) = if self.centroids.is_empty() {
            (0, norm(x))
        } else {
            let (c, d) = nearest(&self.centroids, x);
            (u32::try_from(c).unwrap_or(u32::MAX), d)
        };
        Place {
            version: self.v,
            centroid,
            dist,
        }
    }
}

pub(crate) fn vectors_options(name: String) -> StoreOptions {
    StoreOptions::with_value_size(name, ValueDataSize::Small).slot_length(200)
}

pub(crate) fn create_version(tx: &Transaction, name: &str, v: u32) -> Result<()> {
    tx.new_btree::<u32, Vector>(&StoreOptions::new(layout::centroids(name, v)))?;
    tx.new_btree::<VecKey, Stored>(&vectors_options(layout::vectors(name, v)))?;
    Ok(())
}

/// A vector store (SOP's vector "domain") inside the caller's transaction: upsert, get,
/// delete and query, ACID with everything else the transaction does.
///
/// Vectors live in buckets of the nearest centroid, keyed `(centroid, distance to it, id)`, so
/// a query probes the `nprobe` buckets nearest the query and, inside each, walks outward from
/// the query's own distance to the centroid: by the triangle inequality an item whose stored
/// distance differs from the query's by more than the k-th best distance so far cannot make
/// the top k, and neither can any item beyond it, so the walk stops there (L2 and cosine).
/// [`crate::optimize`] trains the centroids (k-means) into a new version while reads and
/// writes go on, and switches to it atomically.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use sop_vector::{Metric, QueryOptions, VectorStore};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir()?;
/// let db = sop_database::Database::standalone(dir.path())?;
/// let tx = db.begin(sop_txn::TxMode::ForWriting);
/// let mut v = VectorStore::create(&tx, "docs", 3, Metric::Cosine).await?;
/// v.upsert("a", &[1.0, 0.0, 0.0], json!({"lang": "en"})).await?;
/// v.upsert("b", &[0.0, 1.0, 0.0], json!({"lang": "fr"})).await?;
/// tx.commit().await?;
///
/// let tx = db.begin(sop_txn::TxMode::ForReading);
/// let v = VectorStore::open(&tx, "docs").await?;
/// let (hits, _) = v.query(&[0.9, 0.1, 0.0], &QueryOptions::new(1)).await?;
/// assert_eq!(hits[0].id, "a");
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct VectorStore {
    pub(crate) name: String,
    pub(crate) meta: Store<String, Config>,
    pub(crate) items: Store<String, Item>,
    pub(crate) lookup: Store<(u64, String), ()>,
    pub(crate) config: Config,
    pub(crate) cur: Version,
    pub(crate) next: Option<Version>,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorStore")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) const CONFIG: &str = "config";

impl VectorStore {
    /// Creates the domain `name` for vectors of `dims` components compared by `metric`.
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] for 0 dimensions (or over 65,536);
    /// [`UsageError::StoreExists`]; a read-only transaction.
    pub async fn create(tx: &Transaction, name: &str, dims: usize, metric: Metric) -> Result<Self> {
        if dims == 0 || dims > 65_536 {
            return Err(Error::Usage(UsageError::InvalidArgument {
                store: name.to_string(),
                what: "dimensions",
                reason: format!("{dims}; give 1 to 65536"),
            }));
        }
        let mut meta = tx.new_btree::<String, Config>(&StoreOptions::new(layout::meta(name)))?;
        tx.new_btree::<String, Item>(&StoreOptions::new(layout::items(name)).slot_length(500))?;
        tx.new_btree::<(u64, String), ()>(
            &StoreOptions::new(layout::lookup(name)).slot_length(500),
        )?;
        create_version(tx, name, 0)?;
        let config = Config {
            dims: u32::try_from(dims).unwrap_or(u32::MAX),
            metric,
            version: 0,
            next: None,
            trained_on: 0,
            last: 0,
        };
        meta.add(CONFIG.to_string(), config).await?;
        drop(meta);
        Self::open(tx, name).await
    }

    /// Opens an existing domain.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`] when there is none.
    pub async fn open(tx: &Transaction, name: &str) -> Result<Self> {
        let meta = tx.open_btree::<String, Config>(&layout::meta(name))?;
        let config = meta.get(&CONFIG.to_string()).await?.ok_or_else(|| {
            Error::Corruption(CorruptionError::Invariant {
                store: layout::meta(name),
                detail: "the vector store's configuration is missing".into(),
            })
        })?;
        let cur = Version::open(tx, name, config.version).await?;
        let next = match config.next {
            Some(v) => Some(Version::open(tx, name, v).await?),
            None => None,
        };
        Ok(VectorStore {
            name: name.to_string(),
            meta,
            items: tx.open_btree(&layout::items(name))?,
            lookup: tx.open_btree(&layout::lookup(name))?,
            config,
            cur,
            next,
        })
    }

    /// The vectors' dimension.
    #[must_use]
    pub fn dims(&self) -> usize {
        self.config.dims as usize
    }

    /// The metric.
    #[must_use]
    pub fn metric(&self) -> Metric {
        self.config.metric
    }

    /// The version queries read (0 before the first optimize).
    #[must_use]
    pub fn version(&self) -> u32 {
        self.config.version
    }

    /// How many centroids the current version has (0: not optimized yet: one bucket).
    #[must_use]
    pub fn centroid_count(&self) -> usize {
        self.cur.centroids.len()
    }

    /// How many items the store holds.
    ///
    /// # Errors
    /// An ended transaction.
    pub fn count(&self) -> Result<u64> {
        self.items.count()
    }

    pub(crate) fn bad(&self, what: &'static str, reason: String) -> Error {
        Error::Usage(UsageError::InvalidArgument {
            store: self.name.clone(),
            what,
            reason,
        })
    }

    /// A vector checked and put in stored form (unit length under cosine).
    pub(crate) fn prepare(&self, what: &'static str, v: &[f32]) -> Result<Vec<f32>> {
        if v.len() != self.dims() {
            return Err(self.bad(
                what,
                format!("{} components; this store holds {}", v.len(), self.dims()),
            ));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(self.bad(what, format!("component {i} is {} (not finite)", v[i])));
        }
        // In f64: an f32 sum of squares overflows near 1e19 and underflows near 1e-23.
        let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        if self.config.metric == Metric::Cosine {
            if n == 0.0 {
                return Err(self.bad(what, "a zero vector has no direction (cosine)".into()));
            }
            #[allow(clippy::cast_possible_truncation)]
            return Ok(v.iter().map(|x| (f64::from(*x) / n) as f32).collect());
        }
        if n > 1e18 {
            return Err(self.bad(
                what,
                format!("its length {n:e} is over 1e18: distances would overflow f32; scale it"),
            ));
        }
        Ok(v.to_vec())
    }

    /// Adds or replaces the item `id` with `vector` and a JSON `payload` (what filters see).
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] for a vector of the wrong dimension, with NaN or
    /// infinite components, or zero under cosine, or an empty id; conflicts, storage errors, a
    /// read-only transaction.
    pub async fn upsert(&mut self, id: &str, vector: &[f32], payload: Value) -> Result<()> {
        if id.is_empty() {
            return Err(self.bad("id", "empty".into()));
        }
        let x = self.prepare("vector", vector)?;
        self.take_out(id).await?;
        let payload = payload.to_string();
        let mut places = Vec::with_capacity(2);
        for ver in std::iter::once(&mut self.cur).chain(self.next.as_mut()) {
            let p = ver.place(&x);
            ver.vectors
                .upsert(
                    (p.centroid, dist_bits(p.dist), id.to_string()),
                    Stored {
                        vector: Vector(x.clone()),
                        payload: payload.clone(),
                    },
                )
                .await?;
            places.push(p);
        }
        self.items
            .upsert(id.to_string(), Item { places, payload })
            .await?;
        self.lookup.upsert(layout::lookup_key(id), ()).await?;
        Ok(())
    }

    /// Upserts every item of a batch.
    ///
    /// # Errors
    /// As [`VectorStore::upsert`] (checked item by item: a bad one stops the batch; the
    /// transaction then holds the ones before it).
    pub async fn upsert_batch(&mut self, items: &[(String, Vec<f32>, Value)]) -> Result<()> {
        for (id, v, _) in items {
            self.prepare("vector", v)?;
            if id.is_empty() {
                return Err(self.bad("id", "empty".into()));
            }
        }
        for (id, v, p) in items {
            self.upsert(id, v, p.clone()).await?;
        }
        Ok(())
    }

    /// Removes the item's vectors from every version it is in; its entry, if any.
    async fn take_out(&mut self, id: &str) -> Result<Option<Item>> {
        let Some(item) = self.items.get(&id.to_string()).await? else {
            return Ok(None);
        };
        for p in &item.places {
            let key = (p.centroid, dist_bits(p.dist), id.to_string());
            if p.version == self.cur.v {
                self.cur.vectors.remove(&key).await?;
            } else if let Some(n) = self.next.as_mut().filter(|n| n.v == p.version) {
                n.vectors.remove(&key).await?;
            }
            // A place in an older version: that version is being dropped.
        }
        Ok(Some(item))
    }

    /// Removes the item; `false` when there is none.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn delete(&mut self, id: &str) -> Result<bool> {
        if self.take_out(id).await?.is_none() {
            return Ok(false);
        }
        self.items.remove(&id.to_string()).await?;
        self.lookup.remove(&layout::lookup_key(id)).await?;
        Ok(true)
    }

    /// The item's vector (stored form: unit length under cosine) and payload.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn get(&self, id: &str) -> Result<Option<(Vec<f32>, Value)>> {
        let Some(item) = self.items.get(&id.to_string()).await? else {
            return Ok(None);
        };
        let Some(p) = item.places.iter().find(|p| p.version == self.cur.v) else {
            return Err(Error::Corruption(CorruptionError::Invariant {
                store: layout::items(&self.name),
                detail: format!("item {id} has no place in version {}", self.cur.v),
            }));
        };
        let key = (p.centroid, dist_bits(p.dist), id.to_string());
        let Some(s) = self.cur.vectors.get(&key).await? else {
            return Err(Error::Corruption(CorruptionError::Invariant {
                store: layout::vectors(&self.name, self.cur.v),
                detail: format!("item {id}'s vector is missing"),
            }));
        };
        Ok(Some((s.vector.0, parse_payload(&s.payload))))
    }
}

pub(crate) fn parse_payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}
