//! `NativeBtree`: a JSON store (keys and values cross as JSON text; the Python layer turns
//! dataclasses and dicts into it and back).

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use serde::de::DeserializeOwned;
use sop::json::{IndexSpec, JsonItem, JsonStore, PagingInfo};

use crate::db::{NativeTransaction, store_options};
use crate::errors::invalid;
use crate::rt::{detached, locked};

/// A B-tree of JSON keys and values (Python: `sop.Btree` wraps it).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeBtree {
    store: Arc<Mutex<JsonStore>>,
    name: String,
    spec: Option<String>,
    unique: bool,
}

fn parse<T: DeserializeOwned>(what: &str, json: &str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| invalid(format!("{what}: {e}")))
}

fn text<T: serde::Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| invalid(format!("result not JSON: {e}")))
}

impl NativeBtree {
    fn wrap(s: JsonStore) -> PyResult<Self> {
        let spec = s.spec().map(text).transpose()?;
        Ok(NativeBtree {
            name: s.name().to_string(),
            unique: s.store_info().unique,
            spec,
            store: Arc::new(Mutex::new(s)),
        })
    }

    /// Runs `f` on the store with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut JsonStore) -> sop::Result<T> + Send,
    ) -> PyResult<T> {
        locked(py, &self.store, f)
    }
}

#[pymethods]
impl NativeTransaction {
    /// Creates a B-tree: `options` sop4py's `BtreeOptions` as JSON, `spec` an index
    /// specification as JSON (keys are then objects).
    #[pyo3(signature = (name, options="{}", spec=None))]
    fn new_btree(
        &self,
        py: Python<'_>,
        name: &str,
        options: &str,
        spec: Option<&str>,
    ) -> PyResult<NativeBtree> {
        let options = store_options(name, options)?;
        let spec = spec
            .map(IndexSpec::from_json)
            .transpose()
            .map_err(crate::errors::to_py)?;
        let tx = self.tx.clone();
        NativeBtree::wrap(detached(py, move |_| JsonStore::new(&tx, &options, spec))?)
    }

    /// Opens a B-tree with the specification it was made with.
    fn open_btree(&self, py: Python<'_>, name: &str) -> PyResult<NativeBtree> {
        let (tx, name) = (self.tx.clone(), name.to_string());
        NativeBtree::wrap(detached(py, move |_| JsonStore::open(&tx, &name))?)
    }
}

#[pymethods]
impl NativeBtree {
    /// The name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The index specification as JSON (`None`: whole keys in the JSON value order).
    #[getter]
    fn spec(&self) -> Option<&str> {
        self.spec.as_deref()
    }

    /// Whether keys are unique.
    #[getter]
    fn is_unique(&self) -> bool {
        self.unique
    }

    /// Adds items (JSON `[{key, value}]`): `True` when all were added.
    fn add(&self, py: Python<'_>, items: &str) -> PyResult<bool> {
        let items: Vec<JsonItem> = parse("items", items)?;
        self.with(py, async move |s| s.add(&items).await)
    }

    /// Adds the items whose keys are not there yet.
    fn add_if_not_exist(&self, py: Python<'_>, items: &str) -> PyResult<bool> {
        let items: Vec<JsonItem> = parse("items", items)?;
        self.with(py, async move |s| s.add_if_not_exist(&items).await)
    }

    /// Updates the values of existing keys: `True` when all were there.
    fn update(&self, py: Python<'_>, items: &str) -> PyResult<bool> {
        let items: Vec<JsonItem> = parse("items", items)?;
        self.with(py, async move |s| s.update(&items).await)
    }

    /// Adds or updates.
    fn upsert(&self, py: Python<'_>, items: &str) -> PyResult<bool> {
        let items: Vec<JsonItem> = parse("items", items)?;
        self.with(py, async move |s| s.upsert(&items).await)
    }

    /// Removes keys (JSON `[key]`): `True` when all were there.
    fn remove(&self, py: Python<'_>, keys: &str) -> PyResult<bool> {
        let keys: Vec<serde_json::Value> = parse("keys", keys)?;
        self.with(py, async move |s| s.remove(&keys).await)
    }

    /// Places the cursor on `key` (JSON): `True` when found.
    fn find(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        let key: serde_json::Value = parse("key", key)?;
        self.with(py, async move |s| s.find(&key).await)
    }

    /// Places the cursor on the item of `key` with `id`.
    fn find_with_id(&self, py: Python<'_>, key: &str, id: &str) -> PyResult<bool> {
        let key: serde_json::Value = parse("key", key)?;
        let id = id
            .parse::<sop::Uuid>()
            .map_err(|e| invalid(format!("id {id:?}: {e}")))?;
        self.with(py, async move |s| s.find_with_id(&key, id).await)
    }

    /// Moves the cursor: `which` is "first", "last", "next" or "previous".
    fn step(&self, py: Python<'_>, which: &str) -> PyResult<bool> {
        let which = which.to_string();
        self.with(py, async move |s| match which.as_str() {
            "first" => s.first().await,
            "last" => s.last().await,
            "next" => s.next().await,
            _ => s.previous().await,
        })
    }

    /// The item at the cursor as JSON `{key, value, id}`, or `None`.
    fn current_item(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let item = self.with(py, async move |s| s.current_item().await)?;
        item.as_ref().map(text).transpose()
    }

    /// A page of keys (paging JSON: `{page_offset, page_size, fetch_count, direction}`).
    fn get_keys(&self, py: Python<'_>, paging: &str) -> PyResult<String> {
        let paging: PagingInfo = parse("paging", paging)?;
        text(&self.with(py, async move |s| s.get_keys(&paging).await)?)
    }

    /// A page of items.
    fn get_items(&self, py: Python<'_>, paging: &str) -> PyResult<String> {
        let paging: PagingInfo = parse("paging", paging)?;
        text(&self.with(py, async move |s| s.get_items(&paging).await)?)
    }

    /// The values of items (JSON `[{key, id?}]`).
    fn get_values(&self, py: Python<'_>, items: &str) -> PyResult<String> {
        let items: Vec<JsonItem> = parse("items", items)?;
        text(&self.with(py, async move |s| s.get_values(&items).await)?)
    }

    /// The value of `key`, as JSON, or `None`.
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<String>> {
        let key: serde_json::Value = parse("key", key)?;
        let v = self.with(py, async move |s| s.get(&key).await)?;
        v.as_ref().map(text).transpose()
    }

    /// The number of items.
    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        let store = self.store.clone();
        detached(py, move |_| store.lock().count())
    }
}
