//! sop-txn's own tests, on the in-memory metadata seam ([`sop_core::meta::MemMetadata`]) and a
//! simulated file system for the log: no registry, no folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bounded;
mod faults;
mod guards;
mod model;
mod readonly;
mod rig;
mod snapshots;
