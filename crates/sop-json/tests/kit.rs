//! The factory reset kit: exported from a database, it rebuilds exactly its JSON stores when
//! the database is deleted or damaged (the damaged folder kept aside), restores a deleted
//! store, and a kit with an error is refused naming the line and field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::json;
use sop_core::{Error, StoreOptions, UsageError};
use sop_database::Database;
use sop_json::kit::{Kit, Restored, open_or_restore};
use sop_json::{IndexSpec, JsonItem, JsonStore, PagingInfo};
use sop_txn::TxMode;

async fn build(path: &Path) -> anyhow::Result<()> {
    let db = Database::standalone(path)?;
    let tx = db.begin(TxMode::ForWriting);
    let mut people = JsonStore::new(
        &tx,
        &StoreOptions::new("people").slot_length(8),
        Some(IndexSpec::new().field("last", true).field("age", false)),
    )?;
    for i in 0..40 {
        people
            .add(&[JsonItem::new(
                json!({"last": format!("n{}", i % 7), "age": i}),
                json!({"i": i, "tags": ["x", i]}),
            )])
            .await?;
    }
    let mut plain = JsonStore::new(
        &tx,
        &sop_core::StoreOptions::with_value_size("docs", sop_core::ValueDataSize::Medium),
        None,
    )?;
    plain
        .add(&[
            JsonItem::new(json!(1), json!("one")),
            JsonItem::new(json!("k"), json!(null)),
        ])
        .await?;
    // A typed store: not in a JSON kit (its bytes mean what only its program knows).
    let mut typed = tx.new_btree::<u32, String>(&StoreOptions::new("typed"))?;
    typed.add(1, "x".into()).await?;
    tx.commit().await?;
    Ok(())
}

/// Every JSON store's items, in order, with the store's spec.
async fn contents(
    db: &Database,
) -> anyhow::Result<Vec<(String, Option<IndexSpec>, Vec<JsonItem>)>> {
    let tx = db.begin(TxMode::ForReading);
    let mut out = Vec::new();
    for name in tx.stores()? {
        if !JsonStore::is_json_store(&tx, &name)? {
            continue;
        }
        let mut s = JsonStore::open(&tx, &name)?;
        let mut items = s.get_items(&PagingInfo::new(1000)).await?;
        for i in &mut items {
            i.id = None;
        }
        out.push((name, s.spec().cloned(), items));
    }
    Ok(out)
}

#[tokio::test]
async fn a_deleted_or_damaged_database_comes_back_as_the_kit_says() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let path = root.path().join("db");
    build(&path).await?;
    let (kit_text, want) = {
        let db = Database::standalone(&path)?;
        let tx = db.begin(TxMode::ForReading);
        let (kit, skipped) = Kit::export(&tx).await?;
        assert_eq!(skipped, vec!["typed".to_string()]);
        drop(tx);
        (kit.to_json()?, contents(&db).await?)
    };
    assert_eq!(want.len(), 2);
    let kit = Kit::from_json(&kit_text)?;

    // Fine: opened as it is, nothing rebuilt.
    let (db, what) = open_or_restore(&path, &kit).await?;
    assert_eq!(what, Restored::Opened { stores: vec![] });
    drop(db);

    // Deleted: made from the kit.
    std::fs::remove_dir_all(&path)?;
    let (db, what) = open_or_restore(&path, &kit).await?;
    assert_eq!(what, Restored::Created);
    assert_eq!(contents(&db).await?, want);
    drop(db);

    // One store removed: that store comes back, the rest is kept.
    {
        let db = Database::standalone(&path)?;
        db.remove_btree("docs")?;
        let tx = db.begin(TxMode::ForWriting);
        let mut p = JsonStore::open(&tx, "people")?;
        p.add(&[JsonItem::new(
            json!({"last": "zz", "age": 1}),
            json!("kept"),
        )])
        .await?;
        tx.commit().await?;
    }
    let (db, what) = open_or_restore(&path, &kit).await?;
    assert_eq!(
        what,
        Restored::Opened {
            stores: vec!["docs".into()]
        }
    );
    let tx = db.begin(TxMode::ForReading);
    assert_eq!(
        JsonStore::open(&tx, "people")?.count()?,
        41,
        "a fine store keeps its data"
    );
    drop(tx);
    drop(db);

    // Damaged: every byte of the log's segments after their headers overwritten.
    for entry in std::fs::read_dir(path.join("log"))? {
        let p = entry?.path();
        let mut bytes = std::fs::read(&p)?;
        for b in bytes.iter_mut().skip(64) {
            *b ^= 0x5A;
        }
        std::fs::write(&p, bytes)?;
    }
    let (db, what) = open_or_restore(&path, &kit).await?;
    let Restored::Rebuilt { moved_to, cause } = what else {
        panic!("damage not detected: {what:?}");
    };
    assert!(
        moved_to.join("log").is_dir(),
        "the damaged folder is kept aside: {cause}"
    );
    assert_eq!(contents(&db).await?, want, "exactly the kit's contents");
    Ok(())
}

#[tokio::test]
async fn leftovers_of_interrupted_writes_are_repaired_not_rebuilt() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let path = root.path().join("db");
    build(&path).await?;
    let want = contents(&Database::standalone(&path)?).await?;
    // A temporary file an interrupted write left: verify reports it, a repair removes it.
    std::fs::write(path.join("meta/stores/people.store.tmp"), b"half written")?;
    let kit = Kit::new();
    let (db, what) = open_or_restore(&path, &kit).await?;
    assert_eq!(what, Restored::Opened { stores: vec![] });
    assert_eq!(contents(&db).await?, want, "the data stays");
    assert!(!path.join("meta/stores/people.store.tmp").exists());
    assert_eq!(
        std::fs::read_dir(root.path())?.count(),
        1,
        "nothing moved aside"
    );
    Ok(())
}

#[tokio::test]
async fn a_database_in_use_is_never_rebuilt() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let path = root.path().join("db");
    build(&path).await?;
    let _open = Database::standalone(&path)?;
    let e = open_or_restore(&path, &Kit::new()).await.unwrap_err();
    assert!(matches!(e, Error::Usage(UsageError::InUse { .. })), "{e}");
    assert!(
        std::fs::read_dir(root.path())?.count() == 1,
        "nothing moved aside"
    );
    Ok(())
}

fn kit_error(text: &str) -> (usize, String, String) {
    match Kit::from_json(text) {
        Err(Error::Usage(UsageError::InvalidDocument {
            line,
            field,
            reason,
            ..
        })) => (line, field, reason),
        other => panic!("not refused as a document error: {other:?}"),
    }
}

#[test]
fn a_kit_with_an_error_names_the_line_and_field() {
    let good = r#"{
  "format": "sop-restore-kit",
  "version": 1,
  "stores": [
    {
      "name": "people",
      "index": {"index_fields": [{"field_name": "last", "ascending_sort_order": true}]},
      "items": [
        {"key": {"last": "a"}, "value": 1},
        {"key": {"last": "b"}, "value": 2}
      ]
    }
  ]
}"#;
    assert_eq!(Kit::from_json(good).unwrap().stores[0].items.len(), 2);

    // Malformed JSON: where the parser stopped.
    let (line, _, _) = kit_error(&good.replace(r#""value": 2}"#, r#""value": 2,}"#));
    assert_eq!(line, 10);
    // A wrong type: the field's path and line.
    let (line, field, reason) = kit_error(&good.replace(r#""version": 1"#, r#""version": "one""#));
    assert_eq!((line, field.as_str()), (3, "version"), "{reason}");
    // A misspelt option is an error, never ignored.
    let (line, field, reason) = kit_error(&good.replace(
        r#""name": "people","#,
        r#""name": "people", "options": {"slot_lenght": 9},"#,
    ));
    assert_eq!(
        (line, field.as_str()),
        (6, "stores[0].options.slot_lenght"),
        "{reason}"
    );
    assert!(reason.contains("unknown field"), "{reason}");
    // A duplicate key in a unique store: the second item's line.
    let (line, field, reason) = kit_error(&good.replace(r#"{"last": "b"}"#, r#"{"last": "a"}"#));
    assert_eq!(
        (line, field.as_str()),
        (10, "stores[0].items[1].key"),
        "{reason}"
    );
    // A key the index cannot order.
    let (line, field, _) = kit_error(&good.replace(r#"{"last": "b"}"#, r#""b""#));
    assert_eq!((line, field.as_str()), (10, "stores[0].items[1].key"));
    // A bad store name.
    let (line, field, _) = kit_error(&good.replace(r#""name": "people""#, r#""name": "../etc""#));
    assert_eq!((line, field.as_str()), (6, "stores[0].name"));
    // Not a kit.
    let (line, field, _) = kit_error(&good.replace("sop-restore-kit", "zip"));
    assert_eq!((line, field.as_str()), (2, "format"));
    // Missing field.
    let (_, _, reason) = kit_error(r#"{"format": "sop-restore-kit", "version": 1}"#);
    assert!(reason.contains("stores"), "{reason}");
}
