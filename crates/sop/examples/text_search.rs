//! Text search: indexes a real corpus found on any machine that built this project, the
//! Markdown files of the crates in Cargo's registry cache (`$CARGO_HOME/registry/src`, the
//! package registry's own text), in transactions of 200 documents; then runs queries and
//! reports documents/s and queries/s. `cargo xtask bench --search` runs it with more queries.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sop::search::SearchIndex;
use sop::{Database, TxMode};

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>, limit: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if out.len() >= limit {
            return;
        }
        if p.is_dir() {
            markdown_files(&p, out, limit);
        } else if p.extension().is_some_and(|e| e == "md") {
            out.push(p);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args.get(i + 1).map_or(Ok(20), |s| s.parse())?,
        None => 20,
    };
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or_else(|| anyhow::anyhow!("no CARGO_HOME or HOME"))?;
    let root = home.join("registry").join("src");
    let mut files = Vec::new();
    markdown_files(&root, &mut files, 5_000);
    anyhow::ensure!(
        !files.is_empty(),
        "no Markdown files under {}",
        root.display()
    );
    let docs: Vec<(String, String)> = files
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let id = p.strip_prefix(&root).unwrap_or(p).display().to_string();
            Some((id, text))
        })
        .collect();
    let bytes: usize = docs.iter().map(|d| d.1.len()).sum();
    println!(
        "corpus: {} Markdown files of the crates in {} ({:.1} MiB)",
        docs.len(),
        root.display(),
        bytes as f64 / (1 << 20) as f64
    );

    let dir = tempfile::tempdir()?;
    let db = Database::standalone(dir.path())?;
    let t = Instant::now();
    for batch in docs.chunks(200) {
        let tx = db.begin(TxMode::ForWriting);
        let mut idx = SearchIndex::open_or_create(&tx, "crates")?;
        for (id, text) in batch {
            idx.add(id, text).await?;
        }
        tx.commit().await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "indexed in {secs:.1} s: {:.0} documents/s, {:.1} MiB/s",
        docs.len() as f64 / secs,
        bytes as f64 / (1 << 20) as f64 / secs
    );

    let queries = [
        "async runtime",
        "serialize json",
        "error handling",
        "hash map",
        "unsafe code",
        "license apache mit",
        "parse command line arguments",
        "thread pool",
        "random number generator",
        "unicode",
    ];
    let tx = db.begin(TxMode::ForReading);
    let idx = SearchIndex::open(&tx, "crates")?;
    for q in &queries[..4] {
        println!("\n\"{q}\":");
        for h in idx.search(q, 3).await? {
            println!("  {:>7.3}  {}", h.score, h.doc_id);
        }
    }
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        for q in &queries {
            idx.search(q, 10).await?;
            n += 1;
        }
    }
    println!(
        "\n{n} queries (top 10): {:.0} queries/s",
        f64::from(n) / t.elapsed().as_secs_f64()
    );
    Ok(())
}
