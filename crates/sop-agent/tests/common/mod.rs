//! Shared by the agent's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use sop_agent::{AgentConfig, Service};

pub fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// The shipped Doctor pipeline on a fresh database, ingested.
pub async fn doctor(dir: &std::path::Path) -> Service {
    let cfg = AgentConfig::from_file(&data().join("doctor_pipeline.json")).unwrap();
    let db = Arc::new(sop::Database::standalone(dir).unwrap());
    let s = Service::from_config(&cfg, &data(), db).unwrap();
    assert_eq!(s.ingest(false).await.unwrap(), 41 + 30);
    s
}
