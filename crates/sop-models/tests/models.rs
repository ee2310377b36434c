//! SOP's model store test (5 categories x 20 models), version semantics, artifacts, and a
//! model saved with data in one transaction that rolls back: neither is found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::{Deserialize, Serialize};
use serde_json::json;
use sop_core::StoreOptions;
use sop_database::Database;
use sop_models::ModelStore;
use sop_txn::TxMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Model {
    name: String,
    weights: Vec<f32>,
    bias: f32,
}

#[tokio::test]
async fn five_categories_of_twenty_models() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut store = ModelStore::open_or_create(&tx, "ai")?;
    for c in 0..5 {
        for m in 0..20 {
            let model = Model {
                name: format!("model-{m}"),
                weights: vec![m as f32, c as f32],
                bias: 0.5,
            };
            assert_eq!(
                store
                    .save(&format!("cat-{c}"), &format!("model-{m}"), &model)
                    .await?,
                1
            );
        }
    }
    tx.commit().await?;

    let tx = db.begin(TxMode::ForWriting);
    let mut store = ModelStore::open_or_create(&tx, "ai")?;
    for c in 0..5 {
        assert_eq!(store.list(&format!("cat-{c}")).await?.len(), 20);
    }
    assert_eq!(
        store.categories().await?,
        (0..5).map(|c| format!("cat-{c}")).collect::<Vec<_>>()
    );
    let (v, m) = store
        .load::<Model>("cat-2", "model-10")
        .await?
        .expect("saved");
    assert_eq!(
        (v, m),
        (
            1,
            Model {
                name: "model-10".into(),
                weights: vec![10.0, 2.0],
                bias: 0.5
            }
        )
    );
    assert!(store.list("non-existent").await?.is_empty());
    // Delete then load in the same transaction: gone; deleting a missing model is no error.
    assert_eq!(store.delete("cat-2", "model-10").await?, 1);
    assert!(store.load::<Model>("cat-2", "model-10").await?.is_none());
    assert_eq!(store.delete("cat-2", "model-10").await?, 0);
    assert_eq!(store.list("cat-2").await?.len(), 19);
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn versions_are_real() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut s = ModelStore::open_or_create(&tx, "reg")?;
    assert_eq!(s.save("nlp", "coder", &json!({"v": "one"})).await?, 1);
    assert_eq!(s.save("nlp", "coder", &json!({"v": "two"})).await?, 2);
    assert_eq!(s.save("nlp", "coder", &json!({"v": "three"})).await?, 3);
    assert_eq!(s.save("nlp", "coder-b", &json!({"v": "other"})).await?, 1);
    tx.commit().await?;

    let tx = db.begin(TxMode::ForWriting);
    let mut s = ModelStore::open(&tx, "reg")?;
    assert_eq!(s.versions("nlp", "coder").await?, vec![1, 2, 3]);
    assert_eq!(
        s.load::<serde_json::Value>("nlp", "coder").await?,
        Some((3, json!({"v": "three"})))
    );
    assert_eq!(
        s.load_version::<serde_json::Value>("nlp", "coder", 1)
            .await?,
        Some(json!({"v": "one"}))
    );
    assert_eq!(
        s.load_version::<serde_json::Value>("nlp", "coder", 9)
            .await?,
        None
    );
    assert!(s.get("nlp", "coder", 2).await?.unwrap().saved_ms > 0);
    // Deleting the latest: the one before is the latest; numbers are not reused.
    assert!(s.delete_version("nlp", "coder", 3).await?);
    assert!(!s.delete_version("nlp", "coder", 3).await?);
    assert_eq!(s.latest("nlp", "coder").await?.unwrap().key.version, 2);
    assert_eq!(s.save("nlp", "coder", &json!({"v": "four"})).await?, 4);
    assert_eq!(s.versions("nlp", "coder").await?, vec![1, 2, 4]);
    // Delete every version one by one: the model is gone, and starts again at 1.
    for v in [1, 2, 4] {
        assert!(s.delete_version("nlp", "coder", v).await?);
    }
    assert_eq!(s.list("nlp").await?, vec!["coder-b".to_string()]);
    assert_eq!(s.save("nlp", "coder", &json!({})).await?, 1);
    // Metadata of another shape is a typed error, not a panic.
    let e = s.load::<Model>("nlp", "coder-b").await.unwrap_err();
    assert_eq!(e.kind(), sop_core::ErrorKind::Corruption, "{e}");
    // Empty names are refused.
    assert!(s.save("", "x", &json!(1)).await.is_err());
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn artifacts_belong_to_a_version() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    let mut s = ModelStore::open_or_create(&tx, "reg")?;
    let v1 = s.save("vision", "resnet", &json!({"layers": 50})).await?;
    let v2 = s.save("vision", "resnet", &json!({"layers": 101})).await?;
    for (v, fill) in [(v1, 1u8), (v2, 2u8)] {
        for a in ["weights", "config"] {
            let mut w = s.artifact_writer("vision", "resnet", v, a).await?;
            w.write_all(&vec![fill; 300_000]).await?;
            w.shutdown().await?;
        }
    }
    // No artifact for a version that is not saved.
    assert!(
        s.artifact_writer("vision", "resnet", 7, "weights")
            .await
            .is_err()
    );
    tx.commit().await?;

    let tx = db.begin(TxMode::ForWriting);
    let mut s = ModelStore::open(&tx, "reg")?;
    assert_eq!(
        s.artifact_names("vision", "resnet", v2).await?,
        vec!["config".to_string(), "weights".to_string()]
    );
    let mut r = s
        .artifact_reader("vision", "resnet", v2, "weights")
        .await?
        .expect("stored");
    let mut back = Vec::new();
    r.read_to_end(&mut back).await?;
    assert_eq!(back, vec![2u8; 300_000]);
    // Deleting a version removes its artifacts, not the other version's.
    assert!(s.delete_version("vision", "resnet", v2).await?);
    assert!(
        s.artifact_reader("vision", "resnet", v2, "weights")
            .await?
            .is_none()
    );
    assert!(
        s.artifact_reader("vision", "resnet", v1, "weights")
            .await?
            .is_some()
    );
    assert_eq!(s.delete("vision", "resnet").await?, 1);
    assert_eq!(s.artifacts().keys().await?.len(), 0);
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_model_and_its_data_roll_back_together() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let tx = db.begin(TxMode::ForWriting);
    ModelStore::open_or_create(&tx, "reg")?;
    tx.new_btree::<u64, Vec<f32>>(&StoreOptions::new("vectors"))?;
    tx.commit().await?;

    // "Atomic training": a model, its weights and the vectors it was trained on, one
    // transaction, rolled back.
    let tx = db.begin(TxMode::ForWriting);
    let mut s = ModelStore::open(&tx, "reg")?;
    let mut vectors = tx.open_btree::<u64, Vec<f32>>("vectors")?;
    for i in 0..100u64 {
        vectors.add(i, vec![i as f32; 8]).await?;
    }
    let v = s.save("emb", "tiny", &json!({"dim": 8})).await?;
    let mut w = s.artifact_writer("emb", "tiny", v, "weights").await?;
    w.write_all(&[9u8; 4096]).await?;
    w.shutdown().await?;
    tx.rollback().await?;

    let tx = db.begin(TxMode::ForReading);
    let mut s = ModelStore::open(&tx, "reg")?;
    let vectors = tx.open_btree::<u64, Vec<f32>>("vectors")?;
    assert!(s.load::<serde_json::Value>("emb", "tiny").await?.is_none());
    assert!(
        s.artifact_reader("emb", "tiny", 1, "weights")
            .await?
            .is_none()
    );
    assert_eq!(vectors.count()?, 0);
    drop(tx);

    // The same, committed: all of it is there.
    let tx = db.begin(TxMode::ForWriting);
    let mut s = ModelStore::open(&tx, "reg")?;
    let mut vectors = tx.open_btree::<u64, Vec<f32>>("vectors")?;
    vectors.add(1, vec![1.0; 8]).await?;
    s.save("emb", "tiny", &json!({"dim": 8})).await?;
    tx.commit().await?;
    let tx = db.begin(TxMode::ForReading);
    let mut s = ModelStore::open(&tx, "reg")?;
    assert_eq!(s.versions("emb", "tiny").await?, vec![1]);
    assert_eq!(tx.open_btree::<u64, Vec<f32>>("vectors")?.count()?, 1);
    Ok(())
}
