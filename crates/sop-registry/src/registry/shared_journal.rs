//! The journal of one registry in shared mode (`journals/<slot>.journal`):
//!
//! ```text
//! 0    8   offset of the last frame, u64 LE (0: none): read by other processes, which check
//!          only the last batch of a live registry's journal (every earlier one is applied)
//! 8    8   where the next frame goes, u64 LE (16 when empty)
//! 16   ..  sealed frames (version 1, codec Vec<JournalEntry>) back to back, each written with
//!          13 zero bytes after it (an empty frame header: replay stops there, so bytes of
//!          older, longer journals after it are never read)
//! ```
//!
//! The file is never cut: a size change would make every sync also write the file's metadata,
//! and a cut frees blocks. It is "emptied" by writing the header and a zero frame header at 16.
//! Batches stay in it after being applied, until their blocks are synced (a checkpoint: when
//! it passes `CHECKPOINT_BYTES`, at once for a batch that changes small files, and when the
//! registry closes), so a commit costs one journal sync, not one per registry file.

use std::path::Path;

use sop_core::vfs::{FileHandle, FileSystem};
use sop_core::{Error, Result};

/// Where frames start.
pub(super) const HEAD: u64 = 16;
/// An empty frame header.
const TERM: [u8; 13] = [0u8; 13];
/// A shared journal is checkpointed once it holds this many bytes.
pub(super) const CHECKPOINT_BYTES: u64 = 256 << 10;

/// Appends `frame` at `end` (the next free offset) and syncs (data only): the batch's commit
/// point. Returns the new end.
pub(super) fn append(file: &dyn FileHandle, end: u64, frame: &[u8]) -> std::io::Result<u64> {
    let at = end.max(HEAD);
    let mut buf = Vec::with_capacity(frame.len() + TERM.len());
    buf.extend_from_slice(frame);
    buf.extend_from_slice(&TERM);
    file.write_at(&buf, at)?;
    let new_end = at + frame.len() as u64;
    file.write_at(&header(at, new_end), 0)?;
    file.sync_data()?;
    Ok(new_end)
}

/// Cuts the journal back to `end` (a frame whose write or sync failed), synced.
pub(super) fn cut(file: &dyn FileHandle, end: u64) -> std::io::Result<()> {
    let end = end.max(HEAD);
    file.write_at(&TERM, end)?;
    file.write_at(&header(0, end), 0)?;
    file.sync_data()
}

/// Empties the journal; synced when `sync` (a batch with file changes: a replay after a power
/// loss must not put an older file back over a newer one).
pub(super) fn mark_empty(file: &dyn FileHandle, sync: bool) -> std::io::Result<()> {
    file.write_at(&TERM, HEAD)?;
    file.write_at(&header(0, HEAD), 0)?;
    if sync { file.sync_data() } else { Ok(()) }
}

fn header(last: u64, end: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&last.to_le_bytes());
    h[8..].copy_from_slice(&end.to_le_bytes());
    h
}

fn open(fs: &dyn FileSystem, path: &Path) -> Result<Option<Box<dyn FileHandle>>> {
    match fs.open(path, false) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("open", path)(e)),
    }
}

/// Where another registry's last frame is and its checksum, as its header and the frame's own
/// header say: `(offset, end, payload CRC32C)`, `None` when it holds no frame.
pub(super) fn last_frame_id(file: &dyn FileHandle, path: &Path) -> Result<Option<(u64, u64, u32)>> {
    let mut h = [0u8; 16];
    if file.read_at(&mut h, 0).map_err(Error::io("read", path))? < 16 {
        return Ok(None);
    }
    let last = u64::from_le_bytes(h[..8].try_into().unwrap_or([0; 8]));
    let end = u64::from_le_bytes(h[8..].try_into().unwrap_or([0; 8]));
    if last < HEAD || end <= last || end - last > 1 << 30 {
        return Ok(None);
    }
    let mut f = [0u8; 13];
    if file
        .read_at(&mut f, last)
        .map_err(Error::io("read", path))?
        < 13
    {
        return Ok(None);
    }
    Ok(Some((
        last,
        end,
        u32::from_le_bytes(f[9..13].try_into().unwrap_or([0; 4])),
    )))
}

/// The bytes of a frame at `[last, end)`.
pub(super) fn frame_at(file: &dyn FileHandle, path: &Path, last: u64, end: u64) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; usize::try_from(end - last).unwrap_or(0)];
    let n = file
        .read_at(&mut bytes, last)
        .map_err(Error::io("read", path))?;
    bytes.truncate(n);
    Ok(bytes)
}

/// Whether a journal holds a frame (its first frame header is not zeros).
pub(super) fn holds_frames(fs: &dyn FileSystem, path: &Path) -> Result<bool> {
    let Some(file) = open(fs, path)? else {
        return Ok(false);
    };
    let mut first = [0u8; 13];
    let n = file
        .read_at(&mut first, HEAD)
        .map_err(Error::io("read", path))?;
    Ok(n == first.len() && first != TERM)
}

/// Every frame of a journal, from offset 16 (the header is not trusted: after a power loss it
/// may be older than the frames), `None` when it holds none.
pub(super) fn all_frames(fs: &dyn FileSystem, path: &Path) -> Result<Option<Vec<u8>>> {
    let Some(file) = open(fs, path)? else {
        return Ok(None);
    };
    let mut first = [0u8; 13];
    let n = file
        .read_at(&mut first, HEAD)
        .map_err(Error::io("read", path))?;
    if n < first.len() || first == TERM {
        return Ok(None);
    }
    let size = file.size().map_err(Error::io("stat", path))?;
    let mut bytes = vec![0u8; usize::try_from(size.saturating_sub(HEAD)).unwrap_or(0)];
    let n = file
        .read_at(&mut bytes, HEAD)
        .map_err(Error::io("read", path))?;
    bytes.truncate(n);
    Ok(Some(bytes))
}
