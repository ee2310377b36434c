//! Tokenizers: text to the terms that are indexed and searched.

use std::collections::HashSet;

/// Turns text into terms. Indexing and searching must use the same tokenizer.
pub trait Tokenizer: Send + Sync {
    /// The terms of `text`, in order (repeats kept: they are term frequencies).
    fn tokenize(&self, text: &str) -> Vec<String>;
}

/// SOP's tokenizer: runs of Unicode letters and digits, lowercased; optionally without stop
/// words.
///
/// ```
/// use sop_search::{Tokenizer, UnicodeTokenizer};
/// let t = UnicodeTokenizer::new();
/// assert_eq!(t.tokenize("Hello, World! Ünïcode 42x"), ["hello", "world", "ünïcode", "42x"]);
/// let t = UnicodeTokenizer::new().with_stop_words(["the", "a"]);
/// assert_eq!(t.tokenize("The cat, a hat"), ["cat", "hat"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct UnicodeTokenizer {
    stop: HashSet<String>,
}

impl UnicodeTokenizer {
    /// Letters and digits, lowercased, every word kept.
    #[must_use]
    pub fn new() -> Self {
        UnicodeTokenizer::default()
    }

    /// Leaves these words out (compared after lowercasing).
    #[must_use]
    pub fn with_stop_words<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.stop = words
            .into_iter()
            .map(|w| w.as_ref().to_lowercase())
            .collect();
        self
    }
}

impl Tokenizer for UnicodeTokenizer {
    fn tokenize(&self, text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .filter(|w| !self.stop.contains(w))
            .collect()
    }
}
