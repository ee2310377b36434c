//! Embedders: text to vectors.

use std::collections::HashMap;

use crate::error::Result;

/// Turns texts into vectors (one per text, all of one dimension).
pub trait Embedder: Send + Sync {
    /// A name for messages.
    fn name(&self) -> &str;
    /// The vectors of `texts`.
    ///
    /// # Errors
    /// The backend failed (an HTTP embedder).
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;

    /// The text as the text index should see it (the hashing embedder applies its synonyms,
    /// so "tummy" finds "abdomen" by words too). The default: unchanged.
    fn normalize(&self, text: &str) -> String {
        text.to_string()
    }
}

/// Words that carry no meaning for retrieval (common English words, and the domain words
/// SOP drops: case, symptoms, include, pain, score).
pub(crate) const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "feel",
    "feeling",
    "feels",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "got",
    "get",
    "really",
    "bit",
    "lot",
    "since",
    "case",
    "symptoms",
    "include",
    "pain",
    "score",
];

/// SOP's hashing bag-of-words embedder (deterministic, no model): lowercase, split on
/// whitespace, trim punctuation, drop stop words, map synonyms, count each word in bucket
/// FNV-1a-32(word) mod `dims`, L2-normalize. Unlike SOP, synonyms may be phrases ("throw up"
/// -> "vomiting"): they are replaced in the text before it is split.
#[derive(Clone, Debug)]
pub struct HashingEmbedder {
    name: String,
    dims: usize,
    words: HashMap<String, String>,
    phrases: Vec<(String, String)>,
}

impl HashingEmbedder {
    /// An embedder of `dims` dimensions (at least 1) with `synonyms` (lay word -> term).
    #[must_use]
    pub fn new(name: impl Into<String>, dims: usize, synonyms: &HashMap<String, String>) -> Self {
        let mut words = HashMap::new();
        let mut phrases = Vec::new();
        for (k, v) in synonyms {
            let k = k.trim().to_lowercase();
            let v = v.trim().to_lowercase();
            if k.contains(char::is_whitespace) {
                phrases.push((k, v));
            } else if !k.is_empty() {
                words.insert(k, v);
            }
        }
        // Longest phrases first, so "throw up blood" wins over "throw up".
        phrases.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        HashingEmbedder {
            name: name.into(),
            dims: dims.max(1),
            words,
            phrases,
        }
    }

    /// The terms a text is counted as (after stop words and synonyms).
    #[must_use]
    pub fn terms(&self, text: &str) -> Vec<String> {
        let words: Vec<String> = text
            .to_lowercase()
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
            .filter(|w| !w.is_empty())
            .collect();
        let mut t = format!(" {} ", words.join(" "));
        for (k, v) in &self.phrases {
            let (from, to) = (format!(" {k} "), format!(" {v} "));
            // `replace` skips a match that overlaps the one before ("throw up throw up"):
            // again until none is left, at most once a word (a synonym that contains its own
            // phrase would otherwise grow for ever).
            for _ in 0..words.len() {
                if !t.contains(&from) {
                    break;
                }
                t = t.replace(&from, &to);
            }
        }
        // Stop words go before synonyms (SOP's order: "hurt" -> "pain" counts though "pain"
        // is a stop word); a synonym of several words counts each.
        t.split_whitespace()
            .filter(|w| !STOP_WORDS.contains(w))
            .flat_map(|w| match self.words.get(w) {
                Some(v) => v.split_whitespace().map(str::to_string).collect::<Vec<_>>(),
                None => vec![w.to_string()],
            })
            .collect()
    }

    /// The vector of one text.
    #[must_use]
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dims];
        for w in self.terms(text) {
            let h = fnv1a32(w.as_bytes()) as usize % self.dims;
            v[h] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl Embedder for HashingEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }

    fn normalize(&self, text: &str) -> String {
        self.terms(text).join(" ")
    }
}

/// FNV-1a, 32 bits.
#[must_use]
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// FNV-1a, 64 bits, as 16 hex digits (SOP's `HashString`: content-hash ids).
#[must_use]
pub fn hash_string(s: &str) -> String {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}
