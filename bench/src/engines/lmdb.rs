//! LMDB through heed: default environment flags (a synchronous flush per commit).

use std::path::Path;

use anyhow::Result;
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions};

use crate::Kv;

/// LMDB in `<dir>/lmdb/`.
pub struct LmdbKv {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl LmdbKv {
    /// Creates the environment (64 GiB map, sparse).
    ///
    /// # Errors
    /// LMDB's.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("lmdb");
        std::fs::create_dir_all(&path)?;
        // SAFETY (heed's contract): the environment is opened once in this process and its
        // file is not touched by anything else while it is open.
        #[allow(unsafe_code)]
        let env = unsafe { EnvOpenOptions::new().map_size(64 << 30).open(&path)? };
        let mut tx = env.write_txn()?;
        let db = env.create_database(&mut tx, None)?;
        tx.commit()?;
        Ok(LmdbKv { env, db })
    }
}

impl Kv for LmdbKv {
    fn durability(&self) -> &'static str {
        "default flags (fsync per commit)"
    }

    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut tx = self.env.write_txn()?;
        for (k, v) in pairs {
            self.db.put(&mut tx, k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn remove(&self, keys: &[Vec<u8>]) -> Result<()> {
        let mut tx = self.env.write_txn()?;
        for k in keys {
            self.db.delete(&mut tx, k)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        let tx = self.env.read_txn()?;
        let mut bytes = 0;
        for k in keys {
            if let Some(v) = self.db.get(&tx, k)? {
                bytes += v.len();
            }
        }
        Ok(bytes)
    }

    fn scan(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        let tx = self.env.read_txn()?;
        let mut n = 0;
        for s in starts {
            let from: &[u8] = s;
            let bounds = (std::ops::Bound::Included(from), std::ops::Bound::Unbounded);
            for item in self.db.range(&tx, &bounds)?.take(len) {
                let (_, v) = item?;
                n += usize::from(!v.is_empty());
            }
        }
        Ok(n)
    }
}
