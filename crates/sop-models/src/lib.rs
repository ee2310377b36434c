//! A model registry on sop-rs: SOP's model store ("model registry with versions"), with the
//! versions real.
//!
//! SOP kept models under `(category, name)` and called a version part of the name
//! (`coder_v1`). A [`ModelStore`] keys them by `(category, name, version)`: saving makes a
//! new version (numbers never reused while the model exists), loading gives the latest or a
//! given version, versions are listed and deleted one at a time or all together. Metadata is
//! JSON; artifacts (weights, tokenizers) are streamed values of any size. Everything happens in
//! the caller's transaction, so a model commits atomically with the data and vectors it
//! belongs to, or not at all.

mod artifacts;
mod store;

pub use store::{ArtifactKey, ModelKey, ModelStore, ModelVersion};
