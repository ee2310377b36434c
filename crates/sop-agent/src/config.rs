//! The JSON agent configuration (SOP's schema; fields SOP reads but never uses are accepted
//! and ignored, anything else is refused so a misspelt field is caught).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{AgentError, Result};
use crate::ollama::GenOptions;

/// One agent (and, at the top, the service around it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Its id: also the name of its vector store and text index.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Lay word or phrase -> term, for the hashing embedder.
    #[serde(default)]
    pub synonyms: HashMap<String, String>,
    /// How many retrieved items make its context (and, with no generator, its answer;
    /// default 10).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Put before the context in a generator's prompt.
    #[serde(default)]
    pub system_prompt: String,
    /// Input policies.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// How texts become vectors.
    #[serde(default)]
    pub embedder: EmbedderConfig,
    /// How answers are written (none: the answer is the retrieved context).
    #[serde(default)]
    pub generator: Option<GeneratorConfig>,
    /// Items to ingest.
    #[serde(default)]
    pub data: Vec<DataItem>,
    /// A JSON file of items to ingest (relative to the config's folder).
    #[serde(default)]
    pub data_file: Option<String>,
    /// The database folder (relative to the config's folder; top level only).
    #[serde(default)]
    pub storage_path: Option<String>,
    /// Agents defined inline, by id, for the pipeline.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// The pipeline: steps run in order.
    #[serde(default)]
    pub pipeline: Vec<PipelineStep>,
    /// SOP fields accepted and not used (sop-rs decides these itself).
    #[serde(default)]
    pub db_type: Option<Value>,
    /// (accepted, not used)
    #[serde(default)]
    pub content_size: Option<Value>,
    /// (accepted, not used: ids are content hashes, so duplicates collapse)
    #[serde(default)]
    pub skip_deduplication: Option<Value>,
    /// (accepted, not used)
    #[serde(default)]
    pub enable_ingestion_buffer: Option<Value>,
    /// (accepted, not used: see `sop::vector` self-healing)
    #[serde(default)]
    pub auto_optimize: Option<Value>,
    /// (accepted, not used: SOP's ETL section)
    #[serde(default)]
    pub etl: Option<Value>,
}

/// A policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Its id (a pipeline step may name it).
    #[serde(default)]
    pub id: String,
    /// "profanity".
    #[serde(rename = "type")]
    pub kind: String,
    /// Consecutive violations before the session ends (default 3).
    #[serde(default = "three")]
    pub max_strikes: u32,
}

fn three() -> u32 {
    3
}

/// The embedder.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    /// "simple" (the hashing embedder, the default) or "ollama".
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Dimensions of the hashing embedder (default 1024).
    #[serde(default)]
    pub dims: Option<usize>,
    /// `model` and `base_url` for Ollama.
    #[serde(default)]
    pub options: HashMap<String, Value>,
    /// (SOP's agent embedder: accepted, not supported)
    #[serde(default)]
    pub agent_id: Option<String>,
    /// (SOP's agent embedder: accepted, not supported)
    #[serde(default)]
    pub instruction: Option<String>,
}

/// The generator.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// "ollama" or "none".
    #[serde(rename = "type")]
    pub kind: String,
    /// `model`, `base_url`, and the generation options (`max_tokens`, `temperature`, `top_p`).
    #[serde(default)]
    pub options: HashMap<String, Value>,
}

impl GeneratorConfig {
    /// The generation options in `options`.
    ///
    /// # Errors
    /// An option of the wrong type.
    pub fn gen_options(&self) -> Result<GenOptions> {
        let mut o = GenOptions::default();
        for (k, v) in &self.options {
            let bad = || {
                AgentError::config(
                    format!("generator.options.{k}"),
                    format!("{v} is not a number"),
                )
            };
            match k.as_str() {
                #[allow(clippy::cast_possible_truncation)]
                "max_tokens" => {
                    o.max_tokens = v.as_u64().ok_or_else(bad)?.min(u64::from(u32::MAX)) as u32
                }
                "temperature" => o.temperature = v.as_f64().ok_or_else(bad)?,
                "top_p" => o.top_p = Some(v.as_f64().ok_or_else(bad)?),
                "model" | "base_url" => {}
                _ => {
                    return Err(AgentError::config(
                        format!("generator.options.{k}"),
                        "unknown option (model, base_url, max_tokens, temperature, top_p)",
                    ));
                }
            }
        }
        Ok(o)
    }
}

/// An item to ingest.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataItem {
    /// Its id in the source (kept in the payload as `original_id`).
    #[serde(default)]
    pub id: String,
    /// The text (e.g. a symptom or a disease).
    pub text: String,
    /// More words about it.
    #[serde(default)]
    pub description: String,
    /// A category (kept in the payload).
    #[serde(default)]
    pub category: Option<String>,
    /// Anything else (kept in the payload).
    #[serde(default)]
    pub payload: Option<Value>,
}

/// A pipeline step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineStep {
    /// An agent id (inline agents, policies, or `<id>.json` beside the config) or an inline
    /// agent.
    pub agent: StepAgent,
    /// "next_step" (the output becomes the next step's input; the default) or "context" (it
    /// is added to the context of later steps).
    #[serde(default)]
    pub output_to: Option<String>,
}

/// A step's agent.
#[derive(Clone, Debug)]
pub enum StepAgent {
    /// By id.
    Id(String),
    /// Inline.
    Inline(Box<AgentConfig>),
}

// By hand rather than `untagged`: an inline agent's own error ("unknown field `sytem_prompt`")
// reaches the user instead of "did not match any variant".
impl<'de> Deserialize<'de> for StepAgent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(id) => Ok(StepAgent::Id(id)),
            v @ Value::Object(_) => AgentConfig::deserialize(v)
                .map(|c| StepAgent::Inline(Box::new(c)))
                .map_err(|e| D::Error::custom(format!("inline agent: {e}"))),
            other => Err(D::Error::custom(format!(
                "a step's agent is an id (a string) or an agent (an object), not {other}"
            ))),
        }
    }
}

impl AgentConfig {
    /// Parses a configuration.
    ///
    /// # Errors
    /// Not JSON, or not this schema (the message names the line and field).
    pub fn from_json(text: &str, what: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| AgentError::config(what, e.to_string()))
    }

    /// Reads a configuration file.
    ///
    /// # Errors
    /// Unreadable, or not this schema.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AgentError::config(path.display().to_string(), format!("cannot read it: {e}"))
        })?;
        Self::from_json(&text, &path.display().to_string())
    }
}

/// Reads a JSON array of items.
///
/// # Errors
/// Unreadable, or not a list of `{id, text, description}`.
pub fn read_data_file(path: &Path) -> Result<Vec<DataItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AgentError::config(path.display().to_string(), format!("cannot read it: {e}"))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| AgentError::config(path.display().to_string(), e.to_string()))
}
