//! BM25 search: SOP's tests, scores against an independent computation straight from the
//! formula over the raw corpus (after random adds, re-adds, deletes and a rollback),
//! concurrent indexers, AND queries, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use sop_database::Database;
use sop_search::{Match, SearchIndex};
use sop_txn::TxMode;

async fn index(db: &Database, docs: &[(&str, &str)]) -> anyhow::Result<()> {
    let tx = db.begin(TxMode::ForWriting);
    let mut idx = SearchIndex::open_or_create(&tx, "idx")?;
    for (id, text) in docs {
        idx.add(id, text).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn ids(db: &Database, q: &str) -> anyhow::Result<Vec<String>> {
    let tx = db.begin(TxMode::ForReading);
    let idx = SearchIndex::open(&tx, "idx")?;
    Ok(idx
        .search(q, 100)
        .await?
        .into_iter()
        .map(|h| h.doc_id)
        .collect())
}

#[tokio::test]
async fn sops_index_test() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    index(
        &db,
        &[
            ("doc1", "The quick brown fox jumps over the lazy dog"),
            ("doc2", "A quick brown fox"),
            ("doc3", "Rust is a systems programming language"),
            ("doc4", "Go is a programming language. Go, go, go!"),
        ],
    )
    .await?;
    let mut fox = ids(&db, "fox").await?;
    fox.sort();
    assert_eq!(fox, ["doc1", "doc2"]);
    assert_eq!(ids(&db, "go").await?[0], "doc4");
    Ok(())
}

#[tokio::test]
async fn sops_scoring_test() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    index(
        &db,
        &[
            ("A", "apple"),
            ("B", "apple apple apple"),
            (
                "C",
                "apple banana cherry date elderberry fig grape honeydew",
            ),
            ("D", "nothing to see here"),
        ],
    )
    .await?;
    assert_eq!(ids(&db, "apple").await?, ["B", "A", "C"]);
    let dir2 = tempfile::tempdir()?;
    let db2 = Database::standalone(dir2.path())?;
    index(
        &db2,
        &[("doc1", "cat"), ("doc2", "dog"), ("doc3", "cat dog")],
    )
    .await?;
    let got = ids(&db2, "cat dog").await?;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], "doc3");
    Ok(())
}

/// BM25 computed from the raw texts alone: its own tokenizer, counts and formula.
fn oracle(docs: &BTreeMap<String, String>, query: &str) -> Vec<(String, f64)> {
    let tok = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for c in s.chars() {
            if c.is_alphanumeric() {
                cur.extend(c.to_lowercase());
            } else if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    };
    let toks: BTreeMap<&String, Vec<String>> = docs.iter().map(|(d, t)| (d, tok(t))).collect();
    let n = docs.len() as f64;
    if n == 0.0 {
        return Vec::new();
    }
    let avgdl = toks.values().map(|t| t.len() as f64).sum::<f64>() / n;
    let mut scores: BTreeMap<String, f64> = BTreeMap::new();
    for q in tok(query) {
        let df = toks.values().filter(|t| t.contains(&q)).count() as f64;
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        for (d, t) in &toks {
            let tf = t.iter().filter(|w| **w == q).count() as f64;
            if tf == 0.0 {
                continue;
            }
            let dl = t.len() as f64;
            *scores.entry((*d).clone()).or_default() +=
                idf * tf * (1.2 + 1.0) / (tf + 1.2 * (1.0 - 0.75 + 0.75 * dl / avgdl));
        }
    }
    let mut out: Vec<(String, f64)> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

use sop_testkit::rng::TestRng as Rng;

const WORDS: [&str; 40] = [
    "the",
    "fox",
    "dog",
    "Cat",
    "rust",
    "go",
    "apple",
    "Ünïcode",
    "data",
    "tree",
    "node",
    "page",
    "log",
    "sync",
    "disk",
    "read",
    "write",
    "commit",
    "key",
    "value",
    "index",
    "query",
    "score",
    "term",
    "doc",
    "rank",
    "heap",
    "merge",
    "split",
    "leaf",
    "root",
    "cache",
    "lock",
    "redis",
    "vector",
    "search",
    "text",
    "token",
    "word",
    "42",
];

fn text(r: &mut Rng) -> String {
    let len = 1 + r.below(30);
    let mut s = String::new();
    for i in 0..len {
        // Zipf-like: low indexes far more often.
        let w = WORDS[(r.below(40) * r.below(40) / 40) as usize];
        s.push_str(w);
        s.push_str([" ", ", ", ". ", "-", "  "][(i % 5) as usize]);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_match_the_formula_over_the_raw_corpus() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let mut r = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let tx = db.begin(TxMode::ForWriting);
    SearchIndex::open_or_create(&tx, "idx")?;
    tx.commit().await?;
    // Rounds of adds, re-adds and deletes; one round rolled back.
    for round in 0..12 {
        let tx = db.begin(TxMode::ForWriting);
        let mut idx = SearchIndex::open(&tx, "idx")?;
        let mut next = model.clone();
        for _ in 0..150 {
            let id = format!("d{:04}", r.below(1000));
            match r.below(10) {
                0..=6 => {
                    let t = text(&mut r);
                    idx.add(&id, &t).await?;
                    next.insert(id, t);
                }
                _ => {
                    let removed = idx.remove(&id).await?;
                    assert_eq!(removed, next.remove(&id).is_some());
                }
            }
        }
        if round == 7 {
            tx.rollback().await?;
        } else {
            if round % 4 == 3 {
                // Fold the statistics now and then, in the same transaction as adds.
                idx.fold_stats().await?;
            }
            tx.commit().await?;
            model = next;
        }
    }
    // Until 1,000 documents.
    let tx = db.begin(TxMode::ForWriting);
    let mut idx = SearchIndex::open(&tx, "idx")?;
    for i in 0..1000 {
        let id = format!("d{i:04}");
        if let std::collections::btree_map::Entry::Vacant(e) = model.entry(id) {
            let t = text(&mut r);
            idx.add(e.key(), &t).await?;
            e.insert(t);
        }
    }
    tx.commit().await?;
    assert_eq!(model.len(), 1000);

    let tx = db.begin(TxMode::ForReading);
    let idx = SearchIndex::open(&tx, "idx")?;
    assert_eq!(idx.doc_count().await?, 1000);
    let mut compared = 0;
    for q in 0..100 {
        let query = match q % 4 {
            0 => WORDS[r.below(40) as usize].to_string(),
            1 => format!(
                "{} {}",
                WORDS[r.below(40) as usize],
                WORDS[r.below(40) as usize]
            ),
            2 => format!(
                "{}, {}! {}",
                WORDS[r.below(10) as usize],
                WORDS[r.below(40) as usize],
                WORDS[r.below(40) as usize]
            ),
            _ => format!(
                "{} {} nosuchword",
                WORDS[r.below(40) as usize],
                WORDS[r.below(40) as usize]
            ),
        };
        let want = oracle(&model, &query);
        let got = idx.search(&query, 1000).await?;
        assert_eq!(got.len(), want.len(), "{query}");
        for (g, (d, s)) in got.iter().zip(&want) {
            assert_eq!(&g.doc_id, d, "{query}");
            assert!(
                (g.score - s).abs() <= 1e-9,
                "{query}: {d} {} vs {s}",
                g.score
            );
            compared += 1;
        }
        // Top-k is the head of the full ranking.
        let top = idx.search(&query, 10).await?;
        assert_eq!(top, got[..got.len().min(10)].to_vec());
    }
    assert!(compared > 10_000, "{compared} scores compared");
    Ok(())
}

#[tokio::test]
async fn two_concurrent_indexing_transactions_both_commit() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    index(&db, &[("seed", "the common words of every document")]).await?;
    let a = db.begin(TxMode::ForWriting);
    let b = db.begin(TxMode::ForWriting);
    let mut ia = SearchIndex::open(&a, "idx")?;
    let mut ib = SearchIndex::open(&b, "idx")?;
    for i in 0..50 {
        ia.add(&format!("a{i}"), "the common words and alpha")
            .await?;
        ib.add(&format!("b{i}"), "the common words and beta")
            .await?;
    }
    a.commit().await?;
    b.commit().await?; // no shared key: statistics are per-writer deltas, df is counted
    let tx = db.begin(TxMode::ForReading);
    let idx = SearchIndex::open(&tx, "idx")?;
    assert_eq!(idx.doc_count().await?, 101);
    assert_eq!(idx.search("common", 1000).await?.len(), 101);
    assert_eq!(idx.search("alpha beta", 1000).await?.len(), 100);
    Ok(())
}

#[tokio::test]
async fn and_queries_deletes_and_bad_input() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    index(
        &db,
        &[
            ("1", "red apple"),
            ("2", "green apple"),
            ("3", "red cherry"),
            ("4", "apple pie"),
        ],
    )
    .await?;
    let tx = db.begin(TxMode::ForWriting);
    let mut idx = SearchIndex::open(&tx, "idx")?;
    let all: Vec<String> = idx
        .search_with("red apple", 10, Match::All)
        .await?
        .into_iter()
        .map(|h| h.doc_id)
        .collect();
    assert_eq!(all, ["1"]);
    assert_eq!(idx.search_with("red apple", 10, Match::Any).await?.len(), 4);
    // Empty and punctuation-only queries find nothing; k = 0 is a typed error.
    assert!(idx.search("", 10).await?.is_empty());
    assert!(idx.search(" ,.;!?-- ", 10).await?.is_empty());
    let e = idx.search("apple", 0).await.unwrap_err();
    assert_eq!(e.kind(), sop_core::ErrorKind::Usage, "{e}");
    // Re-add replaces; delete takes the document out of every term.
    idx.add("1", "blue berry").await?;
    assert!(idx.search("red", 10).await?.iter().all(|h| h.doc_id != "1"));
    assert!(idx.remove("4").await?);
    assert!(!idx.remove("4").await?);
    assert_eq!(idx.search("apple", 10).await?.len(), 1);
    assert_eq!(idx.doc_count().await?, 3);
    // A 10 MB document is indexed (and found).
    let mut big = String::with_capacity(10 << 20);
    let mut i = 0u64;
    while big.len() < 10 << 20 {
        big.push_str(&format!("w{} ", i % 50_000));
        i += 1;
    }
    idx.add("big", &big).await?;
    assert_eq!(idx.search("w12345", 5).await?[0].doc_id, "big");
    assert!(idx.add("", "x").await.is_err());
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn statistics_stay_right_with_two_handles_a_fold_and_a_huge_k() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    index(&db, &[("seed", "one two")]).await?;
    let tx = db.begin(TxMode::ForWriting);
    let mut a = SearchIndex::open(&tx, "idx")?;
    let mut b = SearchIndex::open(&tx, "idx")?;
    a.add("x", "three").await?;
    b.fold_stats().await?; // takes a's delta into the base
    a.add("y", "four").await?;
    assert_eq!(a.doc_count().await?, 3);
    assert_eq!(b.doc_count().await?, 3);
    // k far beyond the documents: no allocation of k, no panic.
    assert_eq!(a.search("one three four", usize::MAX).await?.len(), 3);
    tx.commit().await?;
    Ok(())
}
