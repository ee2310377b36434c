//! The Doctor/Nurse agent, offline: `cargo run --release --example doctor`.
//!
//! A profanity filter, then the Nurse (a hybrid BM25 + vector search of a symptom base, with
//! the hashing embedder and lay synonyms: "tummy" -> abdomen) rewrites the question as
//! symptoms, then the Doctor searches a base of conditions with them. With `OLLAMA_URL` set
//! (e.g. `http://localhost:11434`), the Doctor writes its answer with Ollama's model
//! (`OLLAMA_MODEL`, default llama3) over what it retrieved.
//!
//! Flags: `--db DIR` (default target/doctor-db), `--ask "question"` (answer once and exit;
//! without it, a REPL on stdin: `exit` ends it).

use std::path::PathBuf;
use std::sync::Arc;

use sop_agent::{AgentConfig, Service, run_loop};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let db_dir = PathBuf::from(flag("--db").unwrap_or_else(|| "target/doctor-db".into()));
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut cfg = AgentConfig::from_file(&data.join("doctor_pipeline.json"))?;
        if let Ok(url) = std::env::var("OLLAMA_URL")
            && !url.is_empty()
        {
            let model = std::env::var("OLLAMA_MODEL").unwrap_or_else(|_| "llama3".into());
            let g =
                serde_json::json!({"type": "ollama", "options": {"base_url": url, "model": model}});
            for a in &mut cfg.agents {
                a.generator = Some(serde_json::from_value(g.clone())?);
            }
            eprintln!("doctor: answers written by {model} at {url}");
        } else {
            eprintln!("doctor: offline (set OLLAMA_URL to have a local model write the answers)");
        }
        let db = Arc::new(sop::Database::standalone(&db_dir)?);
        let service = Service::from_config(&cfg, &data, db)?;
        let n = service.ingest(false).await?;
        if n > 0 {
            eprintln!("doctor: ingested {n} items into {}", db_dir.display());
        }
        match flag("--ask") {
            Some(q) => println!("{}", service.ask(&q).await?),
            None => {
                let stdin = std::io::stdin();
                run_loop(&service, stdin.lock(), std::io::stdout()).await?;
            }
        }
        Ok(())
    })
}
