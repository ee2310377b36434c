//! Blob files: plain sealed frames and erasure-coded shard files (raw, and with the header
//! checksum made valid so the length and shard checks run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_blobstore_ec::{SHARD_HEADER_LEN, check_plain_blob, check_shard_file};
use sop_core::codec::{seal, unseal};

fuzz_target!(|data: &[u8]| {
    let _ = check_plain_blob(data, &"fuzz");
    let _ = unseal(data, 1, "fuzz", &"fuzz");
    let _ = check_shard_file(data);
    if data.len() >= SHARD_HEADER_LEN {
        let mut file = data.to_vec();
        let crc = crc32c::crc32c(&file[..20]);
        file[20..24].copy_from_slice(&crc.to_le_bytes());
        let _ = check_shard_file(&file);
    }
    let _ = check_plain_blob(&seal(1, data), &"fuzz");
});
