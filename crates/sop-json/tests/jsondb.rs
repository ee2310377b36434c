//! SOP's jsondb scenarios: CRUD in batches, paging both ways with offsets and fetch counts,
//! index specifications ascending and descending, reopening without a specification, keys
//! with differing field sets, primitive keys, and misuse as typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sop_core::{ErrorKind, StoreOptions};
use sop_database::Database;
use sop_json::{Direction, IndexSpec, JsonItem, JsonStore, PagingInfo};
use sop_txn::TxMode;

fn person(last: &str, age: i64) -> JsonItem {
    JsonItem::new(
        json!({"last": last, "age": age}),
        json!({"note": format!("{last}-{age}")}),
    )
}

fn keys(page: &[JsonItem]) -> Vec<Value> {
    page.iter().map(|i| i.key.clone()).collect()
}

fn paging(offset: usize, size: usize, fetch: usize, direction: Direction) -> PagingInfo {
    PagingInfo {
        page_offset: offset,
        page_size: size,
        fetch_count: fetch,
        direction,
    }
}

#[tokio::test]
async fn crud_in_batches() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut s = JsonStore::new(&tx, &StoreOptions::new("people"), None)?;
    let items: Vec<JsonItem> = (0..20)
        .map(|i| JsonItem::new(json!(i), json!({"n": i})))
        .collect();
    assert!(s.add(&items).await?);
    assert!(
        !s.add(&items[..1]).await?,
        "an existing key makes a batch false"
    );
    assert!(
        !s.add_if_not_exist(&[items[0].clone(), JsonItem::new(json!(99), json!(1))])
            .await?
    );
    assert_eq!(s.get(&json!(99)).await?, Some(json!(1)));
    assert!(s.update(&[JsonItem::new(json!(3), json!("three"))]).await?);
    assert!(
        !s.update(&[JsonItem::new(json!(1000), json!("none"))])
            .await?
    );
    assert!(
        s.upsert(&[
            JsonItem::new(json!(4), json!("four")),
            JsonItem::new(json!(500), json!(5))
        ])
        .await?
    );
    assert!(s.remove(&[json!(5), json!(6)]).await?);
    assert!(
        !s.remove(&[json!(7), json!(777)]).await?,
        "a missing key makes a batch false"
    );
    assert_eq!(s.count()?, 20 + 1 + 1 - 3);
    tx.commit().await?;

    let tx = db.begin(TxMode::ForReading);
    let mut s = JsonStore::open(&tx, "people")?;
    assert_eq!(s.get(&json!(3)).await?, Some(json!("three")));
    assert_eq!(s.get(&json!(4)).await?, Some(json!("four")));
    assert_eq!(s.get(&json!(5)).await?, None);
    // GetValues: by key, by id; a missing key echoes the item.
    let page = s.get_keys(&PagingInfo::new(3)).await?;
    assert_eq!(keys(&page), vec![json!(0), json!(1), json!(2)]);
    let id = page[1].id.expect("ids in key pages");
    let got = s
        .get_values(&[
            JsonItem {
                key: json!(1),
                value: None,
                id: Some(id),
            },
            JsonItem::key(json!(4242)),
        ])
        .await?;
    assert_eq!(got[0].value, Some(json!({"n": 1})));
    assert_eq!(got[1], JsonItem::key(json!(4242)));
    Ok(())
}

#[tokio::test]
async fn paging_forward_and_backward() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut s = JsonStore::new(&tx, &StoreOptions::new("p").slot_length(4), None)?;
    let items: Vec<JsonItem> = (0..25)
        .map(|i| JsonItem::new(json!(i), json!(i * 10)))
        .collect();
    s.add(&items).await?;
    tx.commit().await?;

    let tx = db.begin(TxMode::ForReading);
    let mut s = JsonStore::open(&tx, "p")?;
    let ints = |page: &[JsonItem]| {
        page.iter()
            .map(|i| i.key.as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    // No cursor, offset 0: from the first item; the cursor then continues.
    assert_eq!(
        ints(&s.get_items(&paging(0, 5, 0, Direction::Forward)).await?),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        ints(&s.get_items(&paging(0, 5, 0, Direction::Forward)).await?),
        vec![5, 6, 7, 8, 9]
    );
    // Skip one page of 5, fetch 3.
    assert_eq!(
        ints(&s.get_items(&paging(1, 5, 3, Direction::Forward)).await?),
        vec![15, 16, 17]
    );
    // Backward from a found key.
    assert!(s.find(&json!(12)).await?);
    assert_eq!(
        ints(&s.get_items(&paging(0, 4, 0, Direction::Backward)).await?),
        vec![12, 11, 10, 9]
    );
    assert!(s.find(&json!(12)).await?);
    assert_eq!(
        ints(&s.get_keys(&paging(2, 4, 2, Direction::Backward)).await?),
        vec![4, 3]
    );
    // Past the end: a short page, then nothing more in that direction (never the first page
    // again: a client paging until an empty page stops).
    assert!(s.find(&json!(22)).await?);
    assert_eq!(
        ints(&s.get_items(&paging(0, 5, 0, Direction::Forward)).await?),
        vec![22, 23, 24]
    );
    assert!(
        s.get_items(&paging(0, 5, 0, Direction::Forward))
            .await?
            .is_empty()
    );
    assert!(
        s.get_items(&paging(1, 5, 0, Direction::Forward))
            .await?
            .is_empty()
    );
    // Every item exactly once, paging forward and backward to an empty page.
    for (dir, first) in [(Direction::Forward, true), (Direction::Backward, false)] {
        let mut all = Vec::new();
        let mut pager = JsonStore::open(&tx, "p")?;
        if first {
            assert!(pager.first().await?);
        } else {
            assert!(pager.last().await?);
        }
        loop {
            let page = pager.get_keys(&paging(0, 7, 0, dir)).await?;
            if page.is_empty() {
                break;
            }
            all.extend(ints(&page));
            assert!(all.len() <= 25, "paging wrapped around: {all:?}");
        }
        let mut want: Vec<i64> = (0..25).collect();
        if !first {
            want.reverse();
        }
        assert_eq!(all, want);
    }
    // Values come with items, not with keys.
    assert!(s.first().await?);
    let page = s.get_items(&paging(0, 1, 0, Direction::Forward)).await?;
    assert_eq!(page[0].value, Some(json!(0)));
    let mut s2 = JsonStore::open(&tx, "p")?;
    let page = s2.get_keys(&paging(0, 1, 0, Direction::Backward)).await?;
    assert_eq!(
        (page[0].key.clone(), page[0].value.clone()),
        (json!(24), None)
    );
    // Misuse: typed errors.
    let mut fresh = JsonStore::open(&tx, "p")?;
    let e = fresh
        .get_items(&paging(0, 0, 0, Direction::Forward))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    let mut fresh = JsonStore::open(&tx, "p")?;
    let e = fresh
        .get_items(&paging(2, 3, 0, Direction::Forward))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Usage,
        "an offset with no cursor placed: {e}"
    );
    assert!(!fresh.find(&json!(1000)).await?); // past the end
    assert!(
        fresh
            .get_items(&paging(0, 3, 0, Direction::Forward))
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn index_spec_orders_fields_ascending_and_descending_and_survives_reopen()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = Database::standalone(dir.path())?;
        let tx = db.begin(TxMode::ForWriting);
        let spec = IndexSpec::from_json(
            r#"{"index_fields":[{"field_name":"last","ascending_sort_order":true},
                                {"field_name":"age","ascending_sort_order":false}]}"#,
        )?;
        let mut s = JsonStore::new(&tx, &StoreOptions::new("people"), Some(spec))?;
        s.add(&[
            person("b", 30),
            person("a", 20),
            person("b", 40),
            person("a", 50),
            person("c", 1),
        ])
        .await?;
        // A key that is not an object cannot be ordered by fields: typed error.
        let e = s
            .add(&[JsonItem::new(json!("x"), json!(1))])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
        tx.commit().await?;
    }
    // Reopened database, store opened without a specification: the recorded one orders it.
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut s = JsonStore::open(&tx, "people")?;
    assert_eq!(s.spec().map(|sp| sp.index_fields.len()), Some(2));
    let page = s.get_keys(&PagingInfo::new(10)).await?;
    let order: Vec<(String, i64)> = page
        .iter()
        .map(|i| {
            (
                i.key["last"].as_str().unwrap().to_string(),
                i.key["age"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("a".into(), 50),
            ("a".into(), 20),
            ("b".into(), 40),
            ("b".into(), 30),
            ("c".into(), 1)
        ]
    );
    // Adding after the reopen goes where the recorded order says.
    s.add(&[person("b", 35)]).await?;
    assert!(s.find(&json!({"last": "b", "age": 35})).await?);
    assert!(s.next().await?);
    assert_eq!(
        s.current_item().await?.unwrap().key,
        json!({"last": "b", "age": 30})
    );
    // Fields outside the specification ride along: the same indexed fields find the item.
    assert_eq!(
        s.get(&json!({"last": "c", "age": 1, "extra": "ignored"}))
            .await?,
        Some(json!({"note": "c-1"}))
    );
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn keys_with_differing_field_sets_and_types() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    // No specification: whole keys, whatever fields they have.
    let mut s = JsonStore::new(&tx, &StoreOptions::new("mixed"), None)?;
    let ks = [
        json!({"b": 1}),
        json!({"a": 1, "z": 0}),
        json!({"a": 1}),
        json!({"a": "1"}),
        json!({"a": 1.0}),
        json!({}),
        json!(7),
        json!("seven"),
        json!(null),
        json!([1, 2]),
    ];
    for (i, k) in ks.iter().enumerate() {
        assert!(s.add(&[JsonItem::new(k.clone(), json!(i))]).await?, "{k}");
    }
    assert_eq!(s.count()?, ks.len() as u64, "all distinct");
    for (i, k) in ks.iter().enumerate() {
        assert_eq!(s.get(k).await?, Some(json!(i)), "{k}");
    }
    // Pages start at the cursor (the last add left it on its item): from the first.
    assert!(s.first().await?);
    let all = keys(&s.get_keys(&PagingInfo::new(100)).await?);
    assert_eq!(
        all,
        vec![
            json!(null),
            json!(7),
            json!("seven"),
            json!([1, 2]),
            json!({}),
            json!({"a": 1}),
            json!({"a": 1, "z": 0}),
            json!({"a": 1.0}),
            json!({"a": "1"}),
            json!({"b": 1}),
        ]
    );
    // With a specification, a field missing from some keys orders them first.
    let mut t = JsonStore::new(
        &tx,
        &StoreOptions::new("sparse"),
        Some(IndexSpec::new().field("a", true)),
    )?;
    t.add(&[
        JsonItem::new(json!({"a": 2}), json!(0)),
        JsonItem::new(json!({"b": 9}), json!(0)),
        JsonItem::new(json!({"a": "x"}), json!(0)),
        JsonItem::new(json!({"a": null}), json!(0)),
    ])
    .await?;
    assert!(t.first().await?);
    let got = keys(&t.get_keys(&PagingInfo::new(10)).await?);
    assert_eq!(
        got,
        vec![
            json!({"b": 9}),
            json!({"a": null}),
            json!({"a": 2}),
            json!({"a": "x"})
        ]
    );
    tx.commit().await?;

    // A typed store is not a JSON store.
    let tx = db.begin(TxMode::ForWriting);
    tx.new_btree::<u32, u32>(&StoreOptions::new("typed"))?;
    tx.commit().await?;
    let tx = db.begin(TxMode::ForReading);
    let e = JsonStore::open(&tx, "typed").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    assert!(!JsonStore::is_json_store(&tx, "typed")?);
    assert!(JsonStore::is_json_store(&tx, "mixed")?);
    Ok(())
}

#[tokio::test]
async fn non_unique_stores_keep_equal_keys_by_id() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut s = JsonStore::new(&tx, &StoreOptions::new("log").unique(false), None)?;
    s.add(&[
        JsonItem::new(json!("k"), json!(1)),
        JsonItem::new(json!("k"), json!(2)),
    ])
    .await?;
    assert!(s.first().await?);
    let page = s.get_items(&PagingInfo::new(5)).await?;
    assert_eq!(page.len(), 2);
    let second = page[1].clone();
    assert!(
        s.update(&[JsonItem {
            key: json!("k"),
            value: Some(json!(22)),
            id: second.id
        }])
        .await?
    );
    let got = s
        .get_values(&[JsonItem {
            key: json!("k"),
            value: None,
            id: second.id,
        }])
        .await?;
    assert_eq!(got[0].value, Some(json!(22)));
    assert_eq!(
        s.get(&json!("k")).await?,
        Some(json!(1)),
        "the first one is untouched"
    );
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn float_keys_read_back_exactly_after_a_reopen() -> anyhow::Result<()> {
    // Keys are stored as JSON text: every f64 must parse back to itself, or a stored key
    // stops matching the key it was stored under.
    let dir = tempfile::tempdir()?;
    let floats: Vec<f64> = (0..2000u64)
        .map(|i| {
            f64::from_bits(
                0x3FB0_0000_0000_0000 + i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (1 << 52),
            )
        })
        .chain([
            0.09144338512092887,
            1e-300,
            123456.789e200,
            f64::MIN_POSITIVE,
        ])
        .collect();
    {
        let db = Database::standalone(dir.path())?;
        let tx = db.begin(TxMode::ForWriting);
        let mut s = JsonStore::new(&tx, &StoreOptions::new("f"), None)?;
        let items: Vec<JsonItem> = floats
            .iter()
            .map(|f| JsonItem::new(json!(f), json!(f)))
            .collect();
        assert!(s.add(&items).await?, "all distinct");
        tx.commit().await?;
    }
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForReading);
    let s = JsonStore::open(&tx, "f")?;
    for f in &floats {
        assert_eq!(s.get(&json!(f)).await?, Some(json!(f)), "{f:e}");
    }
    Ok(())
}

#[test]
fn an_index_spec_with_a_misspelt_field_is_refused() {
    let e = IndexSpec::from_json(r#"{"index_fields":[{"field_name":"age","ascending":false}]}"#)
        .unwrap_err();
    assert!(
        matches!(&e, sop_core::Error::Usage(sop_core::UsageError::InvalidDocument { field, .. }) if field.contains("index_fields[0]")),
        "{e}"
    );
}
