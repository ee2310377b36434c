//! Log segments as found on disk: the segment header, frame headers, and a whole segment read
//! the way a replay reads it; also frames behind a valid segment header and valid frame
//! checksums, so the fuzzer reaches the frame sequence rules. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_blobstore_ec::frame::{FrameHeader, FrameKind, build};
use sop_blobstore_ec::{SegmentHeader, parse_segment};

fuzz_target!(|data: &[u8]| {
    let _ = FrameHeader::decode(data);
    let _ = SegmentHeader::decode(data);
    let _ = parse_segment(data);
    // A valid header for segment 1 (alignment 8), then the input cut into frames with valid
    // checksums: kinds, LSNs and lengths from the input's own bytes.
    let mut seg = Vec::new();
    let mut payload = [0u8; 29];
    payload[0] = 1;
    payload[4] = 8;
    if let Ok(h) = build(FrameKind::SegmentHeader, 1, &[&payload], 8) {
        seg.extend_from_slice(&h);
    }
    let mut rest = data;
    let mut lsn = 2u64;
    while let Some((&first, tail)) = rest.split_first() {
        let len = usize::from(first).min(tail.len());
        let (body, next) = tail.split_at(len);
        let kind = match first % 3 {
            0 => FrameKind::Data,
            1 => FrameKind::Record,
            _ => FrameKind::SegmentHeader,
        };
        if let Ok(f) = build(kind, lsn + u64::from(first % 5 == 4), &[body], 8) {
            seg.extend_from_slice(&f);
        }
        lsn += 1;
        rest = next;
    }
    let _ = parse_segment(&seg);
});
