//! Several processes on one registry (clustered mode): the generation they share, and the OS
//! lock held while a batch is written.

use sop_core::vfs::FileHandle;
use sop_core::{Error, Result};

use super::Registry;

/// How long a reader waits for another process to finish applying a batch.
pub(super) const SHARED_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Registry {
    /// A number that changes whenever committed handles change (a batch applied, a table
    /// removed): bumped when a batch's blocks become visible and again after its files are
    /// replaced. A reader that saw the same generation before and after its reads saw one state.
    #[must_use]
    pub fn generation(&self) -> u64 {
        let Some(f) = &self.shared_gen else {
            return self.generation.load(std::sync::atomic::Ordering::Acquire);
        };
        let start = std::time::Instant::now();
        loop {
            let g = read_gen(f.as_ref());
            // Odd: another process is applying a batch; wait for it (a dead one is finished by
            // the next writer, so this wait is bounded).
            if g.is_multiple_of(2) || start.elapsed() > SHARED_APPLY_WAIT {
                return g;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// The shared generation (0 when the file is short or unreadable).
pub(super) fn read_gen(f: &dyn FileHandle) -> u64 {
    let mut b = [0u8; 8];
    match f.read_at(&mut b, 0) {
        Ok(8) => u64::from_le_bytes(b),
        _ => 0,
    }
}

/// Holds the OS lock of a shared registry for one batch.
pub(super) struct OsLockGuard<'a>(Option<&'a std::fs::File>);

impl<'a> OsLockGuard<'a> {
    pub(super) fn take(file: Option<&'a std::fs::File>) -> Result<Self> {
        if let Some(f) = file {
            f.lock().map_err(|e| {
                Error::Storage(sop_core::StorageError::Io {
                    op: "lock",
                    path: std::path::PathBuf::from("registry.lock"),
                    source: e,
                })
            })?;
        }
        Ok(OsLockGuard(file))
    }
}

impl Drop for OsLockGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0 {
            let _ = f.unlock();
        }
    }
}
