//! `sop serve DIR`: the REST server (sop-server) on a database folder.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{take_flag, take_value};
use sop_server::{Server, ServerConfig, Tokens};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let mut args = args.to_vec();
    let mut config = ServerConfig::new(Tokens::from_env());
    let number = |flag: &str, v: String| -> anyhow::Result<u64> {
        v.parse().with_context(|| format!("{flag} takes a number"))
    };
    if let Some(a) = take_value(&mut args, "--addr")? {
        config.addr = a
            .parse::<SocketAddr>()
            .context("--addr takes IP:PORT, e.g. 127.0.0.1:8080")?;
    }
    let token_file = take_value(&mut args, "--token-file")?;
    config.no_auth = take_flag(&mut args, "--no-auth");
    if let Some(v) = take_value(&mut args, "--max-body")? {
        config.max_body = usize::try_from(number("--max-body", v)?).unwrap_or(usize::MAX);
    }
    if let Some(v) = take_value(&mut args, "--max-upload")? {
        config.max_upload = number("--max-upload", v)?;
    }
    if let Some(v) = take_value(&mut args, "--tx-timeout-secs")? {
        config.tx_timeout = Duration::from_secs(number("--tx-timeout-secs", v)?.max(1));
    }
    if let Some(f) = args.iter().find(|a| a.starts_with("--")) {
        bail!("serve: unknown flag {f}");
    }
    let [dir] = args.as_slice() else {
        bail!(
            "usage: sop serve DIR [--addr IP:PORT] [--token-file FILE] [--no-auth] [--max-body BYTES] [--max-upload BYTES] [--tx-timeout-secs S]"
        );
    };
    if let Some(f) = token_file {
        let from_file = Tokens::from_file(Path::new(&f)).map_err(anyhow::Error::msg)?;
        config.tokens = from_file;
    }
    let db = sop::Database::standalone(dir)?;
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
