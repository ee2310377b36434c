//! Hybrid search: BM25 and vector results fused by reciprocal rank fusion.

use std::collections::HashMap;

use sop_core::Result;
use sop_search::{SearchIndex, Tokenizer};

use crate::query::QueryOptions;
use crate::store::VectorStore;

/// Reciprocal rank fusion: each id scores `Σ 1 / (k + rank)` over the lists it is in (rank
/// from 1), best first, ties in id order. The usual `k` is 60.
///
/// ```
/// let fused = sop_vector::rrf(&[vec!["a".into(), "b".into()], vec!["b".into(), "c".into()]], 60.0);
/// assert_eq!(fused[0].0, "b"); // 1/62 + 1/61 beats 1/61
/// ```
#[must_use]
pub fn rrf(lists: &[Vec<String>], k: f64) -> Vec<(String, f64)> {
    let mut score: HashMap<&str, f64> = HashMap::new();
    for list in lists {
        for (i, id) in list.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let rank = (i + 1) as f64;
            *score.entry(id.as_str()).or_default() += 1.0 / (k + rank);
        }
    }
    let mut out: Vec<(String, f64)> = score
        .into_iter()
        .map(|(id, s)| (id.to_string(), s))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The top `k` of a text query and a vector query fused by [`rrf`] (k = 60), each side asked
/// for its best `depth` (with `nprobe` buckets for the vector side). Documents and vectors are
/// joined by id.
///
/// # Errors
/// As [`SearchIndex::search`] and [`VectorStore::query`].
pub async fn hybrid_search<T: Tokenizer>(
    text: &SearchIndex<T>,
    vectors: &VectorStore,
    query_text: &str,
    query_vector: &[f32],
    k: usize,
    depth: usize,
    nprobe: usize,
) -> Result<Vec<(String, f64)>> {
    let by_text: Vec<String> = text
        .search(query_text, depth.max(1))
        .await?
        .into_iter()
        .map(|h| h.doc_id)
        .collect();
    let opts = QueryOptions {
        nprobe,
        ..QueryOptions::new(depth.max(1))
    };
    let (hits, _) = vectors.query(query_vector, &opts).await?;
    let by_vector: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    let mut fused = rrf(&[by_text, by_vector], 60.0);
    fused.truncate(k);
    Ok(fused)
}
