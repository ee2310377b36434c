//! The registry: one B-tree of model versions (JSON metadata) and one streaming store of
//! artifacts.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sop_core::{
    CodecError, CorruptionError, Error, Result, StoreOptions, UsageError, ValueDataSize,
};
use sop_streaming::StreamingStore;

use crate::artifacts::artifact_key;
use sop_txn::{Store, Transaction};

/// A model version's key, ordered by category, name, then version. Version 0 is the model's
/// head (the next version number), never a saved version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    /// The category ("classifiers", "embedders", ...).
    pub category: String,
    /// The model's name within its category.
    pub name: String,
    /// The version (from 1).
    pub version: u64,
}

/// An artifact's key: a model version and the artifact's name ("weights", "tokenizer.json").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ArtifactKey {
    /// The model version.
    pub model: ModelKey,
    /// The artifact's name.
    pub artifact: String,
}

/// One saved version: its key, its metadata (JSON) and when it was saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Category, name and version.
    pub key: ModelKey,
    /// The model's metadata as saved.
    pub metadata: Value,
    /// When it was saved (Unix ms).
    pub saved_ms: i64,
}

/// What the models B-tree holds per key (JSON text: the head, or a version).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Record {
    Head { next_version: u64 },
    Version { metadata: Value, saved_ms: i64 },
}

/// A model registry in one transaction: SOP's `model.New(name, trans)` store, with versions.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use serde_json::json;
/// use sop_models::ModelStore;
/// use tokio::io::AsyncWriteExt;
///
/// let dir = tempfile::tempdir()?;
/// let db = sop_database::Database::standalone(dir.path())?;
/// let tx = db.begin(sop_txn::TxMode::ForWriting);
/// let mut models = ModelStore::open_or_create(&tx, "ml")?;
/// let v1 = models.save("classifiers", "spam", &json!({"threshold": 0.7})).await?;
/// let v2 = models.save("classifiers", "spam", &json!({"threshold": 0.8})).await?;
/// let mut w = models.artifact_writer("classifiers", "spam", v2, "weights").await?;
/// w.write_all(&[0u8; 1024]).await?;
/// w.shutdown().await?;
/// tx.commit().await?;
///
/// let tx = db.begin(sop_txn::TxMode::ForReading);
/// let mut models = ModelStore::open(&tx, "ml")?;
/// let (v, meta) = models.load::<serde_json::Value>("classifiers", "spam").await?.expect("saved");
/// assert_eq!((v, meta["threshold"].as_f64()), (2, Some(0.8)));
/// assert_eq!(models.versions("classifiers", "spam").await?, vec![v1, v2]);
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct ModelStore {
    pub(crate) models: Store<ModelKey, String>,
    pub(crate) artifacts: StreamingStore<ArtifactKey>,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStore")
            .field("models", &self.models.name())
            .finish_non_exhaustive()
    }
}

fn names(name: &str) -> (String, String) {
    (format!("{name}_models"), format!("{name}_artifacts"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ModelStore {
    /// Opens the registry `name` (stores `{name}_models` and `{name}_artifacts`), creating it
    /// when missing (SOP's `model.New`).
    ///
    /// # Errors
    /// An invalid name; a read-only transaction when it must be created; storage errors.
    pub fn open_or_create(tx: &Transaction, name: &str) -> Result<Self> {
        let (m, a) = names(name);
        let models = if tx.store_info(&m)?.is_some() {
            tx.open_btree(&m)?
        } else {
            tx.new_btree(
                &StoreOptions::with_value_size(m, ValueDataSize::Medium)
                    .slot_length(100)
                    .unique(true),
            )?
        };
        let artifacts =
            StreamingStore::open_or_create(tx, &StreamingStore::<ArtifactKey>::options(&a))?;
        Ok(ModelStore { models, artifacts })
    }

    /// Opens an existing registry.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`] when there is none.
    pub fn open(tx: &Transaction, name: &str) -> Result<Self> {
        let (m, a) = names(name);
        Ok(ModelStore {
            models: tx.open_btree(&m)?,
            artifacts: StreamingStore::open(tx, &a)?,
        })
    }

    pub(crate) fn key(category: &str, name: &str, version: u64) -> ModelKey {
        ModelKey {
            category: category.into(),
            name: name.into(),
            version,
        }
    }

    fn check_names(&self, category: &str, name: &str) -> Result<()> {
        if category.is_empty() || name.is_empty() {
            return Err(Error::Usage(UsageError::InvalidArgument {
                store: self.models.name().to_string(),
                what: "model key",
                reason: "the category and the name must not be empty".into(),
            }));
        }
        Ok(())
    }

    fn decode(&self, text: &str) -> Result<Record> {
        serde_json::from_str(text).map_err(|e| {
            Error::Corruption(CorruptionError::Decode {
                what: "a model record",
                source: CodecError::new(e),
            })
        })
    }

    fn encode<T: Serialize + ?Sized>(what: &'static str, v: &T) -> Result<String> {
        serde_json::to_string(v).map_err(|e| {
            Error::Usage(UsageError::Encode {
                what,
                source: CodecError::new(e),
            })
        })
    }

    /// Saves `metadata` as a new version of the model; its version number (1 for a new model,
    /// then one more than any version it ever had while it existed).
    ///
    /// # Errors
    /// [`UsageError::Encode`] when `metadata` is not JSON-serializable; empty category or
    /// name; conflicts, storage errors, a read-only transaction.
    pub async fn save<T: Serialize + ?Sized>(
        &mut self,
        category: &str,
        name: &str,
        metadata: &T,
    ) -> Result<u64> {
        self.check_names(category, name)?;
        let metadata = serde_json::to_value(metadata).map_err(|e| {
            Error::Usage(UsageError::Encode {
                what: "model metadata as JSON",
                source: CodecError::new(e),
            })
        })?;
        let head = Self::key(category, name, 0);
        let version = match self.models.get(&head).await? {
            Some(text) => match self.decode(&text)? {
                Record::Head { next_version } => next_version,
                Record::Version { .. } => {
                    return Err(Error::Corruption(CorruptionError::Invariant {
                        store: self.models.name().to_string(),
                        detail: format!("model {category}/{name}: its head is a version"),
                    }));
                }
            },
            None => 1,
        };
        let next = Self::encode(
            "a model head",
            &Record::Head {
                next_version: version + 1,
            },
        )?;
        self.models.upsert(head, next).await?;
        let rec = Self::encode(
            "a model version",
            &Record::Version {
                metadata,
                saved_ms: now_ms(),
            },
        )?;
        self.models
            .add(Self::key(category, name, version), rec)
            .await?;
        Ok(version)
    }

    /// The latest version and its metadata as a `T` (`None`: no such model).
    ///
    /// # Errors
    /// [`CorruptionError::Decode`] when the metadata is not a `T`; conflicts, storage errors.
    pub async fn load<T: DeserializeOwned>(
        &mut self,
        category: &str,
        name: &str,
    ) -> Result<Option<(u64, T)>> {
        let Some(v) = self.latest(category, name).await? else {
            return Ok(None);
        };
        Ok(Some((v.key.version, from_value(v.metadata)?)))
    }

    /// A given version's metadata as a `T` (`None`: no such version).
    ///
    /// # Errors
    /// As [`ModelStore::load`].
    pub async fn load_version<T: DeserializeOwned>(
        &mut self,
        category: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<T>> {
        match self.get(category, name, version).await? {
            Some(v) => Ok(Some(from_value(v.metadata)?)),
            None => Ok(None),
        }
    }

    /// A given version (`None`: no such version).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn get(
        &mut self,
        category: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<ModelVersion>> {
        if version == 0 {
            return Ok(None);
        }
        let key = Self::key(category, name, version);
        let Some(text) = self.models.get(&key).await? else {
            return Ok(None);
        };
        self.version_of(key, &text).map(Some)
    }

    fn version_of(&self, key: ModelKey, text: &str) -> Result<ModelVersion> {
        match self.decode(text)? {
            Record::Version { metadata, saved_ms } => Ok(ModelVersion {
                key,
                metadata,
                saved_ms,
            }),
            Record::Head { .. } => Err(Error::Corruption(CorruptionError::Invariant {
                store: self.models.name().to_string(),
                detail: format!(
                    "model {}/{} version {} is a head",
                    key.category, key.name, key.version
                ),
            })),
        }
    }

    /// The latest version (`None`: no such model).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn latest(&mut self, category: &str, name: &str) -> Result<Option<ModelVersion>> {
        self.models
            .find_descending(&Self::key(category, name, u64::MAX))
            .await?;
        let Some(key) = self.models.current_key().cloned() else {
            return Ok(None);
        };
        if key.category != category || key.name != name || key.version == 0 {
            return Ok(None);
        }
        let Some(text) = self.models.current_value().await? else {
            return Ok(None);
        };
        self.version_of(key, &text).map(Some)
    }

    /// The model's versions, oldest first (empty: no such model).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn versions(&mut self, category: &str, name: &str) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for k in self
            .keys_from(&Self::key(category, name, 1), |k| {
                k.category == category && k.name == name
            })
            .await?
        {
            out.push(k.version);
        }
        Ok(out)
    }

    /// The names of the models in a category, in order (SOP's `List`).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn list(&mut self, category: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for k in self
            .keys_from(&Self::key(category, "", 0), |k| k.category == category)
            .await?
        {
            if k.version == 0 {
                out.push(k.name);
            }
        }
        Ok(out)
    }

    /// The categories, in order.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn categories(&mut self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut more = self.models.first().await?;
        while more {
            let Some(k) = self.models.current_key().cloned() else {
                break;
            };
            out.push(k.category.clone());
            // Past every key of this category.
            let past = ModelKey {
                category: format!("{}\0", k.category),
                name: String::new(),
                version: 0,
            };
            self.models.find(&past, true).await?;
            more = self.models.current_key().is_some();
        }
        Ok(out)
    }

    /// Keys from `start` while `keep` holds.
    async fn keys_from(
        &mut self,
        start: &ModelKey,
        keep: impl Fn(&ModelKey) -> bool,
    ) -> Result<Vec<ModelKey>> {
        let mut out = Vec::new();
        self.models.find(start, true).await?;
        while let Some(k) = self.models.current_key() {
            if !keep(k) {
                break;
            }
            out.push(k.clone());
            if !self.models.next().await? {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes one version and its artifacts; `false` when there is no such version. The
    /// model's other versions stay, and its version numbers are not reused.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn delete_version(
        &mut self,
        category: &str,
        name: &str,
        version: u64,
    ) -> Result<bool> {
        if version == 0
            || !self
                .models
                .remove(&Self::key(category, name, version))
                .await?
        {
            return Ok(false);
        }
        for a in self.artifact_names(category, name, version).await? {
            self.artifacts
                .remove(&artifact_key(category, name, version, &a))
                .await?;
        }
        if self.versions(category, name).await?.is_empty() {
            self.models.remove(&Self::key(category, name, 0)).await?;
        }
        Ok(true)
    }

    /// Deletes the model: every version and artifact; how many versions (0 when there was no
    /// such model, which is not an error, as in SOP).
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn delete(&mut self, category: &str, name: &str) -> Result<u64> {
        let versions = self.versions(category, name).await?;
        for v in &versions {
            self.delete_version(category, name, *v).await?;
        }
        self.models.remove(&Self::key(category, name, 0)).await?;
        Ok(versions.len() as u64)
    }
}

fn from_value<T: DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| {
        Error::Corruption(CorruptionError::Decode {
            what: "model metadata as the type asked for",
            source: CodecError::new(e),
        })
    })
}
