//! `sop agent --config FILE`: the agent's REPL (sop-agent).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use sop_agent::{Service, run_loop};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut config, mut db, mut ask, mut force) = (None, None, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--db" => db = Some(PathBuf::from(value("--db")?)),
            "--ask" => ask = Some(value("--ask")?),
            "--ingest" => force = true,
            other => bail!("agent: unexpected argument {other:?}"),
        }
    }
    let Some(config) = config else {
        bail!("usage: sop agent --config FILE [--db DIR] [--ingest] [--ask QUESTION]");
    };
    let db = match db {
        Some(d) => Some(Arc::new(sop::Database::standalone(&d)?)),
        None => None,
    };
    let service = Service::open(&config, db)?;
    let n = service.ingest(force).await?;
    if n > 0 {
        eprintln!("sop: ingested {n} items");
    }
    match ask {
        Some(q) => println!("{}", service.ask(&q).await?),
        None => run_loop(&service, std::io::stdin().lock(), std::io::stdout()).await?,
    }
    Ok(())
}
