//! The segment log: pieces read back, records replayed in order across segments, group commit,
//! torn tails, damage reported with file and offset, and sync failures fenced off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use sop_blobstore_ec::{LogOptions, SegmentLog};
use sop_core::vfs::{Fault, FaultyFs, FileSystem, Op, SimFs, StdFs};

fn small() -> LogOptions {
    LogOptions {
        segment_bytes: 8 << 10,
        prealloc_bytes: 4 << 10,
        ..LogOptions::default()
    }
}

fn record(i: u32) -> Vec<u8> {
    format!("record {i} ")
        .repeat(1 + (i as usize % 7))
        .into_bytes()
}

fn replayed(fs: &Arc<dyn FileSystem>, dir: &Path, opts: LogOptions) -> Vec<Vec<u8>> {
    let (_log, replay) = SegmentLog::open(Arc::clone(fs), dir, opts, None).unwrap();
    assert!(replay.damage.is_none(), "{:?}", replay.damage);
    replay.records.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn pieces_read_back_and_records_replay_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let mut want = Vec::new();
    let mut locs = Vec::new();
    {
        let (log, replay) = SegmentLog::open(Arc::clone(&fs), dir.path(), small(), None).unwrap();
        assert!(replay.records.is_empty());
        for i in 0..200u32 {
            let piece = vec![u8::try_from(i % 251).unwrap(); 100 + i as usize];
            let (l, _) = log.append_pieces(&[&piece, b"second"]).unwrap();
            locs.push((l, piece));
            let lsn = log.append_record(&record(i)).unwrap();
            want.push(record(i));
            log.wait_durable_blocking(lsn).unwrap();
        }
        assert!(log.segments().unwrap().len() > 5, "rolled over segments");
        for (l, piece) in &locs {
            assert_eq!(&log.read(l[0]).unwrap(), piece);
            assert_eq!(log.read(l[1]).unwrap(), b"second");
        }
    }
    assert_eq!(replayed(&fs, dir.path(), small()), want);
    // Appending goes on after the replayed end.
    {
        let (log, _) = SegmentLog::open(Arc::clone(&fs), dir.path(), small(), None).unwrap();
        let lsn = log.append_record(b"after").unwrap();
        log.wait_durable_blocking(lsn).unwrap();
        for (l, piece) in &locs {
            assert_eq!(&log.read(l[0]).unwrap(), piece);
        }
    }
    want.push(b"after".to_vec());
    assert_eq!(replayed(&fs, dir.path(), small()), want);
}

#[test]
fn a_replay_starts_where_a_checkpoint_says() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let from = {
        let (log, _) = SegmentLog::open(Arc::clone(&fs), dir.path(), small(), None).unwrap();
        for i in 0..50 {
            log.append_record(&record(i)).unwrap();
        }
        log.flush().unwrap();
        let (_, pos) = log.durable();
        for i in 50..60 {
            log.append_record(&record(i)).unwrap();
        }
        log.flush().unwrap();
        pos
    };
    let (_log, replay) = SegmentLog::open(fs, dir.path(), small(), Some(from)).unwrap();
    let got: Vec<Vec<u8>> = replay.records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(got, (50..60).map(record).collect::<Vec<_>>());
}

#[test]
fn concurrent_committers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let (log, _) = SegmentLog::open(fs, dir.path(), LogOptions::default(), None).unwrap();
    let log = Arc::new(log);
    let before = log.group_syncs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let lsn = log.append_record(&record(t * 100 + i)).unwrap();
                    log.wait_durable(lsn).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let syncs = log.group_syncs() - before;
    assert!(syncs < 200, "200 commits took {syncs} syncs: no grouping");
    eprintln!("200 commits from 8 tasks: {syncs} syncs");
}

#[test]
fn power_loss_keeps_exactly_the_synced_prefix() {
    let root = Path::new("/db");
    let sim = SimFs::new(root);
    let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
    let dir = root.join("log");
    let synced = {
        let (log, _) = SegmentLog::open(Arc::clone(&fs), &dir, small(), None).unwrap();
        // Across several rolls, none of them waited for.
        for i in 0..400 {
            log.append_record(&record(i)).unwrap();
        }
        log.flush().unwrap();
        for i in 400..405 {
            log.append_record(&record(i)).unwrap();
        }
        400
    };
    let strict: Arc<dyn FileSystem> = Arc::new(sim.crash_image());
    let got = replayed(&strict, &dir, small());
    assert_eq!(got, (0..synced).map(record).collect::<Vec<_>>());
    // Torn variants: any prefix of the unsynced records, never a gap.
    for seed in 0..20 {
        let img: Arc<dyn FileSystem> = Arc::new(sim.crash_image_mixed(seed));
        let (_log, replay) = SegmentLog::open(img, &dir, small(), None).unwrap();
        let got: Vec<Vec<u8>> = replay.records.into_iter().map(|(_, r)| r).collect();
        assert!(
            got.len() >= synced as usize,
            "seed {seed}: lost a synced record"
        );
        assert_eq!(got, (0..got.len() as u32).map(record).collect::<Vec<_>>());
    }
}

#[test]
fn a_damaged_record_loses_it_and_what_follows_says_where_and_fences_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let mut at = Vec::new();
    {
        let (log, _) =
            SegmentLog::open(Arc::clone(&fs), dir.path(), LogOptions::default(), None).unwrap();
        for i in 0..30 {
            log.append_record(&record(i)).unwrap();
            at.push(log.durable());
            log.flush().unwrap();
        }
    }
    // Flip a byte inside record 20's payload.
    let seg = dir.path().join(sop_blobstore_ec::segment_name(1));
    let mut bytes = std::fs::read(&seg).unwrap();
    let (_, pos) = {
        let (log, _) =
            SegmentLog::open(Arc::clone(&fs), dir.path(), LogOptions::default(), None).unwrap();
        drop(log);
        at[20]
    };
    let _ = pos;
    let needle = record(20);
    let hit = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap();
    bytes[hit + 3] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();

    let (log, replay) =
        SegmentLog::open(Arc::clone(&fs), dir.path(), LogOptions::default(), None).unwrap();
    let got: Vec<Vec<u8>> = replay.records.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(
        got,
        (0..20).map(record).collect::<Vec<_>>(),
        "the records before it survive"
    );
    let damage = replay.damage.expect("damage is reported");
    assert_eq!(damage.file, seg);
    assert!(
        damage.offset > 0 && damage.detail.contains("frames follow"),
        "{damage:?}"
    );
    // New records go after a fence, never over the damaged part.
    let lsn = log.append_record(b"new").unwrap();
    log.wait_durable_blocking(lsn).unwrap();
    drop(log);
    let (_log, replay) =
        SegmentLog::open(Arc::clone(&fs), dir.path(), LogOptions::default(), None).unwrap();
    assert!(
        replay.damage.is_none(),
        "reported once: {:?}",
        replay.damage
    );
    let got: Vec<Vec<u8>> = replay.records.into_iter().map(|(_, r)| r).collect();
    let mut want: Vec<Vec<u8>> = (0..20).map(record).collect();
    want.push(b"new".to_vec());
    assert_eq!(got, want);
}

#[test]
fn a_failed_sync_voids_the_unsynced_commits_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyFs::new(Arc::new(StdFs::new())));
    let fs: Arc<dyn FileSystem> = faulty.clone();
    {
        let (log, _) = SegmentLog::open(Arc::clone(&fs), dir.path(), small(), None).unwrap();
        let a = log.append_record(b"a").unwrap();
        log.wait_durable_blocking(a).unwrap();
        let b = log.append_record(b"b").unwrap();
        faulty.inject(Fault {
            prefix: None,
            op: Some(Op::Sync),
            errno: 5,
            skip: 0,
            times: Some(1),
        });
        assert!(log.wait_durable_blocking(b).is_err(), "b's sync failed");
        let (fences, voids) = log.voids();
        assert_eq!((fences, voids), (1, vec![(b, b)]));
        let c = log.append_record(b"c").unwrap();
        log.wait_durable_blocking(c).unwrap();
    }
    // b was written (the page cache has it) but is never replayed.
    assert_eq!(
        replayed(&fs, dir.path(), small()),
        vec![b"a".to_vec(), b"c".to_vec()]
    );
}

#[test]
fn a_piece_that_was_damaged_is_corruption_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let (log, _) = SegmentLog::open(fs, dir.path(), LogOptions::default(), None).unwrap();
    let (locs, lsn) = log.append_pieces(&[b"hello world"]).unwrap();
    log.wait_durable_blocking(lsn).unwrap();
    let seg = log.path_of(locs[0].segment);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[locs[0].offset as usize] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let e = log.read(locs[0]).unwrap_err().to_string();
    assert!(
        e.contains(&seg.display().to_string()) && e.contains("checksum"),
        "{e}"
    );
    std::fs::remove_file(&seg).unwrap();
    let (log2, _) = (log, ());
    let e = log2
        .read(sop_core::Loc {
            segment: 7,
            ..locs[0]
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
}

fn big_record(i: u32) -> Vec<u8> {
    record(i).repeat(5)
}

/// One record per commit, each waited for, across many rolls onto spare segments.
fn commit_records(log: &SegmentLog, n: u32) -> u32 {
    let mut acknowledged = 0;
    for i in 0..n {
        let Ok(lsn) = log.append_record(&big_record(i)) else {
            break;
        };
        if log.wait_durable_blocking(lsn).is_err() {
            break;
        }
        acknowledged = i + 1;
    }
    acknowledged
}

#[test]
fn a_roll_onto_the_spare_segment_syncs_nothing_on_the_appending_thread() {
    let root = Path::new("/db");
    let sim = SimFs::new(root);
    let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
    let dir = root.join("log");
    let (log, _) = SegmentLog::open(Arc::clone(&fs), &dir, small(), None).unwrap();
    let mut rolls_without_sync = 0;
    for i in 0..2000 {
        let seg = log.current_segment();
        let before = sim.syncs();
        let lsn = log.append_record(&record(i)).unwrap();
        if log.current_segment() != seg && sim.syncs() == before {
            rolls_without_sync += 1;
        }
        log.wait_durable_blocking(lsn).unwrap();
    }
    let segments = log.segments().unwrap().len();
    assert!(segments > 10, "{segments} segments");
    // The first roll comes before any spare could be made.
    assert!(
        rolls_without_sync + 1 >= segments - 1,
        "only {rolls_without_sync} of {} rolls were free of syncs",
        segments - 1
    );
    assert!(fs.exists(&dir.join("next.spare")).unwrap());
    drop(log);
    assert!(
        !fs.exists(&dir.join("next.spare")).unwrap(),
        "the spare outlived its log"
    );
    assert_eq!(
        replayed(&fs, &dir, small()),
        (0..2000).map(record).collect::<Vec<_>>()
    );
}

#[test]
fn power_loss_at_every_sync_point_across_spare_rolls_keeps_every_acknowledged_record() {
    let root = Path::new("/db");
    let dir = root.join("log");
    const N: u32 = 150;
    let mut point = 1;
    let mut rolls = 0;
    loop {
        let sim = SimFs::new(root);
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        sim.crash_at_sync(point);
        let acknowledged = {
            let Ok((log, _)) = SegmentLog::open(Arc::clone(&fs), &dir, small(), None) else {
                point += 1;
                continue;
            };
            let acknowledged = commit_records(&log, N);
            rolls = rolls.max(log.current_segment() - 1);
            acknowledged
        };
        let crashed = sim.crashed();
        let images: Vec<Arc<dyn FileSystem>> = std::iter::once(sim.crash_image())
            .chain((0..4).map(|s| sim.crash_image_mixed(s)))
            .map(|i| Arc::new(i) as Arc<dyn FileSystem>)
            .collect();
        for (k, img) in images.into_iter().enumerate() {
            let (log, replay) = SegmentLog::open(Arc::clone(&img), &dir, small(), None).unwrap();
            assert!(
                replay.damage.is_none(),
                "point {point} image {k}: {:?}",
                replay.damage
            );
            let got: Vec<Vec<u8>> = replay.records.into_iter().map(|(_, r)| r).collect();
            assert!(
                got.len() >= acknowledged as usize,
                "point {point} image {k}: {} of {acknowledged} acknowledged records",
                got.len()
            );
            assert_eq!(
                got,
                (0..got.len() as u32).map(big_record).collect::<Vec<_>>()
            );
            // And the log goes on from there.
            let lsn = log.append_record(b"after").unwrap();
            log.wait_durable_blocking(lsn).unwrap();
        }
        if !crashed {
            eprintln!(
                "spare rolls: {} sync points across {rolls} rolls, each cut with 5 images",
                point - 1
            );
            assert!(rolls >= 4, "only {rolls} rolls");
            break;
        }
        point += 1;
    }
}
