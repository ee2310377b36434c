//! Vectors: `f32` components stored as one byte string, metrics and their distances.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A vector's components, encoded as little-endian `f32`s in one byte string (no per-element
/// encoding).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vector(pub Vec<f32>);

impl Serialize for Vector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.0.len() * 4);
        for x in &self.0 {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(format!(
                "a vector of {} bytes is not a whole number of f32s",
                bytes.len()
            )));
        }
        Ok(Vector(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }
}

/// How similarity is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Euclidean distance (smaller is closer).
    L2,
    /// Cosine similarity (vectors are normalised when stored; a zero vector is refused).
    Cosine,
    /// Inner product (larger is closer). Not a metric: no distance pruning.
    Dot,
}

/// Euclidean distance.
#[must_use]
pub fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = x - y;
            d * d
        })
        .sum::<f32>()
        .sqrt()
}

/// Inner product.
#[must_use]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean norm.
#[must_use]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}
