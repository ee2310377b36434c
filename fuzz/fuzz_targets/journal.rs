//! The registry's redo journal, raw and sealed with a valid checksum (so the entry decoder and
//! its checks run on arbitrary payloads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_core::codec::seal;
use sop_registry::{JOURNAL_FORMAT_VERSION, formats};

fuzz_target!(|data: &[u8]| {
    let _ = formats::journal(data, &"fuzz");
    let _ = formats::journal(&seal(JOURNAL_FORMAT_VERSION, data), &"fuzz");
});
