//! Integration tests of the standalone database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basic;
mod model;
