//! Queries: the `nprobe` buckets nearest the query, walked outward from the query's distance
//! to each centroid and cut off by the triangle inequality.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;

use serde_json::Value;
use sop_core::Result;

use crate::layout::{Stored, dist_bits};
use crate::store::{VectorStore, parse_payload};
use crate::vector::{Metric, dot, l2};

/// A query's parameters.
pub struct QueryOptions<'a> {
    /// How many results (at least 1).
    pub k: usize,
    /// How many buckets (nearest centroids) to search (at least 1).
    pub nprobe: usize,
    /// Keep only items whose payload passes.
    pub filter: Option<&'a (dyn Fn(&Value) -> bool + Send + Sync)>,
    /// Skip the triangle-inequality cut-off (for measuring what it saves).
    pub no_pruning: bool,
}

impl std::fmt::Debug for QueryOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryOptions")
            .field("k", &self.k)
            .field("nprobe", &self.nprobe)
            .finish_non_exhaustive()
    }
}

impl QueryOptions<'_> {
    /// The top `k`, 8 buckets probed, no filter.
    #[must_use]
    pub fn new(k: usize) -> Self {
        QueryOptions {
            k,
            nprobe: 8,
            filter: None,
            no_pruning: false,
        }
    }
}

/// One result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The item's id.
    pub id: String,
    /// Its score: L2 distance (smaller is closer), cosine similarity or inner product (larger
    /// is closer).
    pub score: f32,
    /// Its payload.
    pub payload: Value,
}

/// What a query did: how much work the pruning saved is `scanned - distances`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Buckets probed.
    pub buckets: usize,
    /// Items whose keys were visited.
    pub scanned: u64,
    /// Distances computed between the query and an item's vector.
    pub distances: u64,
}

/// A candidate: its distance in the index's space (smaller is closer) and id.
struct Cand {
    dist: f32,
    id: String,
    payload: String,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    /// The worst (farthest, then greater id) is the greatest: the heap's top.
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist
            .total_cmp(&o.dist)
            .then_with(|| self.id.cmp(&o.id))
    }
}

struct TopK {
    k: usize,
    heap: BinaryHeap<Cand>,
}

impl TopK {
    /// The distance an item must beat (infinite until k are held).
    fn bound(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |c| c.dist)
        }
    }

    /// Whether `c` would be in the top k now (ties by id, as the result order).
    fn wants(&self, c: &Cand) -> bool {
        self.heap.len() < self.k || self.heap.peek().is_some_and(|worst| c < worst)
    }

    fn offer(&mut self, c: Cand) {
        self.heap.push(c);
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }
}

impl VectorStore {
    /// The `k` items nearest `vector` (see [`QueryOptions`]) and what the search did.
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`](sop_core::UsageError::InvalidArgument) for a vector of
    /// the wrong dimension, with NaN or infinite components, zero under cosine, or `k` or
    /// `nprobe` of 0; conflicts and storage errors.
    pub async fn query(
        &self,
        vector: &[f32],
        opts: &QueryOptions<'_>,
    ) -> Result<(Vec<Hit>, QueryStats)> {
        if opts.k == 0 {
            return Err(self.bad("k", "0 results asked for; ask for at least 1".into()));
        }
        if opts.nprobe == 0 {
            return Err(self.bad("nprobe", "0 buckets; probe at least 1".into()));
        }
        let q = self.prepare("query vector", vector)?;
        let metric = self.config.metric;
        let ver = &self.cur;
        // Buckets nearest the query first, with the query's distance to each centroid.
        let mut buckets: Vec<(u32, f32)> = if ver.centroids.is_empty() {
            vec![(0, crate::vector::norm(&q))]
        } else {
            ver.centroids
                .iter()
                .enumerate()
                .map(|(i, c)| (u32::try_from(i).unwrap_or(u32::MAX), l2(&q, c)))
                .collect()
        };
        buckets.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        buckets.truncate(opts.nprobe);
        let mut top = TopK {
            k: opts.k,
            heap: BinaryHeap::with_capacity(opts.k.min(1024) + 1),
        };
        let mut stats = QueryStats {
            buckets: buckets.len(),
            ..QueryStats::default()
        };
        // Dot is no metric: every item of a probed bucket is scored.
        let prune = metric != Metric::Dot && !opts.no_pruning;
        for (c, dq) in buckets {
            let pivot = (c, dist_bits(dq), String::new());
            let up = ver.vectors.range((
                Bound::Included(pivot.clone()),
                Bound::Excluded((c.saturating_add(1), 0, String::new())),
            ));
            let down = ver.vectors.range((
                Bound::Included((c, 0, String::new())),
                Bound::Excluded(pivot),
            ));
            for (mut range, forward) in [(up, true), (down, false)] {
                loop {
                    let it = if forward {
                        range.next_ref().await?
                    } else {
                        range.next_back_ref().await?
                    };
                    let Some(it) = it else { break };
                    stats.scanned += 1;
                    let dx = f32::from_bits(it.key().1);
                    // |d(q,c) - d(x,c)| <= d(q,x): past the bound, this item and every one
                    // farther along this direction lose.
                    // A hair of slack for f32 rounding in the three distances.
                    let bound = top.bound();
                    if prune && (dq - dx).abs() > bound + bound.abs() * 1e-5 + 1e-6 {
                        break;
                    }
                    let s: &Stored = it.value();
                    if let Some(f) = opts.filter
                        && !f(&parse_payload(&s.payload))
                    {
                        continue;
                    }
                    stats.distances += 1;
                    let dist = match metric {
                        Metric::L2 | Metric::Cosine => l2(&q, &s.vector.0),
                        Metric::Dot => -dot(&q, &s.vector.0),
                    };
                    let cand = Cand {
                        dist,
                        id: it.key().2.clone(),
                        payload: String::new(),
                    };
                    if top.wants(&cand) {
                        top.offer(Cand {
                            payload: s.payload.clone(),
                            ..cand
                        });
                    }
                }
            }
        }
        let mut out: Vec<Cand> = top.heap.into_vec();
        out.sort();
        let hits = out
            .into_iter()
            .map(|c| Hit {
                score: match metric {
                    Metric::L2 => c.dist,
                    // Unit vectors: |q - x|^2 = 2 - 2 cos.
                    Metric::Cosine => 1.0 - c.dist * c.dist / 2.0,
                    Metric::Dot => -c.dist,
                },
                id: c.id,
                payload: parse_payload(&c.payload),
            })
            .collect();
        Ok((hits, stats))
    }
}
