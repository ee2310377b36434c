//! The erasure-coding file layer reading drives' copies of a file made of arbitrary bytes (and
//! of valid records with some damaged): reads and scrubs give bytes or an error, never a panic.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sop_blobstore_ec::{EcFs, ErasureConfig};
use sop_core::vfs::{FileSystem, SimFs};

fuzz_target!(|data: &[u8]| {
    let root = Path::new("/fuzz");
    let sim = SimFs::new(root);
    let cfg = ErasureConfig {
        data_shards: 2,
        parity_shards: 1,
        drives: (0..3).map(|i| root.join(format!("d{i}"))).collect(),
        repair: true,
    };
    let Ok(ec) = EcFs::new(Arc::new(sim.clone()), &cfg) else {
        return;
    };
    let _ = ec.create_dir_all(Path::new("f"));
    // Valid records of the input's first half, then the second half written raw over one
    // drive's copy.
    let (good, bad) = data.split_at(data.len() / 2);
    if let Ok(f) = ec.open(Path::new("f/x"), true) {
        let _ = f.write_at(good, 0);
    }
    if let Some((&d, rest)) = bad.split_first()
        && let Ok(raw) = sim.open(&root.join(format!("d{}/f/x", d % 3)), true)
    {
        let at = rest.first().map_or(0, |b| u64::from(*b) * 64);
        let _ = raw.write_at(rest, at);
    }
    if let Ok(f) = ec.open(Path::new("f/x"), false) {
        let mut buf = vec![0u8; good.len().min(1 << 16)];
        let _ = f.read_at(&mut buf, 0);
    }
    let _ = ec.scrub_file(Path::new("f/x"), true);
});
