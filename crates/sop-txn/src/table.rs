//! Table definitions: a store's name, key and value types and order, written once.

use std::marker::PhantomData;

use sop_btree::{KeyComparator, NaturalOrder};
use sop_core::{Error, Result, StoreOptions};

use crate::repo::Data;
use crate::store::Store;
use crate::transaction::Transaction;

/// A store's name with its key and value types (and key order), declared once, usually as a
/// `const`, and used to open it in any transaction: the types are recorded when the store is
/// created and checked at every open ([`UsageError::TypeMismatch`](sop_core::UsageError::TypeMismatch)).
///
/// ```
/// use sop_txn::{Engine, TableDefinition, TxMode, TxOptions};
///
/// const USERS: TableDefinition<u32, String> = TableDefinition::new("users");
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let engine = Engine::in_memory()?;
/// let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
/// let mut users = tx.open_table(&USERS)?; // created by the first writer
/// users.add(1, "Ada".into()).await?;
/// tx.commit().await?;
///
/// let tx = engine.begin(TxOptions::new(TxMode::ForReading));
/// assert_eq!(tx.open_table(&USERS)?.get(&1).await?.as_deref(), Some("Ada"));
/// // The same store opened as other types is refused, never misread.
/// let wrong = tx.open_btree::<i64, String>("users");
/// assert!(matches!(wrong, Err(sop_core::Error::Usage(sop_core::UsageError::TypeMismatch { .. }))));
/// # Ok::<(), sop_core::Error>(())
/// # }).unwrap();
/// ```
pub struct TableDefinition<'a, K, V, C = NaturalOrder> {
    name: &'a str,
    order: C,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, C: Clone> Clone for TableDefinition<'_, K, V, C> {
    fn clone(&self) -> Self {
        TableDefinition {
            name: self.name,
            order: self.order.clone(),
            types: PhantomData,
        }
    }
}

impl<K, V, C: Copy> Copy for TableDefinition<'_, K, V, C> {}

impl<K, V, C> std::fmt::Debug for TableDefinition<'_, K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableDefinition")
            .field("name", &self.name)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish()
    }
}

impl<'a, K, V> TableDefinition<'a, K, V> {
    /// A table of `K -> V` in the keys' natural order.
    #[must_use]
    pub const fn new(name: &'a str) -> Self {
        TableDefinition {
            name,
            order: NaturalOrder,
            types: PhantomData,
        }
    }
}

impl<'a, K, V, C> TableDefinition<'a, K, V, C> {
    /// A table of `K -> V` ordered by `order` (recorded by its `KeyComparator::name`).
    #[must_use]
    pub const fn with_order(name: &'a str, order: C) -> Self {
        TableDefinition {
            name,
            order,
            types: PhantomData,
        }
    }

    /// The store's name.
    #[must_use]
    pub const fn name(&self) -> &'a str {
        self.name
    }
}

impl Transaction {
    /// Opens the table; in a `ForWriting` transaction a table that does not exist yet is
    /// created (with [`StoreOptions::new`]'s defaults; create it with
    /// [`Transaction::new_btree_with`] for other options).
    ///
    /// # Errors
    /// [`UsageError::TypeMismatch`](sop_core::UsageError::TypeMismatch) when the store holds other types; [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound) in a
    /// `ForReading` transaction when it does not exist; storage errors.
    pub fn open_table<K, V, C>(
        &self,
        table: &TableDefinition<'_, K, V, C>,
    ) -> Result<Store<K, V, C>>
    where
        K: Data,
        V: Data,
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        match self.open_btree_with(table.name, table.order.clone()) {
            Err(Error::Usage(sop_core::UsageError::StoreNotFound { .. }))
                if self.mode() != crate::TxMode::ForReading =>
            {
                self.new_btree_with(&StoreOptions::new(table.name), table.order.clone())
            }
            r => r,
        }
    }
}
