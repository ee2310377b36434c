//! The local AI agent of sop-rs (SOP's AI kit): retrieval agents over the transactional
//! vector store and BM25 index, chained in a pipeline, with an optional local LLM (Ollama).
//!
//! - [`HashingEmbedder`] (SOP's "simple" embedder: hashed bag of words with synonyms; no
//!   model, deterministic) and [`OllamaEmbedder`] (`/api/embeddings`).
//! - [`OllamaGenerator`] (`/api/generate`, with its options sent), or no generator: the answer
//!   is the retrieved context.
//! - [`ProfanityGuardrail`]: consecutive violations end the session.
//! - [`AgentConfig`]: SOP's JSON agent configuration; [`Service`] builds agents and the
//!   pipeline from it (the Nurse rewrites the question, the Doctor answers), ingests data
//!   (content-hash ids, batches of 200), and [`run_loop`] is the REPL.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use sop_agent::{AgentConfig, Service};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Arc::new(sop::Database::standalone(dir.path())?);
//! let cfg = AgentConfig::from_json(r#"{
//!     "id": "nurse", "synonyms": {"tummy": "abdominal"},
//!     "data": [{"id": "s1", "text": "Abdominal cramps", "description": "stomach ache, belly"},
//!              {"id": "s2", "text": "Cough", "description": "dry or wet cough"}]
//! }"#, "inline")?;
//! let service = Service::from_config(&cfg, dir.path(), db)?;
//! service.ingest(false).await?;
//! let hits = service.search("my tummy hurts", 1).await?;
//! assert_eq!(hits[0].text, "Abdominal cramps");
//! # Ok::<(), anyhow::Error>(())
//! # }).unwrap();
//! ```

mod agent;
mod config;
mod embed;
mod error;
mod ollama;
mod policy;
mod repl;
mod service;

pub use agent::{DomainAgent, Hit, INGEST_BATCH, format_context};
pub use config::{
    AgentConfig, DataItem, EmbedderConfig, GeneratorConfig, PipelineStep, PolicyConfig, StepAgent,
    read_data_file,
};
pub use embed::{Embedder, HashingEmbedder, fnv1a32, hash_string};
pub use error::{AgentError, Result};
pub use ollama::{DEFAULT_URL, GenOptions, Generator, OllamaEmbedder, OllamaGenerator};
pub use policy::{ProfanityGuardrail, Verdict};
pub use repl::run_loop;
pub use service::Service;

/// Agent ids name stores and files: letters, digits, `_` and `-` only.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 100
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(AgentError::config(
            format!("agent id {id:?}"),
            "use 1 to 100 letters, digits, '_' or '-' (it names stores and files)",
        ));
    }
    Ok(())
}
