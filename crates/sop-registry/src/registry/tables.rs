//! Whole tables: listing them, scanning every block of one (for verification), removing one.

use sop_core::vfs::remove_dir_all_if_present;
use sop_core::{Error, Handle, Result, validate_store_name};

use super::{MAX_SEGMENTS, Registry, TABLES_DIR};
use crate::record::BLOCK_SIZE;

/// What [`Registry::scan_table`] found.
#[derive(Clone, Debug, Default)]
pub struct TableScan {
    /// Segment files read.
    pub segments: u32,
    /// Every handle in the intact blocks.
    pub handles: Vec<Handle>,
    /// The blocks that failed their checks, each with file, offset and what is wrong.
    pub bad_blocks: Vec<String>,
}

impl Registry {
    /// The tables that have a folder under `tables/`.
    ///
    /// # Errors
    /// I/O errors other than the folder missing.
    pub fn tables(&self) -> Result<Vec<String>> {
        let dir = self.base.join(TABLES_DIR);
        match self.fs.list_dir(&dir) {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("list", &dir)(e)),
        }
    }

    /// Reads every block of every segment of `table`, checking each one's checksum and format,
    /// and returns every handle found, with the blocks that failed. For verification: it reads
    /// the whole table.
    ///
    /// # Errors
    /// I/O errors; a bad table name.
    pub fn scan_table(&self, table: &str) -> Result<TableScan> {
        validate_store_name(table)?;
        self.ensure_current()?;
        let mut scan = TableScan::default();
        for segment in 1..=MAX_SEGMENTS {
            let Some(file) = self.file(table, segment, false)? else {
                break;
            };
            let path = self.segment_path(table, segment);
            scan.segments += 1;
            let mut buf = vec![0u8; BLOCK_SIZE];
            for block in 0..u64::from(self.hash_mod) {
                let offset = block * BLOCK_SIZE as u64;
                buf.fill(0);
                {
                    let _shared = self.blocks.read();
                    file.read_at(&mut buf, offset)
                        .map_err(Error::io("read", &path))?;
                }
                let at = format!("{} offset {offset}", path.display());
                match crate::formats::block(&buf, &at) {
                    Ok(handles) => scan.handles.extend(handles),
                    Err(e) => scan.bad_blocks.push(e.to_string()),
                }
            }
        }
        Ok(scan)
    }

    /// Removes a table and all its handles.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_table(&self, table: &str) -> Result<()> {
        validate_store_name(table)?;
        self.check_failed()?;
        let mut journal = self.journal.lock();
        // Batches in the journal must never be replayed over the removal.
        self.checkpoint_locked(&mut journal)?;
        let _alone = self.blocks.write();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.files.write().retain(|(t, _), _| t != table);
        let dir = self.table_dir(table);
        remove_dir_all_if_present(self.fs.as_ref(), &dir).map_err(Error::io("remove", &dir))?;
        self.fs
            .sync_dir(&self.base.join(TABLES_DIR))
            .map_err(Error::io("sync folder", &self.base))
    }
}
