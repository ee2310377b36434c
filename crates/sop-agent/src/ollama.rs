//! Ollama's HTTP API: embeddings and generation (plain http, blocking calls).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::embed::Embedder;
use crate::error::{AgentError, Result};

/// Ollama's default address.
pub const DEFAULT_URL: &str = "http://localhost:11434";

fn post(base: &str, path: &str, body: &Value, timeout: Duration) -> Result<Value> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    if !url.starts_with("http://") {
        return Err(AgentError::Http {
            url,
            reason: "only http:// URLs are supported (Ollama listens on plain http)".into(),
        });
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let http = |reason: String| AgentError::Http {
        url: url.clone(),
        reason,
    };
    let mut resp = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| http(format!("{e} (is Ollama running there?)")))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| http(e.to_string()))?;
    if status != 200 {
        return Err(http(format!(
            "status {status}: {}",
            text.chars().take(300).collect::<String>()
        )));
    }
    serde_json::from_str(&text).map_err(|e| http(format!("the answer is not JSON: {e}")))
}

/// Embeddings from Ollama's `POST /api/embeddings` (`{model, prompt}` -> `{embedding}`),
/// one request per text. The dimension is whatever the model returns.
#[derive(Clone, Debug)]
pub struct OllamaEmbedder {
    /// The server, e.g. `http://localhost:11434`.
    pub base_url: String,
    /// The model, e.g. `nomic-embed-text`.
    pub model: String,
    /// How long one request may take.
    pub timeout: Duration,
}

impl OllamaEmbedder {
    /// An embedder of `model` at `base_url`.
    #[must_use]
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OllamaEmbedder {
            base_url: base_url.into(),
            model: model.into(),
            timeout: Duration::from_secs(60),
        }
    }
}

impl Embedder for OllamaEmbedder {
    fn name(&self) -> &str {
        &self.model
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        texts
            .iter()
            .map(|t| {
                let v = post(
                    &self.base_url,
                    "/api/embeddings",
                    &json!({"model": self.model, "prompt": t}),
                    self.timeout,
                )?;
                let e = v
                    .get("embedding")
                    .and_then(Value::as_array)
                    .ok_or_else(|| AgentError::Http {
                        url: format!("{}/api/embeddings", self.base_url),
                        reason: "the answer has no `embedding` list".into(),
                    })?;
                let bad = |reason: &str| AgentError::Http {
                    url: format!("{}/api/embeddings", self.base_url),
                    reason: reason.to_string(),
                };
                if e.is_empty() {
                    return Err(bad("the `embedding` is empty (an empty text?)"));
                }
                #[allow(clippy::cast_possible_truncation)]
                e.iter()
                    .map(|x| x.as_f64().map(|f| f as f32))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(|| bad("the `embedding` holds something other than numbers"))
            })
            .collect()
    }
}

/// How a generation runs (sent to Ollama as `options`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenOptions {
    /// The most tokens to generate (Ollama's `num_predict`).
    #[serde(default = "max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[serde(default = "temperature")]
    pub temperature: f64,
    /// Nucleus sampling (sent when set).
    #[serde(default)]
    pub top_p: Option<f64>,
}

fn max_tokens() -> u32 {
    1024
}

fn temperature() -> f64 {
    0.7
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            max_tokens: max_tokens(),
            temperature: temperature(),
            top_p: None,
        }
    }
}

/// Turns a prompt into text.
pub trait Generator: Send + Sync {
    /// A name for messages.
    fn name(&self) -> &str;
    /// The answer to `prompt`.
    ///
    /// # Errors
    /// The backend failed.
    fn generate(&self, prompt: &str, options: &GenOptions) -> Result<String>;
}

/// Ollama's `POST /api/generate` (`{model, prompt, stream: false, options}` -> `{response}`).
/// Unlike SOP's client, the options are sent.
#[derive(Clone, Debug)]
pub struct OllamaGenerator {
    /// The server.
    pub base_url: String,
    /// The model, e.g. `llama3`.
    pub model: String,
    /// How long one generation may take.
    pub timeout: Duration,
}

impl OllamaGenerator {
    /// A generator of `model` at `base_url`.
    #[must_use]
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OllamaGenerator {
            base_url: base_url.into(),
            model: model.into(),
            timeout: Duration::from_secs(300),
        }
    }
}

impl Generator for OllamaGenerator {
    fn name(&self) -> &str {
        &self.model
    }

    fn generate(&self, prompt: &str, options: &GenOptions) -> Result<String> {
        let mut opts =
            json!({"num_predict": options.max_tokens, "temperature": options.temperature});
        if let Some(p) = options.top_p {
            opts["top_p"] = json!(p);
        }
        let v = post(
            &self.base_url,
            "/api/generate",
            &json!({"model": self.model, "prompt": prompt, "stream": false, "options": opts}),
            self.timeout,
        )?;
        v.get("response")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| AgentError::Http {
                url: format!("{}/api/generate", self.base_url),
                reason: "the answer has no `response` text".into(),
            })
    }
}
