//! Transaction logs (a sequence of sealed records, the last possibly torn), raw and as valid
//! frames around arbitrary payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_core::codec::seal;
use sop_txn::{TXLOG_FORMAT_VERSION, txlog_records};

fuzz_target!(|data: &[u8]| {
    let _ = txlog_records(data);
    let mut framed = seal(TXLOG_FORMAT_VERSION, data);
    let _ = txlog_records(&framed);
    // A valid frame followed by the raw bytes: a torn or garbage tail.
    framed.extend_from_slice(data);
    let _ = txlog_records(&framed);
});
