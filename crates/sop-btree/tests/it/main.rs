//! Integration tests of the B-tree: model-based property tests and focused scenarios.

// Test helpers outside #[test] functions panic to report failures too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cursor;
mod errors;
mod heads;
mod model;
mod support;
mod walkers;
