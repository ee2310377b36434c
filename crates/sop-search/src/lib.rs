//! Transactional BM25 text search on sop-rs: SOP's `search` package, with delete, re-add, top-k
//! and statistics that concurrent indexers never fight over.
//!
//! A [`SearchIndex`] lives in three B-trees inside the caller's transaction: postings
//! `(term, doc) -> (tf, doc length)`, documents `doc -> (length, its terms)` (what a delete or a
//! re-add takes back), and collection statistics kept as per-writer deltas (every indexing
//! handle adds to its own item, so two transactions indexing at once never touch the same key;
//! [`SearchIndex::fold_stats`] folds the deltas). A term's document frequency is the number of its
//! postings, counted while they are scored: there is no per-term counter to contend on either.
//!
//! Scores are Lucene's and SOP's BM25, exact in `f64`: k1 = 1.2, b = 0.75,
//! `idf = ln(1 + (N - n + 0.5) / (n + 0.5))`,
//! `score = Σ idf · tf · (k1 + 1) / (tf + k1 · (1 - b + b · dl / avgdl))` over the query's terms
//! (a term given twice counts twice, as in SOP); ties in doc id order.

mod index;
mod stats;
mod tokenize;

pub use index::{Hit, Match, SearchIndex};
pub use tokenize::{Tokenizer, UnicodeTokenizer};

/// BM25's term-frequency saturation.
pub const K1: f64 = 1.2;
/// BM25's length normalisation.
pub const B: f64 = 0.75;
