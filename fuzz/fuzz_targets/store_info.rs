//! Store files, `registry.conf` and replication status and delta files, raw and sealed with a
//! valid checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_core::codec::seal;
use sop_registry::{REPLICATION_FORMAT_VERSION, STORE_FORMAT_VERSION, formats};

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz");
    let _ = formats::store_info(data, &"fuzz");
    let _ = formats::store_info(&seal(STORE_FORMAT_VERSION, data), &"fuzz");
    let _ = formats::registry_conf(&seal(1, data), &"fuzz");
    let _ = formats::replication_status(data, &"fuzz");
    let sealed = seal(REPLICATION_FORMAT_VERSION, data);
    let _ = formats::replication_status(&sealed, &"fuzz");
    let _ = formats::replication_delta(data, path);
    let mut two = sealed.clone();
    two.extend_from_slice(&sealed);
    let _ = formats::replication_delta(&two, path);
});
