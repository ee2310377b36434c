//! Integration tests of the standalone database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bank;
mod basic;
mod cluster;
mod crash;
mod decoders;
mod faults;
mod kill;
mod model;
mod powerloss;
mod replicated;
mod support;
mod verify;
