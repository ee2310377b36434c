//! Commit records (the payload of a record frame) and the checkpoint record, as found on disk
//! and behind their format byte or a valid sealed frame. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_core::codec::seal;
use sop_txn::{CHECKPOINT_FORMAT_VERSION, CheckpointRecord, CommitRecord, RECORD_FORMAT_VERSION};

fuzz_target!(|data: &[u8]| {
    let _ = CommitRecord::decode(data);
    let mut versioned = vec![RECORD_FORMAT_VERSION];
    versioned.extend_from_slice(data);
    let _ = CommitRecord::decode(&versioned);
    let _ = CheckpointRecord::decode(data, &"fuzz");
    let _ = CheckpointRecord::decode(&seal(CHECKPOINT_FORMAT_VERSION, data), &"fuzz");
});
