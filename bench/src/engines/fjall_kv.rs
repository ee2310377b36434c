//! fjall (LSM tree): one keyspace, every write an atomic batch with `PersistMode::SyncAll`
//! (journal fsynced before the commit returns).

use std::path::Path;

use anyhow::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::Kv;

/// fjall in `<dir>/fjall/`.
pub struct FjallKv {
    db: Database,
    ks: Keyspace,
}

impl FjallKv {
    /// Opens the database and its keyspace.
    ///
    /// # Errors
    /// fjall's.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = Database::builder(dir.join("fjall")).open()?;
        let ks = db.keyspace("kv", KeyspaceCreateOptions::default)?;
        Ok(FjallKv { db, ks })
    }
}

impl Kv for FjallKv {
    fn durability(&self) -> &'static str {
        "batch durability PersistMode::SyncAll (fsync per commit)"
    }

    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (k, v) in pairs {
            b.insert(&self.ks, k.as_slice(), v.as_slice());
        }
        b.commit()?;
        Ok(())
    }

    fn remove(&self, keys: &[Vec<u8>]) -> Result<()> {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        for k in keys {
            b.remove(&self.ks, k.as_slice());
        }
        b.commit()?;
        Ok(())
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let mut bytes = 0;
        for k in keys {
            if let Some(v) = self.ks.get(k)? {
                bytes += v.len();
            }
        }
        Ok(bytes)
    }

    fn scan(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let mut n = 0;
        for s in starts {
            for item in self.ks.range(s.as_slice()..).take(len) {
                n += usize::from(!item.value()?.is_empty());
            }
        }
        Ok(n)
    }
}
