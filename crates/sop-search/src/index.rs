//! The index: postings, documents and statistics in three B-trees of the caller's transaction.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use sop_core::{Error, Result, StoreOptions, UsageError, ValueDataSize};
use sop_txn::{Store, Transaction};

use crate::stats::Stats;
use crate::tokenize::{Tokenizer, UnicodeTokenizer};
use crate::{B, K1};

/// A posting's value: the term's frequency in the document and the document's length, so a
/// search scores a posting without looking the document up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Posting {
    tf: u32,
    dl: u32,
}

/// What the index keeps of a document: its length and its terms with their frequencies (what a
/// delete or a re-add takes back; the text is not kept).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Doc {
    len: u32,
    terms: Vec<(String, u32)>,
}

/// One search result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The document's id.
    pub doc_id: String,
    /// Its BM25 score.
    pub score: f64,
}

/// How the query's terms combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Match {
    /// Documents with any of the terms (SOP's OR).
    #[default]
    Any,
    /// Documents with every term.
    All,
}

/// A BM25 text index inside a transaction: SOP's `search.Index`, with delete, re-add that
/// replaces, top-k, AND queries and statistics without a hot spot.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use sop_search::SearchIndex;
///
/// let dir = tempfile::tempdir()?;
/// let db = sop_database::Database::standalone(dir.path())?;
/// let tx = db.begin(sop_txn::TxMode::ForWriting);
/// let mut idx = SearchIndex::open_or_create(&tx, "docs")?;
/// idx.add("a", "The quick brown fox").await?;
/// idx.add("b", "The lazy dog sleeps").await?;
/// idx.add("c", "quick fox, quick fox").await?;
/// tx.commit().await?;
///
/// let tx = db.begin(sop_txn::TxMode::ForReading);
/// let idx = SearchIndex::open(&tx, "docs")?;
/// let hits = idx.search("quick fox", 10).await?;
/// assert_eq!(hits[0].doc_id, "c");
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct SearchIndex<T = UnicodeTokenizer> {
    name: String,
    postings: Store<(String, String), Posting>,
    docs: Store<String, Doc>,
    stats: Stats,
    tokenizer: T,
}

impl<T> std::fmt::Debug for SearchIndex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn names(name: &str) -> [String; 3] {
    [
        format!("{name}_postings"),
        format!("{name}_docs"),
        format!("{name}_stats"),
    ]
}

/// The longest document accepted, in bytes of text: 64 MiB.
pub const MAX_DOC_BYTES: usize = 64 << 20;

impl SearchIndex<UnicodeTokenizer> {
    /// Opens the index `name` (stores `{name}_postings`, `{name}_docs`, `{name}_stats`),
    /// creating it when missing (SOP's `NewIndex`), with the [`UnicodeTokenizer`].
    ///
    /// # Errors
    /// An invalid name; a read-only transaction when it must be created; storage errors.
    pub fn open_or_create(tx: &Transaction, name: &str) -> Result<Self> {
        let [p, d, _] = names(name);
        let create = tx.store_info(&p)?.is_none() || tx.store_info(&d)?.is_none();
        Self::make(tx, name, create, UnicodeTokenizer::new())
    }

    /// Opens an existing index.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`] when there is none.
    pub fn open(tx: &Transaction, name: &str) -> Result<Self> {
        Self::make(tx, name, false, UnicodeTokenizer::new())
    }
}

impl<T: Tokenizer> SearchIndex<T> {
    fn make(tx: &Transaction, name: &str, create: bool, tokenizer: T) -> Result<Self> {
        let [p, d, s] = names(name);
        let (postings, docs) = if create {
            (
                tx.new_btree(&StoreOptions::new(p).slot_length(1000))?,
                tx.new_btree(
                    &StoreOptions::with_value_size(d, ValueDataSize::Medium).slot_length(500),
                )?,
            )
        } else {
            (tx.open_btree(&p)?, tx.open_btree(&d)?)
        };
        Ok(SearchIndex {
            name: name.to_string(),
            postings,
            docs,
            stats: Stats::open(tx, &s, create)?,
            tokenizer,
        })
    }

    /// The same index with another tokenizer (use the one it was built with).
    pub fn with_tokenizer<U: Tokenizer>(self, tokenizer: U) -> SearchIndex<U> {
        SearchIndex {
            name: self.name,
            postings: self.postings,
            docs: self.docs,
            stats: self.stats,
            tokenizer,
        }
    }

    fn bad(&self, what: &'static str, reason: String) -> Error {
        Error::Usage(UsageError::InvalidArgument {
            store: self.name.clone(),
            what,
            reason,
        })
    }

    /// Indexes `text` as document `doc_id`; a document indexed before is replaced (SOP's `Add`
    /// counted a re-added document twice and corrupted its statistics).
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] for an empty id or a text over [`MAX_DOC_BYTES`];
    /// conflicts, storage errors, a read-only transaction.
    pub async fn add(&mut self, doc_id: &str, text: &str) -> Result<()> {
        if doc_id.is_empty() {
            return Err(self.bad("document id", "empty".into()));
        }
        if text.len() > MAX_DOC_BYTES {
            return Err(self.bad(
                "document",
                format!(
                    "{} bytes of text is over {MAX_DOC_BYTES}; split it",
                    text.len()
                ),
            ));
        }
        self.remove(doc_id).await?;
        let tokens = self.tokenizer.tokenize(text);
        let dl = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        let mut tf: HashMap<String, u32> = HashMap::new();
        for t in tokens {
            *tf.entry(t).or_default() += 1;
        }
        let mut terms: Vec<(String, u32)> = tf.into_iter().collect();
        terms.sort();
        for (term, f) in &terms {
            self.postings
                .upsert((term.clone(), doc_id.to_string()), Posting { tf: *f, dl })
                .await?;
        }
        self.docs
            .upsert(doc_id.to_string(), Doc { len: dl, terms })
            .await?;
        self.stats.add(1, i64::from(dl)).await
    }

    /// Removes a document; `false` when it is not indexed.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn remove(&mut self, doc_id: &str) -> Result<bool> {
        let Some(doc) = self.docs.get(&doc_id.to_string()).await? else {
            return Ok(false);
        };
        for (term, _) in &doc.terms {
            self.postings
                .remove(&(term.clone(), doc_id.to_string()))
                .await?;
        }
        self.docs.remove(&doc_id.to_string()).await?;
        self.stats.add(-1, -i64::from(doc.len)).await?;
        Ok(true)
    }

    /// Whether a document is indexed.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn contains(&self, doc_id: &str) -> Result<bool> {
        self.docs.contains_key(&doc_id.to_string()).await
    }

    /// How many documents are indexed.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn doc_count(&self) -> Result<u64> {
        Ok(u64::try_from(self.stats.totals().await?.docs).unwrap_or(0))
    }

    /// Folds the statistics' deltas into one item; how many were folded. Run it now and then
    /// in a transaction of its own (it conflicts with indexers committing meanwhile).
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn fold_stats(&mut self) -> Result<usize> {
        self.stats.fold().await
    }

    /// The top `k` documents for `query` (any of its terms), best first.
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] for `k` = 0; conflicts and storage errors. An empty
    /// query, or one of punctuation only, finds nothing.
    pub async fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        self.search_with(query, k, Match::Any).await
    }

    /// The top `k` documents for `query`, its terms combined as `mode` says, best first; equal
    /// scores in doc id order.
    ///
    /// # Errors
    /// As [`SearchIndex::search`].
    pub async fn search_with(&self, query: &str, k: usize, mode: Match) -> Result<Vec<Hit>> {
        if k == 0 {
            return Err(self.bad("k", "0 results asked for; ask for at least 1".into()));
        }
        let terms = self.tokenizer.tokenize(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let totals = self.stats.totals().await?;
        if totals.docs <= 0 {
            return Ok(Vec::new());
        }
        #[allow(clippy::cast_precision_loss)]
        let (n, avgdl) = (totals.docs as f64, totals.len as f64 / totals.docs as f64);
        // Each distinct term's postings once; a term given twice counts twice.
        let mut weight: HashMap<&str, u32> = HashMap::new();
        for t in &terms {
            *weight.entry(t.as_str()).or_default() += 1;
        }
        let mut scores: HashMap<String, (f64, usize)> = HashMap::new();
        let mut distinct: Vec<&str> = weight.keys().copied().collect();
        distinct.sort_unstable();
        for term in &distinct {
            let postings = self.postings_of(term).await?;
            #[allow(clippy::cast_precision_loss)]
            let df = postings.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let times = f64::from(weight[term]);
            for (doc, p) in postings {
                let (tf, dl) = (f64::from(p.tf), f64::from(p.dl));
                let norm = if avgdl > 0.0 { dl / avgdl } else { 0.0 };
                let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * norm));
                let e = scores.entry(doc).or_insert((0.0, 0));
                e.0 += times * s;
                e.1 += 1;
            }
        }
        let need = if mode == Match::All {
            distinct.len()
        } else {
            1
        };
        Ok(top_k(
            scores
                .into_iter()
                .filter(|(_, (_, hits))| *hits >= need)
                .map(|(doc_id, (score, _))| Hit { doc_id, score }),
            k,
        ))
    }

    async fn postings_of(&self, term: &str) -> Result<Vec<(String, Posting)>> {
        // Exactly this term's postings: `term + "\0"` is the next string after `term`, so the
        // read recorded for the commit check covers nothing else.
        let lo = Bound::Included((term.to_string(), String::new()));
        let hi = Bound::Excluded((format!("{term}\0"), String::new()));
        let mut range = self.postings.range((lo, hi));
        let mut out = Vec::new();
        while let Some(it) = range.next_ref().await? {
            let (t, doc) = it.key();
            if t != term {
                break;
            }
            out.push((doc.clone(), *it.value()));
        }
        Ok(out)
    }
}

/// Orders hits best first: higher score, then smaller doc id.
fn better(a: &Hit, b: &Hit) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| a.doc_id.cmp(&b.doc_id))
}

/// A hit in the heap, the worst on top.
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        better(&self.0, &other.0).is_eq()
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        better(&self.0, &other.0)
    }
}

/// The best `k` hits in order, with a heap of `k`.
fn top_k(hits: impl Iterator<Item = Hit>, k: usize) -> Vec<Hit> {
    let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k.min(1024) + 1);
    for h in hits {
        heap.push(Worst(h));
        if heap.len() > k {
            heap.pop();
        }
    }
    let mut out: Vec<Hit> = heap.into_iter().map(|w| w.0).collect();
    out.sort_by(better);
    out
}
