//! Integration tests of the B-tree: model-based property tests and focused scenarios.

mod cursor;
mod errors;
mod model;
mod support;
