//! Every decoder of on-disk bytes, over arbitrary bytes and over real files of a database with
//! random bytes flipped or cut off: a value or a typed error, never a panic. (The same decoders
//! are fuzzed for longer by the targets in `fuzz/`.)

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use sop_btree::{Node, NodeShape};
use sop_core::codec::seal;
use sop_database::{Database, TxMode};
use sop_registry::{BLOCK_FORMAT_VERSION, BLOCK_SIZE, formats};

use crate::support::two_stores;

/// Every kind of file a database folder holds, one of each at least, read off a real database.
fn real_files() -> &'static Vec<(PathBuf, Vec<u8>)> {
    static FILES: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rt = crate::support::rt();
        rt.block_on(async {
            let db = Database::standalone(dir.path()).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            for i in 0..2 {
                let mut t = db.new_btree::<u32, String>(&tx, &two_stores(i)).unwrap();
                for k in 0..30 {
                    t.add(k, format!("value {k}")).await.unwrap();
                }
            }
            tx.commit().await.unwrap();
            // A checkpoint, so the registry files are written too.
            db.engine().checkpoint().unwrap();
        });
        let mut out = Vec::new();
        collect(dir.path(), dir.path(), &mut out);
        // Registry conf, journal, two tables, two stores, the checkpoint, a log segment.
        assert!(out.len() >= 8, "{out:?}");
        assert!(
            out.iter()
                .any(|(p, _)| p.to_string_lossy().ends_with(".seg"))
        );
        out
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, out);
        } else if p.file_name().is_some_and(|n| n != "sop.lock") {
            out.push((
                p.strip_prefix(root).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
}

/// Runs the decoder that reads `path` on `bytes`; returns whether it accepted them.
fn decode_as(path: &Path, bytes: &[u8]) -> bool {
    let name = path.to_string_lossy();
    if name.ends_with(".reg") {
        let mut ok = true;
        for (i, chunk) in bytes.chunks(BLOCK_SIZE).enumerate() {
            ok &= formats::block(chunk, &format!("{name} block {i}")).is_ok();
        }
        ok
    } else if name.ends_with(".store") {
        formats::store_info(bytes, &name).is_ok()
    } else if name.ends_with("registry.conf") {
        formats::registry_conf(bytes, &name).is_ok()
    } else if name.ends_with("registry.journal") {
        formats::journal(bytes, &name).is_ok()
    } else if name.ends_with(".seg") {
        // A log segment: every frame intact, padding and the rest zeros, every commit record
        // decodes. Data frames hold pieces whose bounds only handles know; the piece decoders
        // run on arbitrary bytes below and in sop-btree's tests.
        match sop_blobstore_ec::parse_segment(bytes) {
            Ok(seg) => {
                seg.clean
                    && seg.frames.iter().all(|(_, h, p)| {
                        h.kind != sop_blobstore_ec::frame::FrameKind::Record
                            || sop_txn::CommitRecord::decode(p).is_ok()
                    })
            }
            Err(_) => false,
        }
    } else if name.ends_with("checkpoint") {
        sop_txn::CheckpointRecord::decode(bytes, &name).is_ok()
    } else {
        sop_core::codec::decode::<u64>(bytes, "x").is_ok()
    }
}

#[test]
fn every_real_file_decodes() {
    for (path, bytes) in real_files() {
        if !bytes.is_empty() {
            assert!(decode_as(path, bytes), "{} does not decode", path.display());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flipped_or_cut_files_give_errors_not_panics(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
        reseal in any::<bool>(),
    ) {
        let files = real_files();
        let (path, original) = &files[pick.index(files.len())];
        let mut bytes = original.clone();
        if bytes.is_empty() {
            return Ok(());
        }
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        let name = path.to_string_lossy();
        let checked = if name.ends_with(".reg") && reseal {
            // Make every block's checksum and version valid so the record decoder runs.
            for block in bytes.chunks_mut(BLOCK_SIZE).filter(|b| b.len() == BLOCK_SIZE) {
                block[0] = BLOCK_FORMAT_VERSION;
                let crc = crc32c::crc32c(&block[..BLOCK_SIZE - 4]);
                block[BLOCK_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
            }
            bytes
        } else if reseal && bytes.len() > 13 && !name.ends_with(".reg") {
            // A valid frame around a damaged payload: the payload decoder runs.
            seal(bytes[0], &bytes[13..])
        } else {
            bytes
        };
        let ok = decode_as(path, &checked);
        // A flipped byte under a checksum is always caught.
        if !reseal && !flips.is_empty() && cut.is_none() && !name.ends_with(".reg") {
            prop_assert!(!ok || checked == *original, "{name}: flipped bytes accepted");
        }
    }

    #[test]
    fn arbitrary_bytes_give_errors_not_panics(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = formats::block(&data, &"x");
        let _ = formats::journal(&data, &"x");
        let _ = formats::journal(&seal(sop_registry::JOURNAL_FORMAT_VERSION, &data), &"x");
        let _ = formats::store_info(&seal(sop_registry::STORE_FORMAT_VERSION, &data), &"x");
        let _ = formats::replication_status(&seal(sop_registry::REPLICATION_FORMAT_VERSION, &data), &"x");
        let _ = formats::replication_delta(&seal(sop_registry::REPLICATION_FORMAT_VERSION, &data), Path::new("x"));
        let _ = sop_txn::CommitRecord::decode(&[&[sop_txn::RECORD_FORMAT_VERSION][..], &data].concat());
        let _ = sop_txn::CheckpointRecord::decode(&seal(sop_txn::CHECKPOINT_FORMAT_VERSION, &data), &"x");
        let _ = sop_blobstore_ec::parse_segment(&data);
        let _ = NodeShape::decode(&[&[sop_btree::NODE_FORMAT_VERSION][..], &data].concat());
        let _ = Node::<String, Vec<u8>>::decode(&[&[sop_btree::NODE_FORMAT_VERSION][..], &data].concat());
        let _ = sop_btree::PieceKind::of(&[&[sop_btree::DELTA_FORMAT_VERSION][..], &data].concat());
    }
}
