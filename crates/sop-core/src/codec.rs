//! The one place where sop-rs turns values into bytes and back.
//!
//! Everything persisted or cached (nodes, values, store info, log records) goes through these
//! functions, so the wire format is chosen once: serde over bincode 2 with its standard
//! configuration (little-endian, variable-length integers) and a decode limit, so corrupt length
//! prefixes cannot ask for unbounded memory. Structures that live on disk carry a leading format
//! version byte ([`encode_versioned`]), so the format can evolve.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The largest encoded value the decoder accepts: 1 GiB. A corrupt length beyond it is an error
/// rather than an allocation.
pub const DECODE_LIMIT: usize = 1 << 30;

/// The largest encoded key or value a store accepts (a little under [`DECODE_LIMIT`], so the
/// piece holding it, header included, can always be read back). Bigger data belongs in a
/// streaming store, in chunks.
pub const MAX_VALUE_BYTES: u64 = DECODE_LIMIT as u64 - 4096;

type Config = Configuration<LittleEndian, Varint, Limit<DECODE_LIMIT>>;

const fn config() -> Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes `value` into a new buffer.
///
/// # Errors
/// [`UsageError::Encode`](crate::UsageError::Encode) when the value's `Serialize` implementation fails or it exceeds the limit.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `value` to `out`.
///
/// # Errors
/// As [`encode`].
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(|source| {
            Error::Usage(crate::UsageError::Encode {
                what: std::any::type_name::<T>(),
                source: crate::error::CodecError::new(source),
            })
        })
}

/// How many bytes [`encode`] would write for `value`, without writing them (byte vectors and
/// strings in O(1)).
///
/// # Errors
/// As [`encode`].
pub fn encoded_len<T: Serialize + std::any::Any>(value: &T) -> Result<u64> {
    let any = value as &dyn std::any::Any;
    let direct = any
        .downcast_ref::<Vec<u8>>()
        .map(Vec::len)
        .or_else(|| any.downcast_ref::<String>().map(String::len));
    if let Some(n) = direct {
        let mut head = Vec::new();
        put_varint(&mut head, n as u64);
        return Ok((n + head.len()) as u64);
    }
    let mut w = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut w, config()).map_err(|source| {
        Error::Usage(crate::UsageError::Encode {
            what: std::any::type_name::<T>(),
            source: crate::error::CodecError::new(source),
        })
    })?;
    Ok(w.bytes_written as u64)
}

/// As [`encode_into`], faster for byte vectors: serde hands a `Vec<u8>` over one byte at a
/// time (~12 instructions a byte), so a `Vec<u8>` is written here directly, as the same bytes
/// serde would produce (its length as a varint, then the bytes). Node keys and values go
/// through this.
///
/// # Errors
/// As [`encode`].
pub fn encode_into_any<T: Serialize + std::any::Any>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    if let Some(bytes) = (value as &dyn std::any::Any).downcast_ref::<Vec<u8>>() {
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        return Ok(());
    }
    encode_into(value, out)
}

/// As [`decode`], faster for byte vectors (see [`encode_into_any`]); accepts and refuses
/// exactly what [`decode`] does.
///
/// # Errors
/// As [`decode`].
pub fn decode_any<T: DeserializeOwned + std::any::Any>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Vec<u8>>()
        && let Some((len, head)) = get_varint(bytes)
        && usize::try_from(len).is_ok_and(|n| n == bytes.len() - head && n <= DECODE_LIMIT)
    {
        let boxed: Box<dyn std::any::Any> = Box::new(bytes[head..].to_vec());
        if let Ok(v) = boxed.downcast::<T>() {
            return Ok(*v);
        }
    }
    // Anything else (and any malformed input, for serde's own error) the general way.
    decode(bytes, what)
}

/// bincode's variable-length integer (standard configuration).
fn put_varint(out: &mut Vec<u8>, n: u64) {
    if n < 251 {
        out.push(n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(251);
        out.extend_from_slice(&n.to_le_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(252);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// Reads what [`put_varint`] writes, in its shortest form only (any other form goes the general
/// way, so serde decides about it); returns the value and the bytes it took.
fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = bytes.split_first()?;
    match first {
        0..=250 => Some((u64::from(first), 1)),
        251 => {
            let n = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?);
            (n >= 251).then_some((u64::from(n), 3))
        }
        252 => {
            let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
            (n > u32::from(u16::MAX)).then_some((u64::from(n), 5))
        }
        253 => {
            let n = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            (n > u64::from(u32::MAX)).then_some((n, 9))
        }
        _ => None,
    }
}

/// Decodes a `T` that must fill `bytes` exactly; `what` names it in errors.
///
/// # Errors
/// [`CorruptionError::Decode`](crate::CorruptionError::Decode) when the bytes are not a `T`, [`CorruptionError::Damaged`](crate::CorruptionError::Damaged) when bytes are left
/// over after it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    let (value, used) =
        bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|source| {
            Error::Corruption(crate::CorruptionError::Decode {
                what,
                source: crate::error::CodecError::new(source),
            })
        })?;
    if used != bytes.len() {
        return Err(Error::Corruption(crate::CorruptionError::Damaged {
            what,
            location: format!("byte {used}"),
            detail: format!("{} bytes left over after the value", bytes.len() - used),
        }));
    }
    Ok(value)
}

/// Decodes a `T` from the front of `bytes`, returning it and how many bytes it used; for formats
/// that are a sequence of values whose count is known from an earlier one.
///
/// # Errors
/// [`CorruptionError::Decode`](crate::CorruptionError::Decode) when the bytes do not start with a `T`.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|source| {
        Error::Corruption(crate::CorruptionError::Decode {
            what,
            source: crate::error::CodecError::new(source),
        })
    })
}

/// Encodes `value` behind a one-byte format version.
///
/// # Errors
/// As [`encode`].
pub fn encode_versioned<T: Serialize + ?Sized>(version: u8, value: &T) -> Result<Vec<u8>> {
    let mut out = vec![version];
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes what [`encode_versioned`] wrote, refusing any version but `version`.
///
/// # Errors
/// [`CorruptionError::Damaged`](crate::CorruptionError::Damaged) for an empty input or another version; otherwise as [`decode`].
pub fn decode_versioned<T: DeserializeOwned>(
    bytes: &[u8],
    version: u8,
    what: &'static str,
) -> Result<T> {
    match bytes.split_first() {
        None => Err(Error::Corruption(crate::CorruptionError::Damaged {
            what,
            location: "byte 0".into(),
            detail: "empty input".into(),
        })),
        Some((&found, _)) if found != version => {
            Err(Error::Corruption(crate::CorruptionError::Damaged {
                what,
                location: "byte 0".into(),
                detail: format!("format version {found}, this build reads version {version}"),
            }))
        }
        Some((_, body)) => decode(body, what),
    }
}

/// Bytes in front of a sealed payload: version (1), payload length (8), CRC32C of the payload (4).
pub const SEAL_HEADER: usize = 13;

/// Frames `payload` for storage: a format-version byte, its length (u64 LE) and its CRC32C
/// (u32 LE), then the payload. [`unseal`] detects any torn, truncated or flipped byte.
#[must_use]
pub fn seal(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_HEADER + payload.len());
    out.push(version);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Where the sealed frame that starts at `at` in a sequence of frames ends, when its header is
/// there and its length fits in `bytes` (its checksum is [`unseal`]'s business). `None` ends a
/// sequence: a torn or missing last frame.
#[must_use]
pub fn sealed_frame_end(bytes: &[u8], at: usize) -> Option<usize> {
    let len = bytes
        .get(at.checked_add(1)?..at.checked_add(9)?)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|l| usize::try_from(l).ok())?;
    at.checked_add(SEAL_HEADER)?
        .checked_add(len)
        .filter(|e| *e <= bytes.len())
}

/// Checks and strips what [`seal`] added. `location` (a file name, an id) goes into errors.
///
/// # Errors
/// [`CorruptionError::Damaged`](crate::CorruptionError::Damaged) for a short input, another version, a length that does not match, or a
/// checksum mismatch.
pub fn unseal<'a>(
    bytes: &'a [u8],
    version: u8,
    what: &'static str,
    location: &dyn std::fmt::Display,
) -> Result<&'a [u8]> {
    let bad = |detail: String| {
        Error::Corruption(crate::CorruptionError::Damaged {
            what,
            location: location.to_string(),
            detail,
        })
    };
    let (Some(&found), Some(len), Some(crc)) = (
        bytes.first(),
        bytes.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok()),
        bytes.get(9..13).and_then(|b| <[u8; 4]>::try_from(b).ok()),
    ) else {
        return Err(bad(format!(
            "{} bytes, shorter than the {SEAL_HEADER}-byte header",
            bytes.len()
        )));
    };
    if found != version {
        return Err(bad(format!(
            "format version {found}, this build reads version {version}"
        )));
    }
    let payload = &bytes[SEAL_HEADER..];
    let len = u64::from_le_bytes(len);
    if len != payload.len() as u64 {
        return Err(bad(format!(
            "header says {len} bytes, {} follow",
            payload.len()
        )));
    }
    let (want, got) = (u32::from_le_bytes(crc), crc32c::crc32c(payload));
    if want != got {
        return Err(bad(format!("checksum {got:#010x}, expected {want:#010x}")));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    proptest! {
        #[test]
        fn the_byte_vector_fast_path_writes_and_reads_what_serde_does(
            len in prop_oneof![0usize..300, 65_530usize..65_545, 70_000usize..70_010],
            fill in any::<u8>(),
            noise in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let v = vec![fill; len];
            let mut fast = Vec::new();
            encode_into_any(&v, &mut fast).unwrap();
            prop_assert_eq!(&fast, &encode(&v).unwrap());
            prop_assert_eq!(decode_any::<Vec<u8>>(&fast, "v").unwrap(), v);
            // Any bytes at all: the same value or an error, both ways.
            for bytes in [&noise[..], &fast[..fast.len().saturating_sub(1)], &[&fast[..], &noise[..]].concat()[..]] {
                let a = decode_any::<Vec<u8>>(bytes, "v").ok();
                let b = decode::<Vec<u8>>(bytes, "v").ok();
                prop_assert_eq!(a, b);
            }
            // Other types go the general way.
            let mut s = Vec::new();
            encode_into_any(&"text".to_string(), &mut s).unwrap();
            prop_assert_eq!(decode_any::<String>(&s, "s").unwrap(), "text");
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        a: u64,
        b: String,
        c: Vec<i32>,
        d: Option<crate::Uuid>,
    }

    #[test]
    fn round_trip_and_trailing_bytes() {
        let s = Sample {
            a: 7,
            b: "x".into(),
            c: vec![-1, 2],
            d: Some(crate::Uuid::new_v4()),
        };
        let mut bytes = encode(&s).unwrap();
        assert_eq!(decode::<Sample>(&bytes, "sample").unwrap(), s);
        bytes.push(0);
        let err = decode::<Sample>(&bytes, "sample").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Corruption(crate::CorruptionError::Damaged { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn versions_are_checked() {
        let bytes = encode_versioned(3, &5u32).unwrap();
        assert_eq!(decode_versioned::<u32>(&bytes, 3, "n").unwrap(), 5);
        let err = decode_versioned::<u32>(&bytes, 4, "n").unwrap_err();
        assert!(err.to_string().contains("format version 3"), "{err}");
        assert!(decode_versioned::<u32>(&[], 3, "n").is_err());
    }

    #[test]
    fn huge_length_prefix_is_an_error_not_an_allocation() {
        // A string claiming u64::MAX bytes: varint tag 253 then 8 bytes.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<String>(&bytes, "string").is_err());
        assert!(decode::<Vec<u64>>(&bytes, "vec").is_err());
    }

    #[test]
    fn sealed_frames_detect_every_damage() {
        let sealed = seal(2, b"hello world");
        assert_eq!(unseal(&sealed, 2, "t", &"f").unwrap(), b"hello world");
        assert!(unseal(&sealed, 3, "t", &"f").is_err());
        assert!(unseal(&sealed[..sealed.len() - 1], 2, "t", &"f").is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            let err = unseal(&bad, 2, "t", &"file.x").unwrap_err();
            assert!(err.to_string().contains("file.x"), "{err}");
        }
        assert_eq!(unseal(&seal(1, b""), 1, "t", &"f").unwrap(), b"");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Sample>(&bytes, "sample");
            let _ = decode_versioned::<Vec<String>>(&bytes, 1, "strings");
            let _ = unseal(&bytes, 1, "frame", &"here");
        }
    }
}
