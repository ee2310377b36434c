//! Models: a model registry with versions. Trains a tiny linear model three times, saving each
//! result as a new version with its metadata and its weights (a streamed artifact) in the same
//! transaction as the evaluation rows it was scored on; lists the versions, loads the latest
//! and the best, rolls back a bad experiment (nothing of it stays), and deletes an old version.

use serde::{Deserialize, Serialize};
use sop::models::ModelStore;
use sop::{Database, StoreOptions, TxMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    learning_rate: f32,
    epochs: u32,
    loss: f32,
    dims: usize,
}

/// Fits y = w.x by gradient descent on synthetic data; the weights and the final loss.
fn train(lr: f32, epochs: u32, dims: usize) -> (Vec<f32>, f32) {
    let truth: Vec<f32> = (0..dims).map(|i| (i as f32 * 0.37).sin()).collect();
    let data: Vec<(Vec<f32>, f32)> = (0..256)
        .map(|n| {
            let x: Vec<f32> = (0..dims)
                .map(|i| ((n * 31 + i * 7) % 17) as f32 / 17.0 - 0.5)
                .collect();
            let y = x.iter().zip(&truth).map(|(a, b)| a * b).sum();
            (x, y)
        })
        .collect();
    let mut w = vec![0f32; dims];
    let mut loss = 0.0;
    for _ in 0..epochs {
        loss = 0.0;
        for (x, y) in &data {
            let err = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() - y;
            loss += err * err;
            for (wi, xi) in w.iter_mut().zip(x) {
                *wi -= lr * err * xi;
            }
        }
        loss /= data.len() as f32;
    }
    (w, loss)
}

fn weights_bytes(w: &[f32]) -> Vec<u8> {
    w.iter().flat_map(|f| f.to_le_bytes()).collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let dims = 64;
    let tx = db.begin(TxMode::ForWriting);
    ModelStore::open_or_create(&tx, "registry")?;
    tx.new_btree::<(u64, u32), f32>(&StoreOptions::new("evaluations"))?;
    tx.commit().await?;

    for (lr, epochs) in [(0.05, 5), (0.1, 20), (0.2, 40)] {
        let (w, loss) = train(lr, epochs, dims);
        // One transaction: the model version, its weights and its evaluation rows.
        let tx = db.begin(TxMode::ForWriting);
        let mut models = ModelStore::open(&tx, "registry")?;
        let meta = Meta {
            learning_rate: lr,
            epochs,
            loss,
            dims,
        };
        let v = models.save("regression", "linear", &meta).await?;
        let mut out = models
            .artifact_writer("regression", "linear", v, "weights.f32")
            .await?;
        out.write_all(&weights_bytes(&w)).await?;
        out.shutdown().await?;
        let mut evals = tx.open_btree::<(u64, u32), f32>("evaluations")?;
        for e in 0..epochs {
            evals.add((v, e), loss).await?;
        }
        tx.commit().await?;
        println!("saved linear v{v}: lr {lr}, {epochs} epochs, loss {loss:.6}");
    }

    // A bad experiment, rolled back: neither the version nor its rows stay.
    let tx = db.begin(TxMode::ForWriting);
    let mut models = ModelStore::open(&tx, "registry")?;
    let v = models
        .save(
            "regression",
            "linear",
            &Meta {
                learning_rate: 9.0,
                epochs: 1,
                loss: f32::MAX,
                dims,
            },
        )
        .await?;
    tx.open_btree::<(u64, u32), f32>("evaluations")?
        .add((v, 0), f32::MAX)
        .await?;
    tx.rollback().await?;
    println!("rolled back an experiment that would have been v{v}");

    let tx = db.begin(TxMode::ForWriting);
    let mut models = ModelStore::open(&tx, "registry")?;
    let versions = models.versions("regression", "linear").await?;
    println!("versions: {versions:?}");
    let (latest, meta) = models
        .load::<Meta>("regression", "linear")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no model"))?;
    println!("latest: v{latest} {meta:?}");
    let mut best = (0, f32::MAX);
    for v in &versions {
        if let Some(m) = models
            .load_version::<Meta>("regression", "linear", *v)
            .await?
            && m.loss < best.1
        {
            best = (*v, m.loss);
        }
    }
    let mut r = models
        .artifact_reader("regression", "linear", best.0, "weights.f32")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no weights"))?;
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).await?;
    println!(
        "best: v{} (loss {:.6}), {} weights read back",
        best.0,
        best.1,
        bytes.len() / 4
    );
    models
        .delete_version("regression", "linear", versions[0])
        .await?;
    println!(
        "after deleting v{}: {:?}",
        versions[0],
        models.versions("regression", "linear").await?
    );
    let evals = tx.open_btree::<(u64, u32), f32>("evaluations")?;
    println!("evaluation rows: {}", evals.count()?);
    tx.commit().await?;
    Ok(())
}
