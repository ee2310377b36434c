//! Kits in and out of a transaction: export, import, restore of missing stores.

use serde_json::Value;
use sop_core::Result;
use sop_txn::Transaction;

use super::{Kit, KitItem, KitKind, KitOptions, KitStore};
use crate::store::{JsonItem, JsonStore};

/// Whether a store holds `String` keys and values in their natural order.
fn is_strings_store(info: &sop_core::StoreInfo) -> bool {
    info.types.as_ref().is_some_and(|t| {
        t.key == std::any::type_name::<String>()
            && t.value == std::any::type_name::<String>()
            && t.order == sop_btree::KeyComparator::<String>::name(&sop_btree::NaturalOrder)
    })
}

impl Kit {
    /// The JSON stores `tx` sees, with all their items; the names of the stores left out
    /// (typed stores: their bytes mean what only the program that made them knows).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn export(tx: &Transaction) -> Result<(Kit, Vec<String>)> {
        let mut kit = Kit::new();
        let mut skipped = Vec::new();
        for name in tx.stores()? {
            if !JsonStore::is_json_store(tx, &name)? {
                match tx.store_info(&name)? {
                    Some(info) if is_strings_store(&info) => {
                        kit.stores.push(export_strings(tx, name, &info).await?);
                    }
                    _ => skipped.push(name),
                }
                continue;
            }
            let mut store = JsonStore::open(tx, &name)?;
            let info = store.store_info().clone();
            let mut items = Vec::new();
            let mut more = store.first().await?;
            while more {
                if let Some(i) = store.current_item().await? {
                    items.push(KitItem {
                        key: i.key,
                        value: i.value.unwrap_or(Value::Null),
                    });
                }
                more = store.next().await?;
            }
            kit.stores.push(KitStore {
                name,
                kind: KitKind::Json,
                options: KitOptions::of(&info),
                index: store.spec().cloned(),
                items,
            });
        }
        Ok((kit, skipped))
    }

    /// Creates the kit's stores that `tx` does not see and fills them; the names of those
    /// restored. Stores that exist are left as they are.
    ///
    /// # Errors
    /// As [`Kit::check`]; conflicts, storage errors.
    pub async fn restore_missing(&self, tx: &Transaction) -> Result<Vec<String>> {
        self.check()?;
        let mut done = Vec::new();
        for s in &self.stores {
            if tx.store_info(&s.name)?.is_some() {
                continue;
            }
            if s.kind == KitKind::Strings {
                let mut store = tx.new_btree::<String, String>(&s.store_options())?;
                for i in &s.items {
                    store.add(string_of(&i.key), string_of(&i.value)).await?;
                }
                done.push(s.name.clone());
                continue;
            }
            let mut store = JsonStore::new(tx, &s.store_options(), s.index.clone())?;
            let items: Vec<JsonItem> = s
                .items
                .iter()
                .map(|i| JsonItem::new(i.key.clone(), i.value.clone()))
                .collect();
            store.add(&items).await?;
            done.push(s.name.clone());
        }
        Ok(done)
    }

    /// Imports the kit's items into `tx`'s stores, creating the missing stores and replacing
    /// the values of keys that exist (SOP's `Upsert`): `sop import`.
    ///
    /// # Errors
    /// As [`Kit::check`]; [`UsageError::TypeMismatch`] for a store of that name that is not a
    /// JSON store; conflicts, storage errors.
    pub async fn import(&self, tx: &Transaction) -> Result<u64> {
        self.check()?;
        let mut n = 0;
        for s in &self.stores {
            if s.kind == KitKind::Strings {
                let mut store = if tx.store_info(&s.name)?.is_some() {
                    tx.open_btree::<String, String>(&s.name)?
                } else {
                    tx.new_btree::<String, String>(&s.store_options())?
                };
                for i in &s.items {
                    store.upsert(string_of(&i.key), string_of(&i.value)).await?;
                }
                n += s.items.len() as u64;
                continue;
            }
            let mut store = if tx.store_info(&s.name)?.is_some() {
                JsonStore::open(tx, &s.name)?
            } else {
                JsonStore::new(tx, &s.store_options(), s.index.clone())?
            };
            let items: Vec<JsonItem> = s
                .items
                .iter()
                .map(|i| JsonItem::new(i.key.clone(), i.value.clone()))
                .collect();
            store.upsert(&items).await?;
            n += items.len() as u64;
        }
        Ok(n)
    }
}

fn string_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

async fn export_strings(
    tx: &Transaction,
    name: String,
    info: &sop_core::StoreInfo,
) -> Result<KitStore> {
    let store = tx.open_btree::<String, String>(&name)?;
    let mut range = store.iter();
    let mut items = Vec::new();
    while let Some(it) = range.next().await? {
        items.push(KitItem {
            key: Value::String(it.key),
            value: Value::String(it.value),
        });
    }
    Ok(KitStore {
        name,
        kind: KitKind::Strings,
        options: KitOptions::of(info),
        index: None,
        items,
    })
}
