//! Ingestion that keeps stores equal to the configured data, and configuration mistakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use sop_agent::{AgentConfig, AgentError, DataItem, HashingEmbedder, Service};

fn service(dir: &std::path::Path, cfg: serde_json::Value) -> Result<Service, AgentError> {
    let db = Arc::new(sop::Database::standalone(dir.join("db")).unwrap());
    Service::from_config(&AgentConfig::from_json(&cfg.to_string(), "test")?, dir, db)
}

fn base(dims: usize, data: serde_json::Value) -> serde_json::Value {
    json!({"id": "kb", "embedder": {"type": "simple", "dims": dims}, "data": data})
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_follow_the_data_and_the_embedder() {
    let dir = tempfile::tempdir().unwrap();
    let one = json!([{"id": "1", "text": "Fever", "description": "hot"}, {"id": "2", "text": "Cough", "description": "hacking"}]);
    let s = service(dir.path(), base(64, one.clone())).unwrap();
    assert_eq!(s.ingest(false).await.unwrap(), 2);
    assert_eq!(
        s.ingest(false).await.unwrap(),
        0,
        "unchanged data is not ingested again"
    );
    drop(s);
    // An edited item replaces the old one (no stale entry left).
    let two = json!([{"id": "1", "text": "Fever", "description": "burning up"}, {"id": "2", "text": "Cough", "description": "hacking"}]);
    let s = service(dir.path(), base(64, two.clone())).unwrap();
    assert_eq!(s.ingest(false).await.unwrap(), 2);
    let kb = s.agent("kb").unwrap();
    assert_eq!(kb.count().await.unwrap(), 2);
    let hits = s.search("fever", 5).await.unwrap();
    assert_eq!(hits[0].description, "burning up");
    assert!(hits.iter().all(|h| h.description != "hot"), "{hits:?}");
    drop((s, kb));
    // Another embedder (dimension) rebuilds: the vectors would not fit otherwise.
    let s = service(dir.path(), base(32, two.clone())).unwrap();
    assert_eq!(s.ingest(false).await.unwrap(), 2);
    assert_eq!(s.search("cough", 5).await.unwrap()[0].text, "Cough");
    drop(s);
    // An agent with no data whose stores another embedder built: a clear error.
    let s = service(dir.path(), json!({"id": "kb", "embedder": {"dims": 16}})).unwrap();
    let e = s.ingest(false).await.unwrap_err();
    assert!(e.to_string().contains("built with embedder"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_ingestion_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let data = json!([{"id": "1", "text": "Fever", "description": "hot"}, {"id": "2", "text": "Cough", "description": "hacking"}]);
    let s = service(dir.path(), base(64, data)).unwrap();
    // Half of it went in, then the process stopped (no marker written).
    let first: Vec<DataItem> = vec![
        serde_json::from_value(json!({"id": "1", "text": "Fever", "description": "hot"})).unwrap(),
    ];
    s.agent("kb").unwrap().ingest(&first).await.unwrap();
    assert_eq!(s.ingest(false).await.unwrap(), 2);
    assert_eq!(s.agent("kb").unwrap().count().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_answer_with_their_last_agent_and_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({
        "id": "top",
        "policies": [{"type": "profanity", "max_strikes": 1}],
        "agents": [
            {"id": "a", "data": [{"id": "1", "text": "Fever", "description": "hot"}]},
            {"id": "b", "data": [{"id": "2", "text": "Influenza", "description": "fever aches"}]}
        ],
        "pipeline": [{"agent": "a"}, {"agent": "b"}]
    });
    let s = service(dir.path(), cfg).unwrap();
    s.ingest(false).await.unwrap();
    assert!(
        s.ask("I feel hot")
            .await
            .unwrap()
            .starts_with("[1] Influenza: fever aches")
    );
    // Nothing to look for: no entries rather than arbitrary ones.
    assert_eq!(s.ask("how are you?").await.unwrap(), "No matching entries.");
    // The policy no step names still guards the input.
    assert!(matches!(
        s.ask("damn").await,
        Err(AgentError::Terminated(_))
    ));
    // The fallback search is the answering agent's.
    assert_eq!(s.search("fever", 3).await.unwrap()[0].text, "Influenza");
}

#[test]
fn configuration_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"id": "a", "pipeline": [{"agent": {"id": "b", "sytem_prompt": "x"}}]}),
            "sytem_prompt",
        ),
        (json!({"id": "a", "agents": [{"id": "a"}]}), "defined twice"),
        (
            json!({"id": "a", "agents": [{"id": "b"}], "pipeline": [{"agent": {"id": "b"}}]}),
            "defined twice",
        ),
        (json!({"id": "a", "embedder": {"dims": 0}}), "dims"),
        (
            json!({"id": "a", "embedder": {"dims": 100_000_000_000u64}}),
            "dims",
        ),
        (
            json!({"id": "a", "embedder": {"type": "ollama", "options": {"modle": "x"}}}),
            "modle",
        ),
        (
            json!({"id": "a", "policies": [{"id": "g", "type": "profanity"}], "pipeline": [{"agent": "g"}]}),
            "no agent step",
        ),
        (
            json!({"id": "a", "pipeline": [{"agent": 7}]}),
            "an id (a string) or an agent",
        ),
    ];
    for (cfg, want) in cases {
        let e = match AgentConfig::from_json(&cfg.to_string(), "test") {
            Err(e) => e,
            Ok(c) => {
                let db = Arc::new(sop::Database::standalone(dir.path().join("db")).unwrap());
                Service::from_config(&c, dir.path(), db).err().unwrap()
            }
        };
        assert!(e.to_string().contains(want), "{cfg}: {e}");
    }
}

#[test]
fn synonyms_of_phrases_and_words() {
    let syn = [
        ("throw up", "vomiting"),
        ("tummy", "abdominal pain"),
        ("up up", "up up up"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let e = HashingEmbedder::new("t", 16, &syn);
    assert_eq!(e.terms("throw up, throw up!"), ["vomiting", "vomiting"]);
    assert_eq!(e.terms("“Tummy”…"), ["abdominal", "pain"]);
    // A synonym holding its own phrase ends (stop words then drop it).
    assert!(e.terms("up up").is_empty());
}
