//! The shipped Doctor/Nurse data, offline: retrieval quality, the pipeline, the guardrail, the
//! REPL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sop_agent::{AgentError, HashingEmbedder, ProfanityGuardrail, Verdict, run_loop};

/// Ten questions in a patient's words, and the symptom the Nurse must rank first.
const CASES: &[(&str, &str)] = &[
    ("my tummy hurts so much", "Abdominal pain"),
    ("I feel hot and shivery", "Fever"),
    ("I keep throwing up", "Vomiting"),
    ("I am always tired and have no energy", "Fatigue"),
    ("it burns when I pee", "Burning urination"),
    ("my skin is itchy", "Itching"),
    ("I can't breathe well, I'm winded", "Shortness of breath"),
    ("my skin and eyes look yellow", "Jaundice"),
    ("I wake up soaked in sweat at night", "Night sweats"),
    ("I feel dizzy and lightheaded", "Dizziness"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_nurse_ranks_the_expected_symptom_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::doctor(dir.path()).await;
    let nurse = s.agent("nurse_local").unwrap();
    let mut wrong = Vec::new();
    for (q, want) in CASES {
        let hits = nurse.search(q, 3).await.unwrap();
        if hits.first().map(|h| h.text.as_str()) != Some(*want) {
            wrong.push(format!(
                "{q:?}: {:?}",
                hits.iter().map(|h| &h.text).collect::<Vec<_>>()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_doctor_answers_through_the_nurse() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::doctor(dir.path()).await;
    for (q, want) in [
        ("I keep throwing up and have diarrhea", "Gastroenteritis"),
        (
            "I need to pee all the time and I am always thirsty",
            "Diabetes",
        ),
        (
            "sweating at night, coughing and losing weight",
            "Tuberculosis",
        ),
        ("my tooth hurts and gums bleed", "Dental abscess"),
        ("terrible headache, light hurts my eyes, nausea", "Migraine"),
        (
            "I am so worried my heart is racing and I cannot sleep",
            "Anxiety disorder",
        ),
    ] {
        // The likely condition among the first three (the Nurse's symptoms can fit several).
        let answer = s.ask(q).await.unwrap();
        let top3: Vec<&str> = answer.lines().take(3).collect();
        assert!(
            top3.iter().any(|l| l.contains(&format!("] {want}:"))),
            "{q:?} -> {answer}"
        );
    }
    // Ingesting again adds nothing: ids are content hashes.
    let doctor = s.agent("doctor_core").unwrap();
    let before = doctor.count().await.unwrap();
    s.ingest(true).await.unwrap();
    assert_eq!(doctor.count().await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guardrail_ends_the_session_after_its_strikes() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::doctor(dir.path()).await;
    assert!(matches!(
        s.ask("you stupid machine").await,
        Err(AgentError::PolicyViolation(_))
    ));
    // A clean question resets the count.
    assert!(s.ask("I have a cough").await.is_ok());
    assert!(matches!(
        s.ask("damn").await,
        Err(AgentError::PolicyViolation(_))
    ));
    assert!(matches!(
        s.ask("HELL no").await,
        Err(AgentError::PolicyViolation(_))
    ));
    assert!(matches!(
        s.ask("idiot").await,
        Err(AgentError::Terminated(_))
    ));
    // Locked: even a clean question is refused now.
    assert!(matches!(
        s.ask("I have a cough").await,
        Err(AgentError::Terminated(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_repl_answers_refuses_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::doctor(dir.path()).await;
    let input = "I keep throwing up and have diarrhea\nstupid\ndamn\nhell\nI have a cough\n";
    let mut out = Vec::new();
    run_loop(&s, std::io::Cursor::new(input), &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("[1] Gastroenteritis:"), "{out}");
    assert_eq!(out.matches("Refused:").count(), 2, "{out}");
    assert!(out.contains("Session terminated"), "{out}");
    // The loop ended at the termination: the last question was never asked.
    assert_eq!(out.matches("Patient> ").count(), 4, "{out}");
    let mut out = Vec::new();
    run_loop(&s, std::io::Cursor::new("exit\nI have a cough\n"), &mut out)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "Patient> ");
}

#[test]
fn hashing_embedder() {
    let syn = [("tummy", "abdomen"), ("throw up", "vomiting")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let e = HashingEmbedder::new("t", 32, &syn);
    assert_eq!(
        e.terms("My TUMMY, and I throw up!"),
        vec!["abdomen", "vomiting"]
    );
    let v = e.vector("fever cough fever");
    assert_eq!(v.len(), 32);
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
    assert_eq!(v, e.vector("Fever, cough. FEVER!"));
    assert!(e.vector("the and of").iter().all(|x| *x == 0.0));
}

#[test]
fn guardrail_counts_consecutive_strikes() {
    let mut g = ProfanityGuardrail::new(2);
    assert_eq!(g.check("hello"), Verdict::Allow);
    assert!(matches!(g.check("you ass"), Verdict::Block(_)));
    assert_eq!(g.check("sorry"), Verdict::Allow);
    assert!(matches!(g.check("damn"), Verdict::Block(_)));
    assert!(matches!(g.check("Damn!"), Verdict::Terminate(_)));
    assert!(g.is_locked());
    // Words inside words are not violations.
    assert!(!ProfanityGuardrail::violates(
        "hello, class assignment, shell"
    ));
}
