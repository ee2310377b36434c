//! Integration tests of the standalone database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bank;
mod basic;
mod budget;
mod cluster;
mod cluster_scale;
mod crash;
mod damage;
mod decoders;
mod faults;
mod kill;
mod misuse;
mod model;
mod powerloss;
mod readonly;
mod replicated;
mod snapshots;
mod space;
mod support;
mod twophase;
mod verify;
