//! A transactional vector store on sop-rs: SOP's IVF design on B-trees (centroids, vectors
//! keyed by `(centroid, distance to it, id)`, items, and a lookup tree for uniform samples),
//! with real distance pruning and an optimize that rebuilds into a new version while reads and
//! writes go on.
//!
//! Every call runs in the caller's transaction: vectors commit (or roll back) with the
//! documents and models they belong to. This crate uses the public transaction and tree API
//! (and the `Database` to run an optimize's small transactions).

mod health;
mod hybrid;
mod kmeans;
mod layout;
mod optimize;
mod query;
mod store;
mod vector;

pub use health::{Health, optimize_if_needed, spawn_self_healing};
pub use hybrid::{hybrid_search, rrf};
pub use optimize::{OptimizeOptions, OptimizeReport, cancel_optimize, optimize, prune_versions};
pub use query::{Hit, QueryOptions, QueryStats};
pub use store::VectorStore;
pub use vector::{Metric, Vector, dot, l2, norm};
