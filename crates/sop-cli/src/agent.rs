//! `sop agent --config FILE`: the agent's REPL (sop-agent).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;

use crate::{take_flag, take_value};
use sop_agent::{Service, run_loop};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let mut args = args.to_vec();
    let config = take_value(&mut args, "--config")?.map(PathBuf::from);
    let db = take_value(&mut args, "--db")?.map(PathBuf::from);
    let ask = take_value(&mut args, "--ask")?;
    let force = take_flag(&mut args, "--ingest");
    if let Some(other) = args.first() {
        bail!("agent: unexpected argument {other:?}");
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
