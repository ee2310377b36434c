//! SQLite (bundled) through rusqlite: WAL, `synchronous=FULL` (fsync of the WAL per commit), a
//! `WITHOUT ROWID` table keyed by the key.

use std::path::{Path, PathBuf};

use anyhow::Result;
use parking_lot_free::Pool;
use rusqlite::{Connection, params};

use crate::Kv;

/// A tiny connection pool: SQLite connections are not `Sync`; each call takes one.
mod parking_lot_free {
    use std::sync::Mutex;

    pub struct Pool<T>(Mutex<Vec<T>>);

    impl<T> Pool<T> {
        pub fn new() -> Self {
            Pool(Mutex::new(Vec::new()))
        }
        pub fn take(&self) -> Option<T> {
            self.0.lock().ok()?.pop()
        }
        pub fn give(&self, t: T) {
            if let Ok(mut v) = self.0.lock() {
                v.push(t);
            }
        }
    }
}

/// SQLite in `<dir>/sqlite.db`.
pub struct SqliteKv {
    path: PathBuf,
    pool: Pool<Connection>,
}

impl SqliteKv {
    /// Creates the database and its table.
    ///
    /// # Errors
    /// SQLite's.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("sqlite.db");
        let kv = SqliteKv {
            path,
            pool: Pool::new(),
        };
        let c = kv.connect()?;
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )?;
        kv.pool.give(c);
        Ok(kv)
    }

    fn connect(&self) -> Result<Connection> {
        let c = Connection::open(&self.path)?;
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")?;
        Ok(c)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = match self.pool.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let r = f(&mut c);
        self.pool.give(c);
        r
    }
}

impl Kv for SqliteKv {
    fn durability(&self) -> &'static str {
        "WAL, synchronous=FULL (fsync per commit)"
    }

    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st =
                    tx.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
                for (k, v) in pairs {
                    st.execute(params![k, v])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn remove(&self, keys: &[Vec<u8>]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached("DELETE FROM kv WHERE k = ?1")?;
                for k in keys {
                    st.execute(params![k])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut bytes = 0;
            {
                let mut st = tx.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
                for k in keys {
                    let mut rows = st.query(params![k])?;
                    if let Some(row) = rows.next()? {
                        bytes += row.get_ref(0)?.as_blob()?.len();
                    }
                }
            }
            tx.commit()?;
            Ok(bytes)
        })
    }

    fn scan(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut n = 0;
            {
                let mut st =
                    tx.prepare_cached("SELECT v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2")?;
                for s in starts {
                    let mut rows = st.query(params![s, len as i64])?;
                    while let Some(row) = rows.next()? {
                        n += usize::from(!row.get_ref(0)?.as_blob()?.is_empty());
                    }
                }
            }
            tx.commit()?;
            Ok(n)
        })
    }
}
