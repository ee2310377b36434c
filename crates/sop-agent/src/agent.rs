//! A domain agent: a vector store and a text index of the same name, searched together.

use std::sync::Arc;

use serde_json::{Value, json};
use sop::search::{SearchIndex, UnicodeTokenizer};
use sop::vector::{Metric, VectorStore, hybrid_search};
use sop::{Database, Error, TxMode, UsageError};

use crate::config::DataItem;
use crate::embed::{Embedder, STOP_WORDS, hash_string};
use crate::error::{AgentError, Result};
use crate::ollama::{GenOptions, Generator};

/// Items per ingestion transaction.
pub const INGEST_BATCH: usize = 200;

/// A retrieved item.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Its id (a content hash).
    pub id: String,
    /// Its text.
    pub text: String,
    /// Its description.
    pub description: String,
    /// The fused (reciprocal rank) score.
    pub score: f64,
    /// The whole payload (text, description, original_id, ...).
    pub payload: Value,
}

/// An agent over one knowledge base (SOP's `Service` with a `GenericDomain`).
pub struct DomainAgent {
    pub(crate) id: String,
    db: Arc<Database>,
    embedder: Arc<dyn Embedder>,
    generator: Option<Arc<dyn Generator>>,
    gen_options: GenOptions,
    system_prompt: String,
    top_k: usize,
    /// What makes its vectors (`simple:1024:<synonyms hash>`, `ollama:<model>`): recorded with
    /// its stores, so vectors of another embedder are never mixed in or queried.
    identity: String,
}

/// The agent's own marker store: `embedder` (the identity its stores were built with) and
/// `data` (a hash of the data set they hold), written after the last batch of a rebuild.
fn marker_store(id: &str) -> String {
    format!("{id}_agent")
}

/// Whether `name` is one of the stores of agent `id` (its marker, its text index's, or its
/// vector store's, any version): exact names, so agent `a` never takes agent `a_x`'s.
fn is_store_of(id: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(id).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    let versioned = |p: &str| {
        rest.strip_prefix(p)
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(
        rest,
        "agent" | "meta" | "items" | "lookup" | "postings" | "docs" | "stats"
    ) || versioned("centroids_v")
        || versioned("vectors_v")
}

/// A hash of a data set (ids, texts, descriptions, order).
#[must_use]
pub fn data_hash(items: &[DataItem]) -> String {
    let mut s = String::new();
    for i in items {
        for part in [&i.id, &i.text, &i.description] {
            s.push_str(part);
            s.push('\u{1f}');
        }
        s.push('\u{1e}');
    }
    hash_string(&s)
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

impl DomainAgent {
    /// An agent `id` on `db`.
    pub fn new(
        id: impl Into<String>,
        db: Arc<Database>,
        embedder: Arc<dyn Embedder>,
        generator: Option<Arc<dyn Generator>>,
        gen_options: GenOptions,
        system_prompt: impl Into<String>,
    ) -> Self {
        DomainAgent {
            id: id.into(),
            db,
            embedder,
            generator,
            gen_options,
            system_prompt: system_prompt.into(),
            top_k: 10,
            identity: String::new(),
        }
    }

    /// Uses the `k` best items (1 to 1,000) as context (and answer, with no generator).
    #[must_use]
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k.clamp(1, 1000);
        self
    }

    /// Names what makes its vectors (recorded with its stores; see [`DomainAgent::rebuild`]).
    #[must_use]
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    /// The marker of its stores: `(embedder, data hash)`, if a rebuild finished.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn marker(&self) -> Result<Option<(String, String)>> {
        let tx = self.db.begin(TxMode::ForReading);
        let m = match tx.open_btree::<String, String>(&marker_store(&self.id)) {
            Ok(m) => m,
            Err(Error::Usage(UsageError::StoreNotFound { .. })) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (e, d) = (
            m.get(&"embedder".to_string()).await?,
            m.get(&"data".to_string()).await?,
        );
        drop(m);
        tx.rollback().await?;
        Ok(e.zip(d))
    }

    /// Errors when its stores were built by another embedder than this agent's (their vectors
    /// mean something else, or have another dimension).
    ///
    /// # Errors
    /// [`AgentError::Config`] naming both, or storage errors.
    pub async fn check_embedder(&self) -> Result<()> {
        match self.marker().await? {
            Some((e, _)) if e != self.identity => Err(AgentError::config(
                format!("agent {:?}", self.id),
                format!(
                    "its stores were built with embedder {e:?}; this configuration uses {:?}: \
                     rebuild them (`sop agent --ingest`, or Service::ingest(true))",
                    self.identity
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Makes its stores hold exactly `items`: removes them, ingests in batches, then records
    /// the embedder and the data set's hash (last, so an interrupted rebuild is redone).
    ///
    /// # Errors
    /// Embedder or storage errors.
    pub async fn rebuild(&self, items: &[DataItem]) -> Result<usize> {
        for name in self.db.stores()? {
            if is_store_of(&self.id, &name) {
                self.db.remove_btree(&name)?;
            }
        }
        self.ingest(items).await?;
        let tx = self.db.begin(TxMode::ForWriting);
        let mut m =
            tx.new_btree::<String, String>(&sop::StoreOptions::new(marker_store(&self.id)))?;
        m.upsert("embedder".to_string(), self.identity.clone())
            .await?;
        m.upsert("data".to_string(), data_hash(items)).await?;
        drop(m);
        tx.commit().await?;
        Ok(items.len())
    }

    /// What makes its vectors.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let e = self.embedder.clone();
        let out = tokio::task::spawn_blocking(move || e.embed(&texts))
            .await
            .map_err(|e| AgentError::Http {
                url: String::new(),
                reason: format!("the embedder's task failed: {e}"),
            })??;
        // Unit vectors: L2 distance then ranks as cosine does, and an all-stop-word text (a
        // zero vector) is still storable.
        Ok(out.into_iter().map(normalized).collect())
    }

    /// How many items it holds.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn count(&self) -> Result<u64> {
        let tx = self.db.begin(TxMode::ForReading);
        let n = match VectorStore::open(&tx, &self.id).await {
            Ok(v) => v.count()?,
            Err(Error::Usage(UsageError::StoreNotFound { .. })) => 0,
            Err(e) => return Err(e.into()),
        };
        tx.rollback().await?;
        Ok(n)
    }

    /// Adds items in transactions of [`INGEST_BATCH`]: ids are content hashes of the text and
    /// the description (the same item twice is stored once); the source id is kept in the
    /// payload as `original_id`. Returns how many items were given. (To make the stores hold
    /// a data set exactly, see [`DomainAgent::rebuild`].)
    ///
    /// # Errors
    /// Embedder or storage errors (batches committed before stay).
    pub async fn ingest(&self, items: &[DataItem]) -> Result<usize> {
        for batch in items.chunks(INGEST_BATCH) {
            let texts: Vec<String> = batch
                .iter()
                .map(|i| format!("{} {}", i.text, i.description))
                .collect();
            let vectors = self.embed(texts.clone()).await?;
            let tx = self.db.begin(TxMode::ForWriting);
            let dims = vectors.first().map_or(1, Vec::len);
            let mut vs = match VectorStore::open(&tx, &self.id).await {
                Ok(v) => v,
                Err(Error::Usage(UsageError::StoreNotFound { .. })) => {
                    VectorStore::create(&tx, &self.id, dims, Metric::L2).await?
                }
                Err(e) => return Err(e.into()),
            };
            let mut idx = SearchIndex::open_or_create(&tx, &self.id)?.with_tokenizer(tokenizer());
            let mut rows = Vec::with_capacity(batch.len());
            for ((item, text), vector) in batch.iter().zip(&texts).zip(vectors) {
                if vector.len() != dims || vector.is_empty() {
                    return Err(AgentError::config(
                        format!("agent {:?}", self.id),
                        format!(
                            "the embedder gave a vector of {} numbers after one of {dims}",
                            vector.len()
                        ),
                    ));
                }
                // A separator no text holds: ("A", "B C") and ("A B", "C") differ.
                let id = hash_string(&format!("{}\u{1f}{}", item.text, item.description));
                let payload = json!({
                    "text": item.text, "description": item.description, "original_id": item.id,
                    "category": item.category, "payload": item.payload,
                });
                idx.add(&id, &self.embedder.normalize(text)).await?;
                rows.push((id, vector, payload));
            }
            vs.upsert_batch(&rows).await?;
            drop((vs, idx));
            tx.commit().await?;
        }
        Ok(items.len())
    }

    /// The `k` best items for `query`: BM25 and vector results fused by reciprocal rank
    /// (k = 60).
    ///
    /// # Errors
    /// Embedder or storage errors.
    pub async fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let words = self.embedder.normalize(query);
        if words.trim().is_empty() {
            // Nothing to look for ("how are you?" is all stop words): no hits, rather than
            // every item at one distance in id order.
            return Ok(Vec::new());
        }
        let qv = self
            .embed(vec![query.to_string()])
            .await?
            .pop()
            .unwrap_or_default();
        if qv.iter().all(|x| *x == 0.0) {
            return Ok(Vec::new());
        }
        let tx = self.db.begin(TxMode::ForReading);
        let vs = match VectorStore::open(&tx, &self.id).await {
            Ok(v) => v,
            Err(Error::Usage(UsageError::StoreNotFound { .. })) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let idx = SearchIndex::open(&tx, &self.id)?.with_tokenizer(tokenizer());
        let fused =
            hybrid_search(&idx, &vs, &words, &qv, k, k.saturating_mul(3).max(30), 8).await?;
        let mut hits = Vec::with_capacity(fused.len());
        for (id, score) in fused {
            if let Some((_, payload)) = vs.get(&id).await? {
                let s = |f: &str| {
                    payload
                        .get(f)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                hits.push(Hit {
                    text: s("text"),
                    description: s("description"),
                    id,
                    score,
                    payload,
                });
            }
        }
        drop((vs, idx));
        tx.rollback().await?;
        Ok(hits)
    }

    /// Rewrites `query` for the next agent of a pipeline (the Nurse): with a generator, its
    /// answer; without one, the names (texts) of the best items, comma-separated: the terms
    /// of this agent's base (symptoms), with neither the descriptions' lay words nor ranks and
    /// scores, which would be noise in the next search.
    ///
    /// # Errors
    /// Embedder, generator or storage errors.
    pub async fn rewrite(&self, query: &str) -> Result<String> {
        if self.generator.is_some() {
            return self.ask(query).await;
        }
        let hits = self.search(query, self.top_k).await?;
        if hits.is_empty() {
            return Ok(query.to_string());
        }
        Ok(hits
            .iter()
            .map(|h| h.text.as_str())
            .collect::<Vec<_>>()
            .join(", "))
    }

    /// Answers `query`: with a generator, its answer over the retrieved context; without one,
    /// the context itself ("agent as a search service").
    ///
    /// # Errors
    /// Embedder, generator or storage errors.
    pub async fn ask(&self, query: &str) -> Result<String> {
        let hits = self.search(query, self.top_k).await?;
        let context = format_context(&hits);
        let Some(g) = self.generator.clone() else {
            return Ok(if hits.is_empty() {
                "No matching entries.".to_string()
            } else {
                context
            });
        };
        let prompt = format!(
            "{}\n\nContext:\n{context}\n\nUser Query: {query}",
            self.system_prompt
        );
        let opts = self.gen_options.clone();
        tokio::task::spawn_blocking(move || g.generate(&prompt, &opts))
            .await
            .map_err(|e| AgentError::Http {
                url: String::new(),
                reason: format!("the generator's task failed: {e}"),
            })?
    }
}

/// The text index's words: the embedder's stop words are left out of it too (a question's
/// "and" or "have" would otherwise match every description that has them).
fn tokenizer() -> UnicodeTokenizer {
    UnicodeTokenizer::new().with_stop_words(STOP_WORDS.iter().copied())
}

/// SOP's context format: `[i] text: description (Score: x.xxxx)`.
#[must_use]
pub fn format_context(hits: &[Hit]) -> String {
    hits.iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                "[{}] {}: {} (Score: {:.4})",
                i + 1,
                h.text,
                h.description,
                h.score
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
