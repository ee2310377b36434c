//! A model version's artifacts (weights, tokenizers): streamed values keyed by version and name.

use sop_core::{Error, Result, UsageError};
use sop_streaming::{StreamReader, StreamWriter, StreamingStore};

use crate::store::{ArtifactKey, ModelKey, ModelStore};

impl ModelStore {
    async fn require(&mut self, category: &str, name: &str, version: u64) -> Result<()> {
        if self.get(category, name, version).await?.is_none() {
            return Err(Error::Usage(UsageError::InvalidArgument {
                store: self.models.name().to_string(),
                what: "model version",
                reason: format!("{category}/{name} has no version {version}; save it first"),
            }));
        }
        Ok(())
    }

    /// A writer of an artifact of a saved version (replacing one of that name).
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] when the version is not saved; conflicts, storage
    /// errors, a read-only transaction.
    pub async fn artifact_writer(
        &mut self,
        category: &str,
        name: &str,
        version: u64,
        artifact: &str,
    ) -> Result<StreamWriter<ArtifactKey, sop_btree::NaturalOrder>> {
        self.require(category, name, version).await?;
        self.artifacts
            .replace(&artifact_key(category, name, version, artifact))
            .await
    }

    /// A reader of an artifact (`None`: no such artifact).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn artifact_reader(
        &mut self,
        category: &str,
        name: &str,
        version: u64,
        artifact: &str,
    ) -> Result<Option<StreamReader<ArtifactKey, sop_btree::NaturalOrder>>> {
        self.artifacts
            .reader(&artifact_key(category, name, version, artifact))
            .await
    }

    /// The artifact names of a version, in order.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn artifact_names(
        &mut self,
        category: &str,
        name: &str,
        version: u64,
    ) -> Result<Vec<String>> {
        let from = artifact_key(category, name, version, "");
        let to = artifact_key(category, name, version.saturating_add(1), "");
        Ok(self
            .artifacts
            .keys_in(&from, &to)
            .await?
            .into_iter()
            .map(|k| k.artifact)
            .collect())
    }

    /// The artifacts' streaming store, for calls this type does not wrap (ranges, sizes).
    pub fn artifacts(&mut self) -> &mut StreamingStore<ArtifactKey> {
        &mut self.artifacts
    }
}

pub(crate) fn artifact_key(
    category: &str,
    name: &str,
    version: u64,
    artifact: &str,
) -> ArtifactKey {
    ArtifactKey {
        model: ModelKey {
            category: category.into(),
            name: name.into(),
            version,
        },
        artifact: artifact.into(),
    }
}
