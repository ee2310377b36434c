//! The stores of a vector domain and what they hold.

use serde::{Deserialize, Serialize};

pub(crate) use crate::vector::{Metric, Vector};

/// A domain's configuration (`{name}_meta`, key `"config"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Config {
    pub dims: u32,
    pub metric: Metric,
    /// The version queries read.
    pub version: u32,
    /// The version an optimize is building (writers write to both).
    pub next: Option<u32>,
    /// Items when the current version was trained (0: never).
    #[serde(default)]
    pub trained_on: u64,
    /// The highest version ever begun: a new one is always above it, so places left in items
    /// by a cancelled optimize never match a later version.
    #[serde(default)]
    pub last: u32,
}

/// Where one version keeps an item's vector: its centroid and its distance to it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Place {
    pub version: u32,
    pub centroid: u32,
    pub dist: f32,
}

/// An item (`{name}_items`): its places (one per version it is in) and its payload (JSON
/// text).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Item {
    pub places: Vec<Place>,
    pub payload: String,
}

/// A vector's key in a version's vectors store: centroid, distance to it (as ordered bits:
/// non-negative `f32`s order as their bits), item id.
pub(crate) type VecKey = (u32, u32, String);

/// A vector's value: the vector and the item's payload (JSON text), so a query filters and
/// scores without looking the item up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub vector: Vector,
    pub payload: String,
}

pub(crate) fn dist_bits(d: f32) -> u32 {
    d.max(0.0).to_bits()
}

pub(crate) fn meta(name: &str) -> String {
    format!("{name}_meta")
}
pub(crate) fn items(name: &str) -> String {
    format!("{name}_items")
}
pub(crate) fn lookup(name: &str) -> String {
    format!("{name}_lookup")
}
pub(crate) fn centroids(name: &str, v: u32) -> String {
    format!("{name}_centroids_v{v}")
}
pub(crate) fn vectors(name: &str, v: u32) -> String {
    format!("{name}_vectors_v{v}")
}

/// The lookup tree's key of an item: a hash (where a random probe lands, for uniform samples),
/// then the id.
pub(crate) fn lookup_key(id: &str) -> (u64, String) {
    // FNV-1a 64, then a finaliser: spread, stable across runs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h, id.to_string())
}
