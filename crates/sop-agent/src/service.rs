//! The service: agents built from a configuration, a pipeline of them, input policies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use sop::Database;

use crate::agent::{DomainAgent, Hit};
use crate::config::{AgentConfig, DataItem, PipelineStep, StepAgent, read_data_file};
use crate::embed::{Embedder, HashingEmbedder};
use crate::error::{AgentError, Result};
use crate::ollama::{DEFAULT_URL, GenOptions, Generator, OllamaEmbedder, OllamaGenerator};
use crate::policy::{ProfanityGuardrail, Verdict};

/// A pipeline node.
#[derive(Clone)]
enum Node {
    Domain(Arc<DomainAgent>),
    Policy(Arc<Mutex<ProfanityGuardrail>>),
}

/// Where a step's output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputTo {
    NextStep,
    Context,
}

/// An agent service (SOP's `Service`): `ask` runs the pipeline (or the main agent), `search`
/// the main agent's hybrid retrieval.
pub struct Service {
    main: Arc<DomainAgent>,
    guard: Option<Arc<Mutex<ProfanityGuardrail>>>,
    steps: Vec<(Node, OutputTo)>,
    data: Vec<(Arc<DomainAgent>, Vec<DataItem>)>,
}

fn opt_str(m: &HashMap<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Ollama's address: the config's `base_url`, else `OLLAMA_URL`, else localhost.
fn ollama_url(m: &HashMap<String, Value>) -> String {
    opt_str(m, "base_url")
        .or_else(|| std::env::var("OLLAMA_URL").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

struct Builder {
    db: Arc<Database>,
    dir: PathBuf,
    registry: HashMap<String, Node>,
    data: Vec<(Arc<DomainAgent>, Vec<DataItem>)>,
}

impl Builder {
    fn domain(&mut self, cfg: &AgentConfig) -> Result<Arc<DomainAgent>> {
        if let Some(Node::Domain(a)) = self.registry.get(&cfg.id) {
            return Ok(a.clone());
        }
        crate::validate_id(&cfg.id)?;
        let embedder: Arc<dyn Embedder> = match cfg.embedder.kind.as_deref() {
            None | Some("simple") => Arc::new(HashingEmbedder::new(
                format!("{}-embed", cfg.id),
                cfg.embedder.dims.unwrap_or(1024),
                &cfg.synonyms,
            )),
            Some("ollama") => Arc::new(OllamaEmbedder::new(
                ollama_url(&cfg.embedder.options),
                opt_str(&cfg.embedder.options, "model")
                    .unwrap_or_else(|| "nomic-embed-text".into()),
            )),
            Some(k) => {
                return Err(AgentError::config(
                    format!("{}.embedder.type", cfg.id),
                    format!("{k:?}: use \"simple\" or \"ollama\""),
                ));
            }
        };
        let (generator, gen_options): (Option<Arc<dyn Generator>>, GenOptions) =
            match &cfg.generator {
                None => (None, GenOptions::default()),
                Some(g) if g.kind == "none" => (None, g.gen_options()?),
                Some(g) if g.kind == "ollama" => (
                    Some(Arc::new(OllamaGenerator::new(
                        ollama_url(&g.options),
                        opt_str(&g.options, "model").unwrap_or_else(|| "llama3".into()),
                    ))),
                    g.gen_options()?,
                ),
                Some(g) => {
                    return Err(AgentError::config(
                        format!("{}.generator.type", cfg.id),
                        format!("{:?}: use \"ollama\" or \"none\"", g.kind),
                    ));
                }
            };
        let agent = Arc::new(
            DomainAgent::new(
                cfg.id.clone(),
                self.db.clone(),
                embedder,
                generator,
                gen_options,
                cfg.system_prompt.clone(),
            )
            .with_top_k(cfg.top_k.unwrap_or(10)),
        );
        let mut items = cfg.data.clone();
        if let Some(f) = &cfg.data_file {
            items.extend(read_data_file(&self.dir.join(f))?);
        }
        if !items.is_empty() {
            self.data.push((agent.clone(), items));
        }
        self.registry
            .insert(cfg.id.clone(), Node::Domain(agent.clone()));
        Ok(agent)
    }

    fn step(&mut self, step: &PipelineStep) -> Result<(Node, OutputTo)> {
        let to = match step.output_to.as_deref() {
            None | Some("next_step") => OutputTo::NextStep,
            Some("context") => OutputTo::Context,
            Some(o) => {
                return Err(AgentError::config(
                    "pipeline.output_to",
                    format!("{o:?}: use \"next_step\" or \"context\""),
                ));
            }
        };
        let node = match &step.agent {
            StepAgent::Inline(cfg) => Node::Domain(self.domain(cfg)?),
            StepAgent::Id(id) => match self.registry.get(id) {
                Some(n) => n.clone(),
                None => {
                    crate::validate_id(id)?;
                    let path = self.dir.join(format!("{id}.json"));
                    let cfg = AgentConfig::from_file(&path).map_err(|_| {
                        AgentError::config(
                            format!("pipeline agent {id:?}"),
                            format!(
                                "not an inline agent, a policy, nor a readable {}",
                                path.display()
                            ),
                        )
                    })?;
                    Node::Domain(self.domain(&cfg)?)
                }
            },
        };
        Ok((node, to))
    }
}

impl Service {
    /// Builds the service of `cfg` (file references relative to `dir`) on `db`.
    ///
    /// # Errors
    /// A configuration error (the message names the field), or an unreadable data file.
    pub fn from_config(cfg: &AgentConfig, dir: &Path, db: Arc<Database>) -> Result<Service> {
        let mut b = Builder {
            db,
            dir: dir.to_path_buf(),
            registry: HashMap::new(),
            data: Vec::new(),
        };
        let mut guard = None;
        for p in &cfg.policies {
            if p.kind != "profanity" {
                return Err(AgentError::config(
                    format!("policies[{}].type", p.id),
                    format!("{:?}: the one policy type is \"profanity\"", p.kind),
                ));
            }
            let g = Arc::new(Mutex::new(ProfanityGuardrail::new(p.max_strikes)));
            if guard.is_none() {
                guard = Some(g.clone());
            }
            if !p.id.is_empty() {
                b.registry.insert(p.id.clone(), Node::Policy(g));
            }
        }
        for a in &cfg.agents {
            b.domain(a)?;
        }
        let main = b.domain(cfg)?;
        let steps = cfg
            .pipeline
            .iter()
            .map(|s| b.step(s))
            .collect::<Result<Vec<_>>>()?;
        Ok(Service {
            main,
            guard,
            steps,
            data: b.data,
        })
    }

    /// Loads `path` and builds its service on the database in its `storage_path` (or `db`).
    ///
    /// # Errors
    /// Configuration or storage errors.
    pub fn open(path: &Path, db: Option<Arc<Database>>) -> Result<Service> {
        let cfg = AgentConfig::from_file(path)?;
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let db = match db {
            Some(d) => d,
            None => {
                let folder = dir.join(
                    cfg.storage_path
                        .clone()
                        .unwrap_or_else(|| format!("data/{}", cfg.id)),
                );
                Arc::new(Database::standalone(folder)?)
            }
        };
        Self::from_config(&cfg, &dir, db)
    }

    /// Ingests the configured data of every agent whose store is empty (all of it with
    /// `force`): how many items.
    ///
    /// # Errors
    /// Embedder or storage errors.
    pub async fn ingest(&self, force: bool) -> Result<usize> {
        let mut n = 0;
        for (agent, items) in &self.data {
            if force || agent.count().await? == 0 {
                n += agent.ingest(items).await?;
            }
        }
        Ok(n)
    }

    fn police(&self, guard: &Mutex<ProfanityGuardrail>, input: &str) -> Result<()> {
        match guard.lock().check(input) {
            Verdict::Allow => Ok(()),
            Verdict::Block(r) => Err(AgentError::PolicyViolation(r)),
            Verdict::Terminate(r) => Err(AgentError::Terminated(r)),
        }
    }

    /// Answers `input`: through the pipeline when there is one (each step's output is the
    /// next one's input, or context for the later steps), else the main agent with the first
    /// policy in front.
    ///
    /// # Errors
    /// [`AgentError::PolicyViolation`], [`AgentError::Terminated`], or an agent's error.
    pub async fn ask(&self, input: &str) -> Result<String> {
        if self.steps.is_empty() {
            if let Some(g) = &self.guard {
                self.police(g, input)?;
            }
            return self.main.ask(input).await;
        }
        let mut current = input.to_string();
        let mut context: Vec<String> = Vec::new();
        let last = self.steps.len() - 1;
        for (i, (node, to)) in self.steps.iter().enumerate() {
            let out = match node {
                Node::Policy(g) => {
                    self.police(g, &current)?;
                    current.clone()
                }
                Node::Domain(a) => {
                    let q = if context.is_empty() {
                        current.clone()
                    } else {
                        format!("{current}\n\nContext:\n{}", context.join("\n"))
                    };
                    // Steps before the last rewrite the question; the last one answers it.
                    if i < last && *to == OutputTo::NextStep {
                        a.rewrite(&q).await?
                    } else {
                        a.ask(&q).await?
                    }
                }
            };
            match to {
                OutputTo::NextStep => current = out,
                OutputTo::Context => context.push(out),
            }
        }
        Ok(current)
    }

    /// The main agent's `k` best items (the REPL's fallback).
    ///
    /// # Errors
    /// Embedder or storage errors.
    pub async fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        self.main.search(query, k).await
    }

    /// The agent of `id` in this service (`None` for a policy or an unknown id).
    #[must_use]
    pub fn agent(&self, id: &str) -> Option<Arc<DomainAgent>> {
        if self.main.id == id {
            return Some(self.main.clone());
        }
        self.steps
            .iter()
            .find_map(|(n, _)| match n {
                Node::Domain(a) if a.id == id => Some(a.clone()),
                _ => None,
            })
            .or_else(|| {
                self.data
                    .iter()
                    .find(|(a, _)| a.id == id)
                    .map(|(a, _)| a.clone())
            })
    }
}
