//! redb: copy-on-write B-tree, `Durability::Immediate` (its default: fsync per commit).

use std::path::Path;

use anyhow::Result;
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::Kv;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// redb in `<dir>/redb.db`.
pub struct RedbKv(Database);

impl RedbKv {
    /// Creates the database.
    ///
    /// # Errors
    /// redb's.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = Database::create(dir.join("redb.db"))?;
        let tx = db.begin_write()?;
        tx.open_table(TABLE)?;
        tx.commit()?;
        Ok(RedbKv(db))
    }
}

impl Kv for RedbKv {
    fn durability(&self) -> &'static str {
        "Durability::Immediate (fsync per commit)"
    }

    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let tx = self.0.begin_write()?;
        {
            let mut t = tx.open_table(TABLE)?;
            for (k, v) in pairs {
                t.insert(k.as_slice(), v.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn remove(&self, keys: &[Vec<u8>]) -> Result<()> {
        let tx = self.0.begin_write()?;
        {
            let mut t = tx.open_table(TABLE)?;
            for k in keys {
                t.remove(k.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let tx = self.0.begin_read()?;
        let t = tx.open_table(TABLE)?;
        let mut bytes = 0;
        for k in keys {
            if let Some(v) = t.get(k.as_slice())? {
                bytes += v.value().len();
            }
        }
        Ok(bytes)
    }

    fn scan(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let tx = self.0.begin_read()?;
        let t = tx.open_table(TABLE)?;
        let mut n = 0;
        for s in starts {
            for item in t.range(s.as_slice()..)?.take(len) {
                let (_, v) = item?;
                n += usize::from(!v.value().is_empty());
            }
        }
        Ok(n)
    }
}
