//! `sop serve DIR`: the REST server (sop-server) on a database folder.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use sop_server::{Server, ServerConfig, Tokens};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let mut dir = None;
    let mut config = ServerConfig::new(Tokens::from_env());
    let mut token_file = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--addr" => {
                config.addr = value("--addr")?
                    .parse::<SocketAddr>()
                    .context("--addr takes IP:PORT, e.g. 127.0.0.1:8080")?;
            }
            "--token-file" => token_file = Some(value("--token-file")?),
            "--no-auth" => config.no_auth = true,
            "--max-body" => {
                config.max_body = value("--max-body")?
                    .parse()
                    .context("--max-body takes bytes")?
            }
            "--max-upload" => {
                config.max_upload = value("--max-upload")?
                    .parse()
                    .context("--max-upload takes bytes")?;
            }
            "--tx-timeout-secs" => {
                let s: u64 = value("--tx-timeout-secs")?
                    .parse()
                    .context("--tx-timeout-secs takes seconds")?;
                config.tx_timeout = Duration::from_secs(s.max(1));
            }
            f if f.starts_with("--") => bail!("serve: unknown flag {f}"),
            d if dir.is_none() => dir = Some(d.to_string()),
            other => bail!("serve: unexpected argument {other:?}"),
        }
    }
    let Some(dir) = dir else {
        bail!(
            "usage: sop serve DIR [--addr IP:PORT] [--token-file FILE] [--no-auth] [--max-body BYTES] [--max-upload BYTES] [--tx-timeout-secs S]"
        );
    };
    if let Some(f) = token_file {
        let from_file = Tokens::from_file(Path::new(&f)).map_err(anyhow::Error::msg)?;
        config.tokens = from_file;
    }
    let db = sop::Database::standalone(&dir)?;
    let mut server = Server::start(db, config)
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "sop: serving {dir} on http://{} (OpenAPI at /openapi.json)",
        server.addr()
    );
    let interrupted = tokio::select! {
        () = server.wait() => false,
        r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; true }
    };
    if interrupted {
        // Requests under way (commits, uploads) finish before the process ends.
        eprintln!("sop: stopping");
        server.shutdown().await;
    }
    Ok(())
}
