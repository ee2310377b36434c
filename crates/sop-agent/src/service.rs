//! The service: agents built from a configuration, a pipeline of them, input policies.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use sop::Database;

use crate::agent::{DomainAgent, Hit};
use crate::config::{AgentConfig, DataItem, PipelineStep, StepAgent, read_data_file};
use crate::embed::{Embedder, HashingEmbedder, hash_string};
use crate::error::{AgentError, Result};
use crate::ollama::{DEFAULT_URL, GenOptions, Generator, OllamaEmbedder, OllamaGenerator};
use crate::policy::{ProfanityGuardrail, Verdict};

/// The hashing embedder's dimensions: what the vector store takes.
const MAX_DIMS: usize = 65_536;

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
/// the answering agent's hybrid retrieval.
pub struct Service {
    main: Arc<DomainAgent>,
    guard: Option<Arc<Mutex<ProfanityGuardrail>>>,
    steps: Vec<(Node, OutputTo)>,
    /// Every domain agent, with its configured data (maybe none).
    agents: Vec<(Arc<DomainAgent>, Vec<DataItem>)>,
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

fn known_options(what: &str, m: &HashMap<String, Value>, known: &[&str]) -> Result<()> {
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(AgentError::config(
            format!("{what}.options.{k}"),
            format!("unknown option ({})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

struct Builder {
    db: Arc<Database>,
    dir: PathBuf,
    registry: HashMap<String, Node>,
    agents: Vec<(Arc<DomainAgent>, Vec<DataItem>)>,
}

impl Builder {
    fn embedder(cfg: &AgentConfig) -> Result<(Arc<dyn Embedder>, String)> {
        let what = format!("{}.embedder", cfg.id);
        match cfg.embedder.kind.as_deref() {
            None | Some("simple") => {
                known_options(&what, &cfg.embedder.options, &[])?;
                let dims = cfg.embedder.dims.unwrap_or(1024);
                if !(1..=MAX_DIMS).contains(&dims) {
                    return Err(AgentError::config(
                        format!("{what}.dims"),
                        format!("{dims}: give 1 to {MAX_DIMS}"),
                    ));
                }
                let mut syn: Vec<_> = cfg.synonyms.iter().collect();
                syn.sort();
                let identity = format!("simple:{dims}:{}", hash_string(&format!("{syn:?}")));
                let e = HashingEmbedder::new(format!("{}-embed", cfg.id), dims, &cfg.synonyms);
                Ok((Arc::new(e), identity))
            }
            Some("ollama") => {
                known_options(&what, &cfg.embedder.options, &["model", "base_url"])?;
                let model = opt_str(&cfg.embedder.options, "model")
                    .unwrap_or_else(|| "nomic-embed-text".into());
                let identity = format!("ollama:{model}");
                let e = OllamaEmbedder::new(ollama_url(&cfg.embedder.options), model);
                Ok((Arc::new(e), identity))
            }
            Some(k) => Err(AgentError::config(
                format!("{what}.type"),
                format!("{k:?}: use \"simple\" or \"ollama\""),
            )),
        }
    }

    fn domain(&mut self, cfg: &AgentConfig) -> Result<Arc<DomainAgent>> {
        crate::validate_id(&cfg.id)?;
        if self.registry.contains_key(&cfg.id) {
            return Err(AgentError::config(
                format!("agent id {:?}", cfg.id),
                "defined twice (as agents, policies, inline steps or the top level): ids must differ",
            ));
        }
        let (embedder, identity) = Self::embedder(cfg)?;
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
            .with_top_k(cfg.top_k.unwrap_or(10))
            .with_identity(identity),
        );
        let mut items = cfg.data.clone();
        if let Some(f) = &cfg.data_file {
            items.extend(read_data_file(&self.dir.join(f))?);
        }
        self.agents.push((agent.clone(), items));
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
                    let cfg = match AgentConfig::from_file(&path) {
                        Ok(c) => c,
                        Err(_) if !path.exists() => {
                            return Err(AgentError::config(
                                format!("pipeline agent {id:?}"),
                                format!(
                                    "not an inline agent, a policy, nor a file {}",
                                    path.display()
                                ),
                            ));
                        }
                        Err(e) => return Err(e),
                    };
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
            agents: Vec::new(),
        };
        let mut guards = Vec::new();
        for p in &cfg.policies {
            if p.kind != "profanity" {
                return Err(AgentError::config(
                    format!("policies[{}].type", p.id),
                    format!("{:?}: the one policy type is \"profanity\"", p.kind),
                ));
            }
            let g = Arc::new(Mutex::new(ProfanityGuardrail::new(p.max_strikes)));
            if !p.id.is_empty() {
                if b.registry.contains_key(&p.id) {
                    return Err(AgentError::config(
                        format!("policy id {:?}", p.id),
                        "defined twice: ids must differ",
                    ));
                }
                b.registry.insert(p.id.clone(), Node::Policy(g.clone()));
            }
            guards.push((p.id.clone(), g));
        }
        for a in &cfg.agents {
            b.domain(a)?;
        }
        let main = b.domain(cfg)?;
        let mut steps = cfg
            .pipeline
            .iter()
            .map(|s| b.step(s))
            .collect::<Result<Vec<_>>>()?;
        if !steps.is_empty() {
            if !steps.iter().any(|(n, _)| matches!(n, Node::Domain(_))) {
                return Err(AgentError::config(
                    "pipeline",
                    "has no agent step: add the agent that answers",
                ));
            }
            // A policy no step names still guards the input: first.
            let named: HashSet<&str> = cfg
                .pipeline
                .iter()
                .filter_map(|s| match &s.agent {
                    StepAgent::Id(id) => Some(id.as_str()),
                    StepAgent::Inline(_) => None,
                })
                .collect();
            for (id, g) in guards.iter().rev() {
                if !named.contains(id.as_str()) {
                    steps.insert(0, (Node::Policy(g.clone()), OutputTo::NextStep));
                }
            }
        }
        Ok(Service {
            main,
            guard: guards.first().map(|(_, g)| g.clone()),
            steps,
            agents: b.agents,
        })
    }

    /// Loads `path` and builds its service on the database in its `storage_path` (or `db`).
    ///
    /// # Errors
    /// Configuration or storage errors.
    pub fn open(path: &Path, db: Option<Arc<Database>>) -> Result<Service> {
        let cfg = AgentConfig::from_file(path)?;
        // Checked before its id names a folder.
        crate::validate_id(&cfg.id)?;
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

    /// Makes every agent's stores hold its configured data: an agent whose stores were built
    /// from other data, by another embedder, or not to the end (an interrupted ingestion) is
    /// rebuilt; with `force`, every agent with data is. An agent without data whose stores
    /// were built by another embedder is an error. Returns how many items were ingested.
    ///
    /// # Errors
    /// Embedder, configuration or storage errors.
    pub async fn ingest(&self, force: bool) -> Result<usize> {
        let mut n = 0;
        for (agent, items) in &self.agents {
            if items.is_empty() {
                agent.check_embedder().await?;
                continue;
            }
            let want = crate::agent::data_hash(items);
            let current = agent.marker().await?;
            if force || current.as_ref() != Some(&(agent.identity().to_string(), want)) {
                n += agent.rebuild(items).await?;
            }
        }
        Ok(n)
    }

    fn police(guard: &Mutex<ProfanityGuardrail>, input: &str) -> Result<()> {
        match guard.lock().check(input) {
            Verdict::Allow => Ok(()),
            Verdict::Block(r) => Err(AgentError::PolicyViolation(r)),
            Verdict::Terminate(r) => Err(AgentError::Terminated(r)),
        }
    }

    /// The agent that answers: the pipeline's last agent step, else the main agent.
    fn answering(&self) -> (Option<usize>, &Arc<DomainAgent>) {
        self.steps
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, (n, _))| match n {
                Node::Domain(a) => Some((Some(i), a)),
                Node::Policy(_) => None,
            })
            .unwrap_or((None, &self.main))
    }

    /// Answers `input`: through the pipeline when there is one (policies check the input,
    /// agents before the last one rewrite it for the next, or add context for later ones; the
    /// last agent answers, and its answer is the result), else the main agent with the first
    /// policy in front.
    ///
    /// # Errors
    /// [`AgentError::PolicyViolation`], [`AgentError::Terminated`], or an agent's error.
    pub async fn ask(&self, input: &str) -> Result<String> {
        let (Some(last), _) = self.answering() else {
            if let Some(g) = &self.guard {
                Self::police(g, input)?;
            }
            return self.main.ask(input).await;
        };
        let mut current = input.to_string();
        let mut context: Vec<String> = Vec::new();
        for (i, (node, to)) in self.steps.iter().enumerate().take(last + 1) {
            let Node::Domain(a) = node else {
                if let Node::Policy(g) = node {
                    Self::police(g, &current)?;
                }
                continue;
            };
            let q = if context.is_empty() {
                current.clone()
            } else {
                format!("{current}\n\nContext:\n{}", context.join("\n"))
            };
            if i == last {
                return a.ask(&q).await;
            }
            let out = match to {
                OutputTo::NextStep => a.rewrite(&q).await?,
                OutputTo::Context => a.ask(&q).await?,
            };
            match to {
                OutputTo::NextStep => current = out,
                OutputTo::Context => context.push(out),
            }
        }
        Ok(current)
    }

    /// The answering agent's `k` best items (the REPL's fallback).
    ///
    /// # Errors
    /// Embedder or storage errors.
    pub async fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        self.answering().1.search(query, k).await
    }

    /// The agent of `id` in this service (`None` for a policy or an unknown id).
    #[must_use]
    pub fn agent(&self, id: &str) -> Option<Arc<DomainAgent>> {
        self.agents
            .iter()
            .find(|(a, _)| a.id() == id)
            .map(|(a, _)| a.clone())
    }
}
