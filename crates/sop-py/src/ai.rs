//! The vector, model and search stores of a transaction.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use serde_json::{Value, json};
use sop::models::ModelStore;
use sop::search::SearchIndex;
use sop::vector::{Metric, QueryOptions, VectorStore};
use sop::{Database, Error, Transaction, UsageError};

use crate::db::NativeTransaction;
use crate::errors::invalid;
use crate::rt::{detached, locked};

fn parse_json(what: &str, json: &str) -> PyResult<Value> {
    serde_json::from_str(json).map_err(|e| invalid(format!("{what}: {e}")))
}

fn metric(name: &str) -> PyResult<Metric> {
    match name {
        "cosine" => Ok(Metric::Cosine),
        "l2" => Ok(Metric::L2),
        "dot" => Ok(Metric::Dot),
        _ => Err(invalid(format!(
            "metric {name:?} is not one of \"cosine\", \"l2\", \"dot\""
        ))),
    }
}

/// A vector store (Python: `sop.ai.VectorStore`). Made on its first upsert, with the
/// dimension of that vector, when it does not exist yet.
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeVector {
    tx: Arc<Transaction>,
    db: Arc<Database>,
    name: String,
    metric: Metric,
    store: Arc<Mutex<Option<VectorStore>>>,
}

impl NativeVector {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        create_dims: Option<usize>,
        f: impl AsyncFnOnce(Option<&mut VectorStore>) -> sop::Result<T> + Send,
    ) -> PyResult<T> {
        let (store, tx, name, metric) = (
            self.store.clone(),
            self.tx.clone(),
            self.name.clone(),
            self.metric,
        );
        detached(py, move |rt| {
            let mut s = store.lock();
            rt.block_on(async move {
                if s.is_none()
                    && let Some(dims) = create_dims
                {
                    *s = Some(VectorStore::create(&tx, &name, dims, metric).await?);
                }
                f(s.as_mut()).await
            })
        })
    }
}

fn item(v: &Value) -> PyResult<(String, Vec<f32>, Value)> {
    let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
    let vector = v
        .get("vector")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("item {id:?} has no vector (a list of numbers)")))?
        .iter()
        .map(|x| {
            x.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| invalid(format!("item {id:?}: {x} in its vector is not a number")))
        })
        .collect::<PyResult<Vec<f32>>>()?;
    let payload = v.get("payload").cloned().unwrap_or(Value::Null);
    Ok((id.to_string(), vector, payload))
}

#[pymethods]
impl NativeTransaction {
    /// Opens the vector store `name` (made on its first upsert when missing).
    #[pyo3(signature = (name, metric_name="cosine"))]
    fn open_vector_store(
        &self,
        py: Python<'_>,
        name: &str,
        metric_name: &str,
    ) -> PyResult<NativeVector> {
        let (tx, n) = (self.tx.clone(), name.to_string());
        let existing = detached(py, move |rt| {
            match rt.block_on(VectorStore::open(&tx, &n)) {
                Ok(s) => Ok(Some(s)),
                Err(Error::Usage(UsageError::StoreNotFound { .. })) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        let metric = existing
            .as_ref()
            .map_or(metric(metric_name)?, VectorStore::metric);
        Ok(NativeVector {
            tx: self.tx.clone(),
            db: self.db.clone(),
            name: name.to_string(),
            metric,
            store: Arc::new(Mutex::new(existing)),
        })
    }

    /// Opens (creating when missing) the model store `name`.
    fn open_model_store(&self, py: Python<'_>, name: &str) -> PyResult<NativeModels> {
        let (tx, name) = (self.tx.clone(), name.to_string());
        let store = detached(py, move |_| ModelStore::open_or_create(&tx, &name))?;
        Ok(NativeModels {
            store: Arc::new(Mutex::new(store)),
        })
    }

    /// Opens (creating when missing) the text index `name`.
    fn open_search(&self, py: Python<'_>, name: &str) -> PyResult<NativeSearch> {
        let (tx, name) = (self.tx.clone(), name.to_string());
        let index = detached(py, move |_| SearchIndex::open_or_create(&tx, &name))?;
        Ok(NativeSearch {
            index: Arc::new(Mutex::new(index)),
        })
    }
}

#[pymethods]
impl NativeVector {
    /// Adds or replaces one item: `item` JSON `{id, vector, payload}`.
    fn upsert(&self, py: Python<'_>, item_json: &str) -> PyResult<()> {
        let (id, vector, payload) = item(&parse_json("item", item_json)?)?;
        self.with(py, Some(vector.len()), async move |s| match s {
            Some(s) => s.upsert(&id, &vector, payload).await,
            None => Ok(()),
        })
    }

    /// Adds or replaces items: JSON `[{id, vector, payload}]`.
    fn upsert_batch(&self, py: Python<'_>, items_json: &str) -> PyResult<()> {
        let items = match parse_json("items", items_json)? {
            Value::Array(a) => a.iter().map(item).collect::<PyResult<Vec<_>>>()?,
            _ => return Err(invalid("items: not a list")),
        };
        let dims = items.first().map(|i| i.1.len());
        self.with(py, dims, async move |s| match s {
            Some(s) => s.upsert_batch(&items).await,
            None => Ok(()),
        })
    }

    /// The item `id` as JSON `{id, vector, payload}`, or `None`.
    fn get(&self, py: Python<'_>, id: String) -> PyResult<Option<String>> {
        let got = self.with(py, None, async move |s| match s {
            Some(s) => Ok(s
                .get(&id)
                .await?
                .map(|(v, p)| json!({"id": id, "vector": v, "payload": p}).to_string())),
            None => Ok(None),
        })?;
        Ok(got)
    }

    /// Deletes `id`: `True` when it was there.
    fn delete(&self, py: Python<'_>, id: String) -> PyResult<bool> {
        self.with(py, None, async move |s| match s {
            Some(s) => s.delete(&id).await,
            None => Ok(false),
        })
    }

    /// The `k` nearest items as JSON `[{id, score, payload}]`; `filter` (JSON object) keeps
    /// items whose payload has each of its fields equal.
    #[pyo3(signature = (vector, k=10, nprobe=8, filter=None))]
    fn query(
        &self,
        py: Python<'_>,
        vector: Vec<f32>,
        k: usize,
        nprobe: usize,
        filter: Option<&str>,
    ) -> PyResult<String> {
        let filter = match filter.map(|f| parse_json("filter", f)).transpose()? {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(invalid("filter: not a JSON object of payload fields")),
        };
        let hits = self.with(py, None, async move |s| {
            let Some(s) = s else { return Ok(Vec::new()) };
            let keep = |p: &Value| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.iter().all(|(k, v)| p.get(k) == Some(v)))
            };
            let mut opts = QueryOptions::new(k);
            opts.nprobe = nprobe;
            opts.filter = Some(&keep);
            s.query(&vector, &opts).await.map(|(hits, _)| hits)
        })?;
        let out: Vec<Value> = hits
            .into_iter()
            .map(|h| json!({"id": h.id, "score": h.score, "payload": h.payload}))
            .collect();
        Ok(Value::Array(out).to_string())
    }

    /// The number of items.
    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, None, async move |s| match s {
            Some(s) => s.count(),
            None => Ok(0),
        })
    }

    /// Trains the store's index (k-means) in transactions of its own, beside this one: what
    /// this transaction has not committed is not in it.
    fn optimize(&self, py: Python<'_>) -> PyResult<String> {
        let (db, name) = (self.db.clone(), self.name.clone());
        let r = detached(py, move |rt| {
            rt.block_on(sop::vector::optimize(&db, &name, &Default::default()))
        })?;
        Ok(json!({"version": r.version, "centroids": r.centroids, "moved": r.moved}).to_string())
    }
}

/// A model store (Python: `sop.ai.ModelStore`).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeModels {
    store: Arc<Mutex<ModelStore>>,
}

impl NativeModels {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut ModelStore) -> sop::Result<T> + Send,
    ) -> PyResult<T> {
        locked(py, &self.store, f)
    }
}

#[pymethods]
impl NativeModels {
    /// Saves `model` (JSON) as the next version of (category, name): the version number.
    fn save(&self, py: Python<'_>, category: String, name: String, model: &str) -> PyResult<u64> {
        let model = parse_json("model", model)?;
        self.with(py, async move |s| s.save(&category, &name, &model).await)
    }

    /// The latest version's model as JSON, or `None` (`version` > 0: that version).
    #[pyo3(signature = (category, name, version=0))]
    fn get(
        &self,
        py: Python<'_>,
        category: String,
        name: String,
        version: u64,
    ) -> PyResult<Option<String>> {
        let got = self.with(py, async move |s| {
            if version == 0 {
                s.load::<Value>(&category, &name)
                    .await
                    .map(|o| o.map(|x| x.1))
            } else {
                Ok(s.get(&category, &name, version).await?.map(|m| m.metadata))
            }
        })?;
        Ok(got.map(|v| v.to_string()))
    }

    /// The version numbers of (category, name).
    fn versions(&self, py: Python<'_>, category: String, name: String) -> PyResult<Vec<u64>> {
        self.with(py, async move |s| s.versions(&category, &name).await)
    }

    /// The model names of a category.
    fn list(&self, py: Python<'_>, category: String) -> PyResult<Vec<String>> {
        self.with(py, async move |s| s.list(&category).await)
    }

    /// The categories.
    fn categories(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, async move |s| s.categories().await)
    }

    /// Deletes every version of (category, name): how many there were.
    fn delete(&self, py: Python<'_>, category: String, name: String) -> PyResult<u64> {
        self.with(py, async move |s| s.delete(&category, &name).await)
    }
}

/// A BM25 text index (Python: `sop.search.Index`).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeSearch {
    index: Arc<Mutex<SearchIndex>>,
}

impl NativeSearch {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut SearchIndex) -> sop::Result<T> + Send,
    ) -> PyResult<T> {
        locked(py, &self.index, f)
    }
}

#[pymethods]
impl NativeSearch {
    /// Indexes `text` as document `doc_id` (replacing what it was).
    fn add(&self, py: Python<'_>, doc_id: String, text: String) -> PyResult<()> {
        self.with(py, async move |s| s.add(&doc_id, &text).await)
    }

    /// Removes a document: `True` when it was there.
    fn remove(&self, py: Python<'_>, doc_id: String) -> PyResult<bool> {
        self.with(py, async move |s| s.remove(&doc_id).await)
    }

    /// The `k` best documents for `query`: `[(doc_id, score)]`, best first.
    #[pyo3(signature = (query, k=10))]
    fn search(&self, py: Python<'_>, query: String, k: usize) -> PyResult<Vec<(String, f64)>> {
        let hits = self.with(py, async move |s| s.search(&query, k).await)?;
        Ok(hits.into_iter().map(|h| (h.doc_id, h.score)).collect())
    }

    /// The number of documents.
    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, async move |s| s.doc_count().await)
    }
}
