//! One adapter per engine.

pub mod fjall_kv;
pub mod lmdb;
pub mod redb_kv;
pub mod sop_kv;
pub mod sqlite;

use std::path::Path;

use anyhow::{Result, bail};

use crate::Kv;

/// The engines, by the names `--engines` takes.
pub const ALL: [&str; 6] = ["sop", "sop-tuned", "redb", "lmdb", "sqlite", "fjall"];

/// Opens engine `name` in the empty folder `dir`.
///
/// # Errors
/// Unknown names and the engine's own errors.
pub fn open(name: &str, dir: &Path) -> Result<Box<dyn Kv>> {
    Ok(match name {
        "sop" => Box::new(sop_kv::SopKv::open(dir, sop_kv::Tuning::Default)?),
        "sop-tuned" => Box::new(sop_kv::SopKv::open(dir, sop_kv::Tuning::Tuned)?),
        "redb" => Box::new(redb_kv::RedbKv::open(dir)?),
        "lmdb" => Box::new(lmdb::LmdbKv::open(dir)?),
        "sqlite" => Box::new(sqlite::SqliteKv::open(dir)?),
        "fjall" => Box::new(fjall_kv::FjallKv::open(dir)?),
        other => bail!("unknown engine {other:?}; engines: {}", ALL.join(", ")),
    })
}
