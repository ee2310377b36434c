//! The 16-byte id used for stores, nodes, items, handles and blobs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A 128-bit id: random (version 4) when generated, ordered by its bytes.
///
/// Ordering is the byte order (big-endian when read as a number), so sorting ids sorts them the
/// way their canonical strings sort. Binary encodings write exactly the 16 bytes; human-readable
/// ones (JSON for the CLI) write the canonical hyphenated string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(uuid::Uuid);

impl Uuid {
    /// The all-zero id, used where "no id" must be written in a fixed-size record.
    pub const NIL: Uuid = Uuid(uuid::Uuid::nil());

    /// A new random (version 4) id.
    #[must_use]
    pub fn new_v4() -> Self {
        Uuid(uuid::Uuid::new_v4())
    }

    /// The id made of these 16 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Uuid(uuid::Uuid::from_bytes(bytes))
    }

    /// The 16 bytes of the id.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Whether this is [`Uuid::NIL`].
    #[must_use]
    pub const fn is_nil(&self) -> bool {
        self.0.is_nil()
    }

    /// The high and low 64 bits, read big-endian: what the registry hashes to find a block and
    /// a slot, so ids spread evenly whatever their version.
    #[must_use]
    pub fn high_low(&self) -> (u64, u64) {
        self.0.as_u64_pair()
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Uuid).map_err(|e| {
            Error::Usage(crate::UsageError::InvalidId {
                input: s.chars().take(64).collect(),
                reason: e.to_string(),
            })
        })
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            // A fixed array is written without a length prefix: 16 bytes exactly.
            self.as_bytes().serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = String::deserialize(deserializer)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 16]>::deserialize(deserializer).map(Uuid::from_bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_and_parse_round_trip() {
        let id = Uuid::new_v4();
        let back: Uuid = id.to_string().parse().unwrap();
        assert_eq!(id, back);
        assert!(!id.is_nil());
        assert!(Uuid::NIL.is_nil());
    }

    #[test]
    fn bad_text_is_a_typed_error() {
        let err = "not-a-uuid".parse::<Uuid>().unwrap_err();
        assert!(
            matches!(err, Error::Usage(crate::UsageError::InvalidId { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("not-a-uuid"));
    }

    #[test]
    fn binary_encoding_is_sixteen_bytes() {
        let id = Uuid::new_v4();
        let bytes = crate::codec::encode(&id).unwrap();
        assert_eq!(bytes.as_slice(), id.as_bytes());
        let back: Uuid = crate::codec::decode(&bytes, "uuid").unwrap();
        assert_eq!(back, id);
    }

    proptest! {
        #[test]
        fn order_is_byte_order(a: [u8; 16], b: [u8; 16]) {
            let (x, y) = (Uuid::from_bytes(a), Uuid::from_bytes(b));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
            let (hi, lo) = x.high_low();
            prop_assert_eq!((u128::from(hi) << 64) | u128::from(lo), u128::from_be_bytes(a));
        }
    }
}
