//! The shape of erasure coding across drives, and the Reed-Solomon coding itself
//! (`reed-solomon-simd`), which `EcFs` uses for every stripe.

use std::collections::BTreeSet;
use std::path::PathBuf;

use sop_core::{Error, Result};

/// How the log is coded: `data_shards + parity_shards` units per stripe, one per drive, in the
/// order of `drives`. Any `data_shards` intact units rebuild a stripe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureConfig {
    /// Data shards (at least 1).
    pub data_shards: u8,
    /// Parity shards (at least 1): how many drives may be lost.
    pub parity_shards: u8,
    /// One base folder per unit of a stripe, each on its own drive; `data_shards +
    /// parity_shards` of them.
    pub drives: Vec<PathBuf>,
    /// Whether reads rewrite the records they found missing or corrupt.
    pub repair: bool,
}

impl ErasureConfig {
    /// Checks the shape.
    ///
    /// # Errors
    /// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) saying what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "erasure coding",
                reason,
            }))
        };
        let n = usize::from(self.data_shards) + usize::from(self.parity_shards);
        if self.data_shards == 0 || self.parity_shards == 0 {
            return bad("data and parity shard counts must both be at least 1".into());
        }
        if n > 255 {
            return bad(format!("{n} shards, at most 255"));
        }
        if self.drives.len() != n {
            return bad(format!(
                "{}+{} shards need {n} drive folders, {} given",
                self.data_shards,
                self.parity_shards,
                self.drives.len()
            ));
        }
        let distinct: BTreeSet<_> = self.drives.iter().collect();
        if distinct.len() != n {
            return bad("drive folders must be distinct".into());
        }
        Ok(())
    }
}

/// Splits `bytes` into `k` equal data shards (zero-padded, even-sized, at least 2 bytes, as
/// `reed-solomon-simd` requires) and appends `m` parity shards.
///
/// # Errors
/// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) when the coder refuses the shape.
pub fn split_encode(k: usize, m: usize, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let shard_len = bytes.len().div_ceil(k.max(1)).max(2).next_multiple_of(2);
    let mut shards: Vec<Vec<u8>> = (0..k)
        .map(|i| {
            let start = (i * shard_len).min(bytes.len());
            let end = ((i + 1) * shard_len).min(bytes.len());
            let mut s = bytes[start..end].to_vec();
            s.resize(shard_len, 0);
            s
        })
        .collect();
    let parity = reed_solomon_simd::encode(k, m, &shards).map_err(rs_error)?;
    shards.extend(parity);
    Ok(shards)
}

/// Fills in every missing shard (data and parity) of a `k + m` set from any `k` present ones.
///
/// # Errors
/// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) when fewer than `k` shards are present or sizes differ.
pub fn reconstruct(k: usize, m: usize, shards: &mut [Option<Vec<u8>>]) -> Result<()> {
    if shards.iter().take(k).any(Option::is_none) {
        let originals = shards
            .iter()
            .take(k)
            .enumerate()
            .filter_map(|(i, x)| x.as_ref().map(|x| (i, x)));
        let recovery = shards
            .iter()
            .skip(k)
            .enumerate()
            .filter_map(|(i, x)| x.as_ref().map(|x| (i, x)));
        let restored = reed_solomon_simd::decode(k, m, originals, recovery).map_err(rs_error)?;
        for (i, shard) in restored {
            if let Some(slot) = shards.get_mut(i) {
                *slot = Some(shard);
            }
        }
    }
    if shards.iter().skip(k).any(Option::is_none) {
        let data: Vec<&Vec<u8>> = shards.iter().take(k).flatten().collect();
        let parity = reed_solomon_simd::encode(k, m, data).map_err(rs_error)?;
        for (i, shard) in parity.into_iter().enumerate() {
            if let Some(slot @ None) = shards.get_mut(k + i) {
                *slot = Some(shard);
            }
        }
    }
    Ok(())
}

fn rs_error(e: impl std::fmt::Display) -> Error {
    Error::Usage(sop_core::UsageError::InvalidConfig {
        what: "erasure coding",
        reason: e.to_string(),
    })
}
