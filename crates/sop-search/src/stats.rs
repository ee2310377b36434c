//! Collection statistics (document count, total length) as deltas: each indexing handle adds
//! to an item of its own, so concurrent indexers never write the same key.

use serde::{Deserialize, Serialize};
use sop_core::Result;
use sop_txn::{Store, Transaction};

/// One writer's contribution (key 0: the folded base).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Delta {
    pub docs: i64,
    pub len: i64,
}

pub(crate) struct Stats {
    store: Store<u128, Delta>,
    /// This handle's item.
    mine: u128,
}

/// The folded base's key.
const BASE: u128 = 0;

impl Stats {
    pub fn open(tx: &Transaction, name: &str, create: bool) -> Result<Self> {
        let store = if create {
            tx.new_btree(&sop_core::StoreOptions::new(name).slot_length(500))?
        } else {
            tx.open_btree(name)?
        };
        let (hi, lo) = sop_core::Uuid::new_v4().high_low();
        // Never 0 (the base).
        let mine = ((u128::from(hi) << 64) | u128::from(lo)).max(1);
        Ok(Stats { store, mine })
    }

    /// Adds to this handle's delta (written now: the transaction carries it).
    pub async fn add(&mut self, docs: i64, len: i64) -> Result<()> {
        // Read back, not cached: a fold through another handle may have taken this item.
        let mut d = self.store.get(&self.mine).await?.unwrap_or_default();
        d.docs += docs;
        d.len += len;
        self.store.upsert(self.mine, d).await?;
        Ok(())
    }

    /// The document count and total length: the base plus every delta.
    pub async fn totals(&self) -> Result<Delta> {
        let mut sum = Delta::default();
        let mut range = self.store.iter();
        while let Some(it) = range.next_ref().await? {
            sum.docs += it.value().docs;
            sum.len += it.value().len;
        }
        Ok(sum)
    }

    /// Folds every delta into the base; how many were folded. Run it in a transaction of its
    /// own: it reads every delta, so it conflicts with indexers committing meanwhile.
    pub async fn fold(&mut self) -> Result<usize> {
        let mut keys = Vec::new();
        let mut sum = Delta::default();
        {
            let mut range = self.store.iter();
            while let Some(it) = range.next_ref().await? {
                sum.docs += it.value().docs;
                sum.len += it.value().len;
                if *it.key() != BASE {
                    keys.push(*it.key());
                }
            }
        }
        for k in &keys {
            self.store.remove(k).await?;
        }
        self.store.upsert(BASE, sum).await?;
        Ok(keys.len())
    }
}
