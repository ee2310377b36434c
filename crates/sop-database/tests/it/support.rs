//! Helpers shared by the database tests.

use std::collections::{BTreeMap, BTreeSet};

use sop_core::{Result, StoreOptions, Uuid, ValueDataSize};
use sop_database::{Database, TxMode};

/// A current-thread runtime for a test.
/// A runtime with two workers, for tests whose tasks must run beside each other.
pub fn rt_multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The database verifies clean (every tree, piece and segment intact, nothing left over).
/// `at` names the case.
pub async fn assert_verified(db: &Database, at: &str) {
    let report = db.verify(false).await.unwrap();
    assert!(report.is_clean(), "{at}: {:?}", report.problems);
}

/// One bank transfer with retries: moves `amount` from `from` to `to` in "accounts" and records
/// it under `id` in "audit", in one transaction; a transfer already audited is not repeated.
/// Returns how many attempts it took.
pub async fn transfer(
    db: &Database,
    attempts: usize,
    (id, from, to, amount): (Uuid, u32, u32, i64),
) -> Result<u64> {
    let tries = std::sync::atomic::AtomicU64::new(0);
    db.run(TxMode::ForWriting, attempts, |tx| {
        tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let mut audit = db.open_btree::<Uuid, (u32, u32, i64)>(&tx, "audit")?;
            if audit.contains_key(&id).await? {
                return Ok(());
            }
            let mut acc = db.open_btree::<u32, i64>(&tx, "accounts")?;
            let a = acc.get(&from).await?.unwrap_or(0);
            let b = acc.get(&to).await?.unwrap_or(0);
            acc.update(&from, a - amount).await?;
            acc.update(&to, b + amount).await?;
            audit.add(id, (from, to, amount)).await?;
            Ok(())
        }
    })
    .await?;
    Ok(tries.into_inner())
}

/// The two stores of the crash, fault and power-loss tests: "a" (values in nodes) and "b"
/// (big values, written ahead), both with small nodes so a few items split and merge.
pub fn two_stores(i: usize) -> StoreOptions {
    if i == 0 {
        StoreOptions::new("a").slot_length(4)
    } else {
        StoreOptions::with_value_size("b", ValueDataSize::Big).slot_length(4)
    }
}

/// Creates both stores of [`two_stores`] with keys `0..40` = `"old{k}"`, in one commit.
pub async fn fill_two(db: &Database) {
    let tx = db.begin(TxMode::ForWriting);
    for i in 0..2 {
        let mut t = db.new_btree::<u32, String>(&tx, &two_stores(i)).unwrap();
        for k in 0..40 {
            t.add(k, format!("old{k}")).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// The contents of both stores.
pub type TwoStores = [BTreeMap<u32, String>; 2];

/// Reads both stores in one read-only transaction, checking counts and tree invariants.
pub async fn read_two(db: &Database) -> TwoStores {
    let tx = db.begin(TxMode::ForReading);
    let mut out: TwoStores = Default::default();
    for (i, m) in out.iter_mut().enumerate() {
        let t = db
            .open_btree::<u32, String>(&tx, &two_stores(i).name)
            .unwrap();
        for it in t.range(..).collect().await.unwrap() {
            m.insert(it.key, it.value);
        }
        assert_eq!(t.count().unwrap(), m.len() as u64, "store {i} count");
        t.check().await.unwrap();
    }
    tx.commit().await.unwrap();
    out
}

/// After a recovery: every tree checks out with the counts it should have, and the database
/// verifies clean. `at` names the case in messages.
pub async fn assert_recovered(db: &Database, got: &TwoStores, at: &str) {
    let tx = db.begin(TxMode::ForReading);
    for (i, items) in got.iter().enumerate() {
        let name = two_stores(i).name;
        let t = db.open_btree::<u32, String>(&tx, &name).unwrap();
        t.check().await.unwrap();
        assert_eq!(
            t.count().unwrap(),
            items.len() as u64,
            "{at}: store {name} count"
        );
    }
    tx.commit().await.unwrap();
    assert_verified(db, at).await;
}

/// Accounts of the bank tests, and each one's opening balance.
pub const ACCOUNTS: u32 = 100;
/// The opening balance.
pub const START: i64 = 1_000;

/// The next random transfer `(from, to, amount)` from a xorshift state; `None` when it would
/// move money from an account to itself.
pub fn next_transfer(state: &mut u64) -> Option<(u32, u32, i64)> {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let s = *state;
    let from = u32::try_from(s % u64::from(ACCOUNTS)).unwrap();
    let to = u32::try_from((s >> 20) % u64::from(ACCOUNTS)).unwrap();
    let amount = i64::try_from((s >> 40) % 50).unwrap() + 1;
    (from != to).then_some((from, to, amount))
}

/// Creates the bank: "accounts" (`ACCOUNTS` accounts of `START`) and an empty "audit".
pub async fn create_bank(db: &Database) {
    let tx = db.begin(TxMode::ForWriting);
    let mut acc = db
        .new_btree::<u32, i64>(&tx, &StoreOptions::new("accounts").slot_length(16))
        .unwrap();
    for a in 0..ACCOUNTS {
        acc.add(a, START).await.unwrap();
    }
    db.new_btree::<Uuid, (u32, u32, i64)>(&tx, &StoreOptions::new("audit"))
        .unwrap();
    tx.commit().await.unwrap();
}

/// The bank's invariants: the total is conserved, every transfer reported committed is in the
/// audit, the balances are exactly what replaying the audit gives, and both trees check out.
/// Returns how many transfers the audit holds.
pub async fn assert_bank(db: &Database, committed: &BTreeSet<Uuid>) -> usize {
    let tx = db.begin(TxMode::ForReading);
    let acc = db.open_btree::<u32, i64>(&tx, "accounts").unwrap();
    let audit = db
        .open_btree::<Uuid, (u32, u32, i64)>(&tx, "audit")
        .unwrap();
    let total: i64 = acc
        .range(..)
        .collect()
        .await
        .unwrap()
        .iter()
        .map(|i| i.value)
        .sum();
    assert_eq!(
        total,
        i64::from(ACCOUNTS) * START,
        "money was created or lost"
    );
    let entries = audit.range(..).collect().await.unwrap();
    let ids: BTreeSet<Uuid> = entries.iter().map(|i| i.key).collect();
    assert!(
        committed.is_subset(&ids),
        "a reported transfer is missing from the audit"
    );
    let mut balances = vec![START; ACCOUNTS as usize];
    for it in &entries {
        let (from, to, amount) = it.value;
        balances[from as usize] -= amount;
        balances[to as usize] += amount;
    }
    for (a, want) in balances.iter().enumerate() {
        assert_eq!(
            acc.get(&(a as u32)).await.unwrap(),
            Some(*want),
            "account {a}"
        );
    }
    acc.check().await.unwrap();
    audit.check().await.unwrap();
    tx.commit().await.unwrap();
    entries.len()
}
