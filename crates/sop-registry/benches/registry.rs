//! Registry benchmarks.
fn main() {}
