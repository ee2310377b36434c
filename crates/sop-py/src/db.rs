//! `NativeDatabase` and `NativeTransaction`: a database folder and one transaction on it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use pyo3::prelude::*;
use sop::{Database, StoreOptions, Transaction, TxMode, TxOptions};

use crate::errors::{exception, invalid};
use crate::rt::{block, detached};

/// A database folder, standalone or clustered (Python: `sop.Database` wraps it).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeDatabase {
    db: RwLock<Option<Arc<Database>>>,
    path: String,
}

impl NativeDatabase {
    pub(crate) fn get(&self) -> PyResult<Arc<Database>> {
        self.db.read().clone().ok_or_else(|| {
            exception(
                "DatabaseClosedError",
                &format!(
                    "the database at {} was closed; open it again with Database(...)",
                    self.path
                ),
            )
        })
    }
}

fn tx_mode(mode: i64) -> PyResult<TxMode> {
    match mode {
        0 => Ok(TxMode::NoCheck),
        1 => Ok(TxMode::ForWriting),
        2 => Ok(TxMode::ForReading),
        _ => Err(invalid(format!(
            "transaction mode {mode} is not one of 0 (NoCheck), 1 (ForWriting), 2 (ForReading)"
        ))),
    }
}

#[pymethods]
impl NativeDatabase {
    /// Opens (creating when missing) the database in `path`; clustered with `redis_url`.
    #[new]
    #[pyo3(signature = (path, redis_url=None))]
    fn new(py: Python<'_>, path: String, redis_url: Option<String>) -> PyResult<Self> {
        let db = match redis_url {
            None => {
                let p = path.clone();
                detached(py, move |_| Database::standalone(&p))?
            }
            Some(url) => {
                let p = path.clone();
                block(py, async move {
                    Database::open_clustered(&p, sop::ClusterOptions::new(url)).await
                })?
            }
        };
        Ok(NativeDatabase {
            db: RwLock::new(Some(Arc::new(db))),
            path,
        })
    }

    /// The folder.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Begins a transaction: `mode` 0 NoCheck, 1 ForWriting, 2 ForReading; `max_time` in
    /// seconds (0: the default, 15 minutes).
    #[pyo3(signature = (mode=1, max_time=0.0))]
    fn begin(&self, mode: i64, max_time: f64) -> PyResult<NativeTransaction> {
        let db = self.get()?;
        if !max_time.is_finite() || max_time < 0.0 {
            return Err(invalid(format!(
                "max_time {max_time} is not a number of seconds >= 0"
            )));
        }
        // The engine caps max_time at an hour; anything longer is that.
        let max_time = Duration::from_secs_f64(max_time.min(86_400.0));
        let options = TxOptions::new(tx_mode(mode)?).max_time(max_time);
        let tx = db.begin_with(options);
        Ok(NativeTransaction {
            tx: Arc::new(tx),
            db,
        })
    }

    /// The names of the stores.
    fn stores(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let db = self.get()?;
        detached(py, move |_| db.stores())
    }

    /// Removes a store and its items.
    fn remove_btree(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let db = self.get()?;
        detached(py, move |_| db.remove_btree(&name))
    }

    /// Closes the database: later calls on it raise `DatabaseClosedError`. Transactions begun
    /// before go on until they end (they hold the folder).
    fn close(&self, py: Python<'_>) {
        let db = self.db.write().take();
        // The last handle's drop flushes and syncs the log: without the GIL.
        py.detach(move || drop(db));
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.db.read().is_none()
    }
}

/// One transaction (Python: `sop.Transaction` wraps it).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeTransaction {
    pub(crate) tx: Arc<Transaction>,
    pub(crate) db: Arc<Database>,
}

#[pymethods]
impl NativeTransaction {
    /// Commits (raises `ConflictError` when another transaction changed what this one used:
    /// run it again).
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let tx = self.tx.clone();
        block(py, async move { tx.commit().await })
    }

    /// Rolls back.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        let tx = self.tx.clone();
        block(py, async move { tx.rollback().await })
    }

    /// Whether it can still be used (not committed, rolled back or failed).
    #[getter]
    fn is_open(&self) -> bool {
        self.tx.is_open()
    }

    /// Its id.
    #[getter]
    fn id(&self) -> String {
        self.tx.id().to_string()
    }

    /// 0 NoCheck, 1 ForWriting, 2 ForReading.
    #[getter]
    fn mode(&self) -> i64 {
        match self.tx.mode() {
            TxMode::NoCheck => 0,
            TxMode::ForWriting => 1,
            _ => 2,
        }
    }

    /// The names of the stores, as this transaction sees them.
    fn stores(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let tx = self.tx.clone();
        detached(py, move |_| tx.stores())
    }
}

/// Store options from sop4py's `BtreeOptions` fields (a JSON object; missing fields default).
pub(crate) fn store_options(name: &str, json: &str) -> PyResult<StoreOptions> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid(format!("store options: {e}")))?;
    let flag = |k: &str, d: bool| v.get(k).and_then(serde_json::Value::as_bool).unwrap_or(d);
    let mut o = StoreOptions::new(name);
    if let Some(n) = v.get("slot_length").and_then(serde_json::Value::as_u64) {
        o = o.slot_length(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let d = StoreOptions::new(name);
    o = o
        .unique(flag("is_unique", d.unique))
        .value_in_node(flag("is_value_data_in_node_segment", d.value_in_node))
        .value_actively_persisted(flag(
            "is_value_data_actively_persisted",
            d.value_actively_persisted,
        ))
        .value_globally_cached(flag(
            "is_value_data_globally_cached",
            d.value_globally_cached,
        ))
        .leaf_load_balancing(flag("leaf_load_balancing", d.leaf_load_balancing));
    if let Some(d) = v.get("description").and_then(serde_json::Value::as_str) {
        o = o.description(d);
    }
    Ok(o)
}
