//! The Ollama clients and the pipeline against a fake Ollama server started by the test: it
//! records every request and answers with canned embeddings and generations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sop_agent::{
    AgentConfig, AgentError, Embedder, GenOptions, Generator, HashingEmbedder, OllamaEmbedder,
    OllamaGenerator, Service,
};

type Log = Arc<Mutex<Vec<(String, Value)>>>;

async fn embeddings(State(log): State<Log>, Json(body): Json<Value>) -> Json<Value> {
    log.lock().push(("embeddings".into(), body.clone()));
    let e = HashingEmbedder::new("fake", 16, &Default::default());
    Json(json!({"embedding": e.vector(body["prompt"].as_str().unwrap_or_default())}))
}

async fn generate(State(log): State<Log>, Json(body): Json<Value>) -> Json<Value> {
    log.lock().push(("generate".into(), body.clone()));
    let answer = match body["model"].as_str() {
        Some("nurse-model") => "fever, cough".to_string(),
        _ => "Most likely: influenza (a doctor must confirm)".to_string(),
    };
    Json(json!({"model": body["model"], "response": answer, "done": true}))
}

async fn fake_ollama() -> (String, Log) {
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .route("/api/embeddings", post(embeddings))
        .route("/api/generate", post(generate))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, log)
}

fn config(url: &str) -> AgentConfig {
    let text = json!({
        "id": "clinic",
        "policies": [{"id": "guard", "type": "profanity", "max_strikes": 2}],
        "agents": [
            {
                "id": "nurse",
                "embedder": {"type": "ollama", "options": {"base_url": url, "model": "embed-model"}},
                "generator": {"type": "ollama", "options": {"base_url": url, "model": "nurse-model"}},
                "system_prompt": "Rewrite the patient's words as symptoms.",
                "data": [{"id": "s1", "text": "Fever", "description": "feeling hot"},
                         {"id": "s2", "text": "Cough", "description": "coughing"}]
            },
            {
                "id": "doctor",
                "embedder": {"type": "ollama", "options": {"base_url": url, "model": "embed-model"}},
                "generator": {"type": "ollama", "options": {"base_url": url, "model": "doctor-model",
                              "max_tokens": 77, "temperature": 0.25, "top_p": 0.9}},
                "system_prompt": "You are a careful doctor.",
                "data": [{"id": "d1", "text": "Influenza", "description": "Symptoms: fever, cough, aches"},
                         {"id": "d2", "text": "Migraine", "description": "Symptoms: headache, nausea"}]
            }
        ],
        "pipeline": [{"agent": "guard"}, {"agent": "nurse"}, {"agent": "doctor"}]
    });
    AgentConfig::from_json(&text.to_string(), "test").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_sends_what_the_config_says() {
    let (url, log) = fake_ollama().await;
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(sop::Database::standalone(dir.path()).unwrap());
    let s = Service::from_config(&config(&url), dir.path(), db).unwrap();
    assert_eq!(s.ingest(false).await.unwrap(), 4);
    // Ingestion embedded each item's text and description with the configured model.
    {
        let log = log.lock();
        let prompts: Vec<&str> = log
            .iter()
            .filter(|(k, _)| k == "embeddings")
            .map(|(_, b)| b["prompt"].as_str().unwrap())
            .collect();
        assert!(
            prompts.contains(&"Fever feeling hot")
                && prompts.contains(&"Influenza Symptoms: fever, cough, aches"),
            "{prompts:?}"
        );
        assert!(log.iter().all(|(_, b)| b["model"] == "embed-model"));
    }
    log.lock().clear();
    let answer = s
        .ask("my head is burning and I keep hacking")
        .await
        .unwrap();
    assert_eq!(answer, "Most likely: influenza (a doctor must confirm)");
    let log = log.lock();
    let gens: Vec<&Value> = log
        .iter()
        .filter(|(k, _)| k == "generate")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(gens.len(), 2, "{gens:?}");
    // The Nurse got the patient's words, with its own model and the default options.
    assert_eq!(gens[0]["model"], "nurse-model");
    assert!(
        gens[0]["prompt"]
            .as_str()
            .unwrap()
            .contains("User Query: my head is burning and I keep hacking")
    );
    assert!(
        gens[0]["prompt"]
            .as_str()
            .unwrap()
            .starts_with("Rewrite the patient's words as symptoms.")
    );
    assert_eq!(
        gens[0]["options"],
        json!({"num_predict": 1024, "temperature": 0.7})
    );
    // The Doctor got the Nurse's rewrite, its context, and the configured options.
    assert_eq!(gens[1]["model"], "doctor-model");
    assert_eq!(gens[1]["stream"], json!(false));
    let p = gens[1]["prompt"].as_str().unwrap();
    assert!(p.starts_with("You are a careful doctor."), "{p}");
    assert!(p.contains("User Query: fever, cough"), "{p}");
    assert!(
        p.contains("Influenza: Symptoms: fever, cough, aches"),
        "{p}"
    );
    let o = &gens[1]["options"];
    assert_eq!(o["num_predict"], json!(77));
    assert!((o["temperature"].as_f64().unwrap() - 0.25).abs() < 1e-6);
    assert!((o["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    // The Doctor's search embedded the rewrite.
    assert!(
        log.iter()
            .any(|(k, b)| k == "embeddings" && b["prompt"] == "fever, cough")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guardrail_stops_before_any_model_call() {
    let (url, log) = fake_ollama().await;
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(sop::Database::standalone(dir.path()).unwrap());
    let s = Service::from_config(&config(&url), dir.path(), db).unwrap();
    assert!(matches!(
        s.ask("you idiot").await,
        Err(AgentError::PolicyViolation(_))
    ));
    assert!(matches!(
        s.ask("stupid").await,
        Err(AgentError::Terminated(_))
    ));
    assert!(log.lock().iter().all(|(k, _)| k != "generate"));
}

#[test]
fn ollama_down_or_wrong_is_a_typed_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let e = OllamaEmbedder::new(&url, "m")
        .embed(&["x".into()])
        .unwrap_err();
    assert!(
        matches!(&e, AgentError::Http { reason, .. } if reason.contains("is Ollama running")),
        "{e}"
    );
    let e = OllamaGenerator::new("https://example.invalid", "m")
        .generate("x", &GenOptions::default())
        .unwrap_err();
    assert!(
        matches!(&e, AgentError::Http { reason, .. } if reason.contains("only http://")),
        "{e}"
    );
}

#[test]
fn config_errors_name_the_field() {
    let e = AgentConfig::from_json(r#"{"id": "a", "embeder": {}}"#, "cfg.json").unwrap_err();
    assert!(e.to_string().contains("embeder"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(sop::Database::standalone(dir.path()).unwrap());
    for (cfg, what) in [
        (
            r#"{"id": "a", "embedder": {"type": "bert"}}"#,
            "embedder.type",
        ),
        (
            r#"{"id": "a", "generator": {"type": "gpt"}}"#,
            "generator.type",
        ),
        (
            r#"{"id": "a", "generator": {"type": "ollama", "options": {"temprature": 1}}}"#,
            "temprature",
        ),
        (r#"{"id": "a/../b"}"#, "agent id"),
        (
            r#"{"id": "a", "pipeline": [{"agent": "missing"}]}"#,
            "missing",
        ),
        (
            r#"{"id": "a", "policies": [{"type": "regex"}]}"#,
            "policies",
        ),
    ] {
        let c = AgentConfig::from_json(cfg, "cfg.json").unwrap();
        let e = Service::from_config(&c, dir.path(), db.clone())
            .err()
            .unwrap();
        assert!(e.to_string().contains(what), "{cfg}: {e}");
    }
}
