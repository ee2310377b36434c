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
        }
    }

    /// Uses the `k` best items as context (and answer, with no generator).
    #[must_use]
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k.max(1);
        self
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

    /// Ingests items in transactions of [`INGEST_BATCH`]: ids are content hashes of
    /// `text + " " + description` (the same item twice is stored once); the source id is kept
    /// in the payload as `original_id`. Returns how many items were given.
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
                let id = hash_string(text);
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
        let qv = self
            .embed(vec![query.to_string()])
            .await?
            .pop()
            .unwrap_or_default();
        let tx = self.db.begin(TxMode::ForReading);
        let vs = match VectorStore::open(&tx, &self.id).await {
            Ok(v) => v,
            Err(Error::Usage(UsageError::StoreNotFound { .. })) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let idx = SearchIndex::open(&tx, &self.id)?.with_tokenizer(tokenizer());
        let words = self.embedder.normalize(query);
        let fused = hybrid_search(&idx, &vs, &words, &qv, k, (k * 3).max(30), 8).await?;
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
