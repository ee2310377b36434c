//! sop-rs standalone: one B-tree of byte keys and byte values; every write call one
//! `ForWriting` transaction (durable when `commit` returns), every read call one `ForReading`
//! transaction (a snapshot: its commit only waits until what it read is durable).

use std::path::Path;

use anyhow::Result;
use sop::{Database, DatabaseOptions, StoreOptions, TxMode};

use crate::Kv;

/// Which options.
#[derive(Clone, Copy, Debug)]
pub enum Tuning {
    /// `Database::standalone` and `StoreOptions::new` as they come.
    Default,
    /// The options that suit this workload best (see BENCHMARKS.md).
    Tuned,
}

/// sop-rs in `<dir>/sop/`.
pub struct SopKv {
    db: Database,
}

const STORE: &str = "kv";
/// The tuned slot length (`SOP_BENCH_SLOT` overrides it, for trying others).
const TUNED_SLOT: usize = 256;

impl SopKv {
    /// Creates the database and its store.
    ///
    /// # Errors
    /// sop-rs's.
    pub fn open(dir: &Path, tuning: Tuning) -> Result<Self> {
        let path = dir.join("sop");
        let (db, store) = match tuning {
            Tuning::Default => (Database::standalone(&path)?, StoreOptions::new(STORE)),
            Tuning::Tuned => (
                Database::open(
                    &path,
                    DatabaseOptions {
                        l1_cache_bytes: 1 << 30,
                        ..DatabaseOptions::default()
                    },
                )?,
                StoreOptions::new(STORE).slot_length(
                    std::env::var("SOP_BENCH_SLOT")
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(TUNED_SLOT),
                ),
            ),
        };
        let kv = SopKv { db };
        kv.block_on(async {
            let tx = kv.db.begin(TxMode::ForWriting);
            kv.db.new_btree::<Vec<u8>, Vec<u8>>(&tx, &store)?;
            tx.commit().await
        })?;
        Ok(kv)
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = sop::Result<T>>) -> Result<T> {
        // Calls come from any thread: one current-thread runtime per thread, made once.
        thread_local! {
            static RT: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok();
        }
        RT.with(|rt| match rt {
            Some(rt) => Ok(rt.block_on(f)?),
            None => anyhow::bail!("cannot start a tokio runtime"),
        })
    }
}

impl Kv for SopKv {
    fn durability(&self) -> &'static str {
        "commit returns after one fdatasync of its log segment (group commit; registry checkpointed in the background)"
    }

    // Every call goes through `Database::run`: concurrent transactions on one node conflict
    // (optimistic concurrency) and are retried with backoff, as an application would.

    fn write(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        self.block_on(self.db.run(TxMode::ForWriting, ATTEMPTS, |tx| async move {
            let mut t = self.db.open_btree::<Vec<u8>, Vec<u8>>(&tx, STORE)?;
            for (k, v) in pairs {
                t.upsert(k.clone(), v.clone()).await?;
            }
            Ok(())
        }))
    }

    fn remove(&self, keys: &[Vec<u8>]) -> Result<()> {
        self.block_on(self.db.run(TxMode::ForWriting, ATTEMPTS, |tx| async move {
            let mut t = self.db.open_btree::<Vec<u8>, Vec<u8>>(&tx, STORE)?;
            for k in keys {
                t.remove(k).await?;
            }
            Ok(())
        }))
    }

    fn get(&self, keys: &[Vec<u8>]) -> Result<usize> {
        self.block_on(self.db.run(TxMode::ForReading, ATTEMPTS, |tx| async move {
            let t = self.db.open_btree::<Vec<u8>, Vec<u8>>(&tx, STORE)?;
            let mut bytes = 0;
            for k in keys {
                // A guard on the node's item, as redb's `AccessGuard`: no copy of the value.
                if let Some(v) = t.get_ref(k).await? {
                    bytes += v.value().len();
                }
            }
            Ok(bytes)
        }))
    }

    fn scan(&self, starts: &[Vec<u8>], len: usize) -> Result<usize> {
        self.block_on(self.db.run(TxMode::ForReading, ATTEMPTS, |tx| async move {
            let t = self.db.open_btree::<Vec<u8>, Vec<u8>>(&tx, STORE)?;
            let mut n = 0;
            for s in starts {
                let mut range = t.range(s.clone()..);
                for _ in 0..len {
                    match range.next_ref().await? {
                        Some(it) => n += usize::from(!it.value().is_empty()),
                        None => break,
                    }
                }
            }
            Ok(n)
        }))
    }
}

/// Attempts per call before a conflict is reported.
const ATTEMPTS: usize = 100;
