//! A fast hasher for the engine's own maps keyed by ids (random 128-bit values: nothing to
//! defend against, and SipHash's cost showed in profiles of commits over big nodes).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash's mixing (rustc's hasher), eight bytes at a time. Not resistant to chosen keys: use
/// it only for ids the engine generates.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`FastHasher`]s.
pub type BuildFast = BuildHasherDefault<FastHasher>;
/// A `HashMap` keyed by engine-generated ids.
pub type IdMap<K, V> = HashMap<K, V, BuildFast>;
/// A `HashSet` of engine-generated ids.
pub type IdSet<K> = HashSet<K, BuildFast>;
