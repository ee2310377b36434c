//! Registry blocks: any 4 KiB gives handles or `Corruption`; to reach the handle records behind
//! the checksum, each input is also tried with its version byte and CRC32C made valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_registry::{BLOCK_FORMAT_VERSION, BLOCK_SIZE, formats};

fuzz_target!(|data: &[u8]| {
    let _ = formats::block(data, &"fuzz");
    let mut block = vec![0u8; BLOCK_SIZE];
    let n = data.len().min(BLOCK_SIZE);
    block[..n].copy_from_slice(&data[..n]);
    let _ = formats::block(&block, &"fuzz");
    block[0] = BLOCK_FORMAT_VERSION;
    let crc = crc32c::crc32c(&block[..BLOCK_SIZE - 4]);
    block[BLOCK_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
    let _ = formats::block(&block, &"fuzz");
});
