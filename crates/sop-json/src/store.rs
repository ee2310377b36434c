//! A JSON store: a B-tree of JSON keys and values with SOP's `jsondb` calls (batches, paging).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sop_core::{Error, Result, StoreOptions, UsageError, Uuid};
use sop_txn::{Store, Transaction};

use crate::order::{IndexSpec, JsonOrder};
use crate::value::Json;

/// One item of a batch or a page (SOP's `jsondb.Item`): a key, a value (absent in key-only
/// pages and when only a key is asked for), and the item's id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonItem {
    /// The key.
    pub key: Value,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The item's id (which of equal keys, in a non-unique store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
}

impl JsonItem {
    /// An item of a key and a value.
    #[must_use]
    pub fn new(key: Value, value: Value) -> Self {
        JsonItem {
            key,
            value: Some(value),
            id: None,
        }
    }

    /// An item of a key alone.
    #[must_use]
    pub fn key(key: Value) -> Self {
        JsonItem {
            key,
            value: None,
            id: None,
        }
    }
}

/// A store of JSON keys and values for dynamic callers (SOP's `jsondb`: what the Python
/// binding, the REST server and the CLI use): keys ordered by an [`IndexSpec`] (keys are then
/// objects) or, without one, by the total order over JSON values; batch add / update / upsert
/// / remove; paging from a cursor either way.
///
/// The specification is recorded with the store (in its key order's name), so
/// [`JsonStore::open`] needs none.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use serde_json::json;
/// use sop_json::{IndexSpec, JsonItem, JsonStore, PagingInfo};
///
/// let dir = tempfile::tempdir()?;
/// let db = sop_database::Database::standalone(dir.path())?;
/// let tx = db.begin(sop_txn::TxMode::ForWriting);
/// let spec = IndexSpec::new().field("last", true).field("age", false);
/// let mut people = JsonStore::new(&tx, &sop_core::StoreOptions::new("people"), Some(spec))?;
/// people.add(&[
///     JsonItem::new(json!({"last": "Lovelace", "age": 36}), json!({"first": "Ada"})),
///     JsonItem::new(json!({"last": "Babbage", "age": 79}), json!({"first": "Charles"})),
/// ]).await?;
/// tx.commit().await?;
///
/// let tx = db.begin(sop_txn::TxMode::ForReading);
/// let mut people = JsonStore::open(&tx, "people")?; // the specification comes with the store
/// let page = people.get_items(&PagingInfo::new(10)).await?;
/// assert_eq!(page[0].key["last"], "Babbage");
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct JsonStore {
    pub(crate) store: Store<Json, Json, JsonOrder>,
    order: JsonOrder,
    /// The cursor went past an end (a move found no item): a page from it is empty, never
    /// the first page again.
    pub(crate) ended: bool,
}

impl std::fmt::Debug for JsonStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonStore")
            .field("name", &self.store.name())
            .field("spec", &self.order.spec())
            .finish_non_exhaustive()
    }
}

impl JsonStore {
    /// Creates a JSON store ordered by `spec` (`None`: whole keys in the JSON value order).
    ///
    /// # Errors
    /// An invalid specification, [`UsageError::StoreExists`], invalid options, a read-only
    /// transaction.
    pub fn new(tx: &Transaction, options: &StoreOptions, spec: Option<IndexSpec>) -> Result<Self> {
        if let Some(s) = &spec {
            s.check()?;
        }
        let order = JsonOrder::new(spec);
        let store = tx.new_btree_with(options, order.clone())?;
        Ok(JsonStore {
            store,
            order,
            ended: false,
        })
    }

    /// Opens a JSON store with the specification it was made with.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`], [`UsageError::TypeMismatch`] when it is not a JSON store.
    pub fn open(tx: &Transaction, name: &str) -> Result<Self> {
        let info = tx
            .store_info(name)?
            .ok_or_else(|| Error::Usage(UsageError::StoreNotFound { name: name.into() }))?;
        let recorded = info
            .types
            .as_ref()
            .map(|t| t.order.clone())
            .unwrap_or_default();
        let order = JsonOrder::from_name(&recorded).ok_or_else(|| {
            Error::Usage(UsageError::TypeMismatch {
                store: name.into(),
                asked: "a JSON store".into(),
                holds: if recorded.is_empty() {
                    "a store whose types are not recorded".into()
                } else {
                    format!("keys in the order {recorded:?}")
                },
            })
        })?;
        let store = tx.open_btree_with(name, order.clone())?;
        Ok(JsonStore {
            store,
            order,
            ended: false,
        })
    }

    /// Whether the store `name` is a JSON store (`false` when missing or typed).
    ///
    /// # Errors
    /// Storage errors, an ended transaction.
    pub fn is_json_store(tx: &Transaction, name: &str) -> Result<bool> {
        Ok(tx
            .store_info(name)?
            .and_then(|i| i.types)
            .is_some_and(|t| JsonOrder::from_name(&t.order).is_some()))
    }

    /// The store's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.store.name()
    }

    /// The index specification (`None`: whole keys).
    #[must_use]
    pub fn spec(&self) -> Option<&IndexSpec> {
        self.order.spec()
    }

    /// The store's info (options, count as this transaction sees it).
    #[must_use]
    pub fn store_info(&self) -> &sop_core::StoreInfo {
        self.store.store_info()
    }

    /// How many items the store holds.
    ///
    /// # Errors
    /// An ended transaction.
    pub fn count(&self) -> Result<u64> {
        self.store.count()
    }

    /// Refuses a key the specification cannot order: with a specification, keys are objects.
    fn check_key(&self, key: &Value) -> Result<()> {
        if self.order.spec().is_some() && !key.is_object() {
            return Err(Error::Usage(UsageError::InvalidArgument {
                store: self.name().to_string(),
                what: "key",
                reason: format!(
                    "{} is not a JSON object; this store's keys are objects with the fields of \
                     its index specification",
                    truncate(key)
                ),
            }));
        }
        Ok(())
    }

    fn check_items(&self, items: &[JsonItem]) -> Result<()> {
        items.iter().try_for_each(|i| self.check_key(&i.key))
    }

    /// Adds every item (SOP's batch `Add`): `true` when all were added (in a unique store an
    /// existing key is left alone and makes it `false`).
    ///
    /// # Errors
    /// A key the specification cannot order; conflicts, storage errors.
    pub async fn add(&mut self, items: &[JsonItem]) -> Result<bool> {
        self.check_items(items)?;
        self.ended = false;
        let mut all = true;
        for i in items {
            all &= self.store.add(Json(i.key.clone()), value_of(i)).await?;
        }
        Ok(all)
    }

    /// Adds the items whose keys are not in the store: `true` when all were added.
    ///
    /// # Errors
    /// As [`JsonStore::add`].
    pub async fn add_if_not_exist(&mut self, items: &[JsonItem]) -> Result<bool> {
        self.check_items(items)?;
        self.ended = false;
        let mut all = true;
        for i in items {
            all &= self
                .store
                .add_if_not_exist(Json(i.key.clone()), value_of(i))
                .await?;
        }
        Ok(all)
    }

    /// Replaces the values of the items' keys (the item with the given id, when one is
    /// given): `true` when every key was found.
    ///
    /// # Errors
    /// As [`JsonStore::add`].
    pub async fn update(&mut self, items: &[JsonItem]) -> Result<bool> {
        self.check_items(items)?;
        let mut all = true;
        for i in items {
            if self.position(i).await? {
                self.store
                    .update_current_item(Json(i.key.clone()), value_of(i))
                    .await?;
            } else {
                all = false;
            }
        }
        Ok(all)
    }

    /// Adds or replaces every item (SOP's `Upsert`): `true` (it cannot fail per item).
    ///
    /// # Errors
    /// As [`JsonStore::add`].
    pub async fn upsert(&mut self, items: &[JsonItem]) -> Result<bool> {
        self.check_items(items)?;
        for i in items {
            if self.position(i).await? {
                self.store
                    .update_current_item(Json(i.key.clone()), value_of(i))
                    .await?;
            } else {
                self.store.add(Json(i.key.clone()), value_of(i)).await?;
            }
        }
        Ok(true)
    }

    /// Removes the first item of each key: `true` when every key was found.
    ///
    /// # Errors
    /// As [`JsonStore::add`].
    pub async fn remove(&mut self, keys: &[Value]) -> Result<bool> {
        keys.iter().try_for_each(|k| self.check_key(k))?;
        self.ended = false;
        let mut all = true;
        for k in keys {
            all &= self.store.remove(&Json(k.clone())).await?;
        }
        Ok(all)
    }

    /// Moves the cursor to the item (by id when given); whether it exists.
    async fn position(&mut self, i: &JsonItem) -> Result<bool> {
        // A batch call moves the cursor: paging starts afresh after it.
        self.ended = false;
        let key = Json(i.key.clone());
        match i.id {
            Some(id) => self.store.find_with_id(&key, id).await,
            None => self.store.find(&key, true).await,
        }
    }

    /// The value of the first item with `key`.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn get(&self, key: &Value) -> Result<Option<Value>> {
        self.check_key(key)?;
        Ok(self.store.get(&Json(key.clone())).await?.map(|j| j.0))
    }

    /// Moves the cursor to the first item with `key` (`true`), or the next greater key.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn find(&mut self, key: &Value) -> Result<bool> {
        self.check_key(key)?;
        let r = self.store.find(&Json(key.clone()), true).await;
        self.moved(r)
    }

    /// Moves the cursor to the item with `key` and `id`.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn find_with_id(&mut self, key: &Value, id: Uuid) -> Result<bool> {
        self.check_key(key)?;
        let r = self.store.find_with_id(&Json(key.clone()), id).await;
        self.moved(r)
    }

    /// Moves the cursor to the first item.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn first(&mut self) -> Result<bool> {
        let r = self.store.first().await;
        self.moved(r)
    }

    /// Moves the cursor to the last item.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn last(&mut self) -> Result<bool> {
        let r = self.store.last().await;
        self.moved(r)
    }

    /// Moves the cursor to the next item.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn next(&mut self) -> Result<bool> {
        let r = self.store.next().await;
        self.moved(r)
    }

    /// Moves the cursor to the previous item.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn previous(&mut self) -> Result<bool> {
        let r = self.store.previous().await;
        self.moved(r)
    }

    /// Notes whether a move left the cursor past an end.
    pub(crate) fn moved(&mut self, r: Result<bool>) -> Result<bool> {
        self.ended = self.store.current_key().is_none();
        r
    }

    /// The cursor's item.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn current_item(&mut self) -> Result<Option<JsonItem>> {
        Ok(self.store.current_item().await?.map(|i| JsonItem {
            key: i.key.0,
            value: Some(i.value.0),
            id: Some(i.id),
        }))
    }

    /// The values of the given items' keys (by id when given) (SOP's `GetValues`); an item
    /// whose key is not found comes back as given.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn get_values(&mut self, items: &[JsonItem]) -> Result<Vec<JsonItem>> {
        self.check_items(items)?;
        let mut out = Vec::with_capacity(items.len());
        for i in items {
            if self.position(i).await?
                && let Some(found) = self.current_item().await?
            {
                out.push(found);
            } else {
                out.push(i.clone());
            }
        }
        Ok(out)
    }
}

fn value_of(i: &JsonItem) -> Json {
    Json(i.value.clone().unwrap_or(Value::Null))
}

/// A value's JSON text, cut for an error message.
fn truncate(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}
