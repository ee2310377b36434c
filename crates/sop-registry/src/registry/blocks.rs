//! Handles in segment files of 4 KiB blocks: the cache of open segment files, reading and
//! checking blocks, finding a handle's slot, and placing new handles along a block's chain.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use sop_core::vfs::FileHandle;
use sop_core::{Error, Handle, Result, Uuid, validate_store_name};

use super::{MAX_SEGMENTS, Registry, TABLES_DIR};
use crate::record::{BLOCK_SIZE, Block};

/// At most this many registry segment files are kept open.
const OPEN_FILES: usize = 64;

pub(super) type BlockKey = (String, u32, u64);

impl Registry {
    pub(super) fn table_dir(&self, table: &str) -> PathBuf {
        self.base.join(TABLES_DIR).join(table)
    }

    pub(super) fn segment_path(&self, table: &str, segment: u32) -> PathBuf {
        self.table_dir(table).join(format!("{table}-{segment}.reg"))
    }

    pub(super) fn block_of(&self, id: Uuid) -> u64 {
        id.high_low().0 % u64::from(self.hash_mod)
    }

    /// The segment's open file, or `None` when the segment does not exist.
    pub(super) fn file(
        &self,
        table: &str,
        segment: u32,
        create: bool,
    ) -> Result<Option<Arc<dyn FileHandle>>> {
        let key = (table.to_string(), segment);
        if let Some(f) = self.files.read().get(&key) {
            return Ok(Some(Arc::clone(f)));
        }
        let path = self.segment_path(table, segment);
        let file: Arc<dyn FileHandle> = match self.fs.open(&path, create) {
            Ok(f) => Arc::from(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Storage(sop_core::StorageError::Io {
                    op: "open",
                    path,
                    source: e,
                }));
            }
        };
        let size = u64::from(self.hash_mod) * BLOCK_SIZE as u64;
        // Shared: a file shorter than its blocks is being made by another process, which
        // finishes it under the lock below; nothing writes a block into it before that.
        let have = if create || self.shared.is_some() {
            file.size().map_err(Error::io("stat", &path))?
        } else {
            size
        };
        if have < size && self.shared.is_some() {
            // Shared: zeros written, not a sparse file, so that a block's first write
            // allocates nothing and its sync waits for no metadata (every process syncs
            // this file). Only the missing end: another process may be writing blocks.
            // One process at a time, from where the last one stopped; no block is written
            // into the file before it is whole, so zeros never land on one. Whoever holds this
            // lock takes no other, so it joins no wait cycle.
            // In this process too: its threads share one lock description, on which the lock
            // below would be granted to two of them at once.
            let _here = self.extending.lock();
            let _extending = match &self.shared {
                Some(sh) => Some(sh.locks.lock_keys(&[super::locks::file_key(&format!(
                    "{table}-{segment}.reg (extending)"
                ))])?),
                None => None,
            };
            let zeros = vec![0u8; 64 << 10];
            let mut at = file.size().map_err(Error::io("stat", &path))?;
            while at < size {
                let n = usize::try_from((size - at).min(zeros.len() as u64)).unwrap_or(0);
                file.write_at(&zeros[..n], at)
                    .map_err(Error::io("extend", &path))?;
                at += n as u64;
            }
        } else if have < size {
            file.set_len(size).map_err(Error::io("extend", &path))?;
        }
        let mut files = self.files.write();
        if files.len() >= OPEN_FILES {
            // Bounded: thousands of stores never hold a descriptor each.
            files.clear();
        }
        files.insert(key, Arc::clone(&file));
        Ok(Some(file))
    }

    /// Reads and checks a block; `None` when its segment does not exist.
    fn read_block(&self, table: &str, segment: u32, block: u64) -> Result<Option<Block>> {
        let offset = block * BLOCK_SIZE as u64;
        match self.read_block_raw(table, segment, block)? {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(detail)) => Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "registry block",
                location: format!(
                    "{} offset {offset}",
                    self.segment_path(table, segment).display()
                ),
                detail,
            })),
        }
    }

    /// Reads a block: `None` when its segment does not exist, else the block or what is wrong
    /// with it. (In shared mode the caller holds the block's lock, shared or alone, so no
    /// other process is writing it.)
    pub(super) fn read_block_raw(
        &self,
        table: &str,
        segment: u32,
        block: u64,
    ) -> Result<Option<std::result::Result<Block, String>>> {
        let Some(file) = self.file(table, segment, false)? else {
            return Ok(None);
        };
        let mut buf = [0u8; BLOCK_SIZE];
        let offset = block * BLOCK_SIZE as u64;
        // A short read is the unwritten (sparse) end of a segment: zeros.
        {
            let _shared = self.blocks.read();
            file.read_at(&mut buf, offset).map_err(|e| {
                Error::Storage(sop_core::StorageError::Io {
                    op: "read",
                    path: self.segment_path(table, segment),
                    source: e,
                })
            })?;
        }
        Ok(Some(Block::decode(&buf)))
    }

    /// Finds the handle's block and slot, looking in `working` before the disk.
    pub(super) fn locate(
        &self,
        working: &mut BTreeMap<BlockKey, Block>,
        table: &str,
        id: Uuid,
    ) -> Result<Option<(u32, usize)>> {
        let block = self.block_of(id);
        for segment in 1..=MAX_SEGMENTS {
            let Some(b) = self.load(working, table, segment, block)? else {
                return Ok(None);
            };
            if let Some(slot) = b.find(id) {
                return Ok(Some((segment, slot)));
            }
            if !b.overflow {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// A block from `working`, else from disk into `working`; `None` when its segment is absent.
    pub(super) fn load<'w>(
        &self,
        working: &'w mut BTreeMap<BlockKey, Block>,
        table: &str,
        segment: u32,
        block: u64,
    ) -> Result<Option<&'w mut Block>> {
        let key = (table.to_string(), segment, block);
        if !working.contains_key(&key) {
            let Some(b) = self.read_block(table, segment, block)? else {
                return Ok(None);
            };
            working.insert(key.clone(), b);
        }
        Ok(working.get_mut(&key))
    }

    /// The handles of `ids` in `table` that exist, keyed by logical id.
    ///
    /// # Errors
    /// Corruption and I/O errors.
    pub fn get(&self, table: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Handle>> {
        self.check_failed()?;
        validate_store_name(table)?;
        let mut seen = BTreeMap::new();
        let mut out = HashMap::with_capacity(ids.len());
        for &id in ids {
            if let Some((segment, slot)) =
                self.reading(table, id, || self.locate(&mut seen, table, id))?
            {
                let key = (table.to_string(), segment, self.block_of(id));
                if let Some(Some(h)) = seen.get(&key).and_then(|b| b.slots.get(slot)) {
                    out.insert(id, *h);
                }
            }
        }
        Ok(out)
    }

    /// The handle of `id` in `table`, if any.
    ///
    /// # Errors
    /// Corruption and I/O errors.
    pub fn get_one(&self, table: &str, id: Uuid) -> Result<Option<Handle>> {
        Ok(self.get(table, &[id])?.remove(&id))
    }

    pub(super) fn set_slot(
        &self,
        working: &mut BTreeMap<BlockKey, Block>,
        table: &str,
        segment: u32,
        block: u64,
        slot: usize,
        value: Option<Handle>,
    ) -> Result<()> {
        if let Some(Some(b)) = self
            .load(working, table, segment, block)?
            .map(|b| b.slots.get_mut(slot))
        {
            *b = value;
        }
        Ok(())
    }

    /// Puts a new handle in the first block of its chain with room, marking full blocks as
    /// overflowing and starting a new segment when every existing one is full there.
    pub(super) fn place(
        &self,
        working: &mut BTreeMap<BlockKey, Block>,
        dirty: &mut BTreeSet<BlockKey>,
        table: &str,
        block: u64,
        h: Handle,
    ) -> Result<()> {
        for segment in 1..=MAX_SEGMENTS {
            let key = (table.to_string(), segment, block);
            if self.load(working, table, segment, block)?.is_none() {
                working.insert(key.clone(), Block::empty());
            }
            let Some(b) = working.get_mut(&key) else {
                continue;
            };
            dirty.insert(key);
            if let Some(slot) = b.free_slot(h.logical_id) {
                b.slots[slot] = Some(h);
                return Ok(());
            }
            b.overflow = true;
        }
        Err(Error::Usage(sop_core::UsageError::InvalidConfig {
            what: "registry",
            reason: format!(
                "table {table:?} needs more than {MAX_SEGMENTS} segments at block {block}; create the database with a larger hash mod"
            ),
        }))
    }

    /// The segment file a block image goes to, created (with its folder) when new.
    pub(super) fn segment_for(
        &self,
        table: &str,
        segment: u32,
        image: &[u8],
        new_dirs: &mut BTreeSet<PathBuf>,
    ) -> Result<Arc<dyn FileHandle>> {
        validate_store_name(table)?;
        let path = self.segment_path(table, segment);
        if image.len() != BLOCK_SIZE {
            return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "registry journal",
                location: path.display().to_string(),
                detail: format!("a block image of {} bytes", image.len()),
            }));
        }
        let file = match self.file(table, segment, false)? {
            Some(f) => f,
            None => {
                let dir = self.table_dir(table);
                if !self.fs.exists(&dir).map_err(Error::io("stat", &dir))? {
                    self.fs
                        .create_dir_all(&dir)
                        .map_err(Error::io("create folder", &dir))?;
                    new_dirs.insert(self.base.join(TABLES_DIR));
                    new_dirs.insert(self.base.clone());
                }
                new_dirs.insert(dir);
                self.file(table, segment, true)?.ok_or_else(|| {
                    Error::Storage(sop_core::StorageError::Io {
                        op: "create",
                        path: path.clone(),
                        source: std::io::ErrorKind::NotFound.into(),
                    })
                })?
            }
        };
        Ok(file)
    }
}
