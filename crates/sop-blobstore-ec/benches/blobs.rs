//! Blob store benchmarks.
fn main() {}
