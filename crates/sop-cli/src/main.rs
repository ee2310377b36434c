//! `sop`: look into and edit a standalone sop-rs database from the shell.
//!
//! Stores made by the CLI map string keys to string values (JSON text with `--json`). Stores
//! of other key and value types can be listed and measured (`stores`, `stats`) but not read:
//! the encoding is binary and only the application knows its types.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sop::{Database, StoreOptions, TxMode};

mod agent;
mod serve;

const USAGE: &str = "usage:
  sop stores DIR                       list the stores
  sop stats DIR                        stores, counts, node fill, file sizes
  sop get DIR STORE KEY                print the value of KEY
  sop put [--json] DIR STORE KEY VALUE set KEY to VALUE (creates database and store)
  sop del DIR STORE KEY                remove KEY
  sop scan DIR STORE [FROM [TO]] [--limit N]
                                       print KEY<TAB>VALUE lines in key order, FROM..=TO
  sop verify DIR [--repair]            check every block, node, value and shard; with
                                       --repair remove leftovers and rebuild damaged shards
                                       (exit status 1 when problems remain)
  sop export DIR                       print a restore kit (JSON) of the JSON stores
  sop import DIR KIT                   add/replace the kit's items in DIR (creates stores)
  sop serve DIR [--addr IP:PORT] [--token-file FILE] [--no-auth] [--max-body B]
                [--max-upload B] [--tx-timeout-secs S]
                                       the REST server (127.0.0.1:8080; tokens from FILE of
                                       `rw TOKEN`/`ro TOKEN` lines, or SOP_TOKEN/SOP_READ_TOKEN)
  sop agent --config FILE [--db DIR] [--ingest] [--ask QUESTION]
                                       the agent of a JSON config (sop-agent): ingests its
                                       data when its stores are empty (--ingest: again),
                                       then answers QUESTION or runs a REPL
  sop restore DIR KIT                  open DIR, or rebuild it from KIT when it is missing
                                       or fails verify (the damaged folder is moved aside)

Keys and values are strings; --json checks that VALUE is JSON and stores it compactly.";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Multi-threaded: `serve` handles requests on both cores.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sop: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sop: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("serve") => return serve::run(&args[1..]).await,
        Some("agent") => return agent::run(&args[1..]).await,
        _ => {}
    }
    let json = take_flag(&mut args, "--json");
    let repair = take_flag(&mut args, "--repair");
    let limit = take_value(&mut args, "--limit")?
        .map(|s| s.parse::<usize>().context("--limit needs a number"))
        .transpose()?;
    let Some(cmd) = args.first().cloned() else {
        bail!("{USAGE}");
    };
    let rest = &args[1..];
    match (cmd.as_str(), rest) {
        ("stores", [dir]) => {
            let db = open(dir)?;
            for name in db.stores()? {
                println!("{name}");
            }
        }
        ("stats", [dir]) => stats(dir).await?,
        ("verify", [dir]) => verify(dir, repair).await?,
        ("get", [dir, store, key]) => {
            let db = open(dir)?;
            let tx = db.begin(TxMode::ForReading);
            let t = db.open_btree::<String, String>(&tx, store)?;
            let v = t.get(key).await?;
            tx.commit().await?;
            match v {
                Some(v) => println!("{v}"),
                None => bail!("key {key:?} is not in store {store:?}"),
            }
        }
        ("put", [dir, store, key, value]) => {
            let value = if json {
                let v: serde_json::Value =
                    serde_json::from_str(value).context("VALUE is not valid JSON")?;
                v.to_string()
            } else {
                value.clone()
            };
            let db = open_or_create(dir, true)?;
            let (store, key) = (store.clone(), key.clone());
            db.run(TxMode::ForWriting, 10, |tx| {
                let (db, store, key, value) = (&db, store.clone(), key.clone(), value.clone());
                async move {
                    let mut t =
                        db.open_or_create_btree::<String, String>(&tx, &StoreOptions::new(store))?;
                    t.upsert(key, value).await?;
                    Ok(())
                }
            })
            .await?;
        }
        ("del", [dir, store, key]) => {
            let db = open(dir)?;
            let removed = db
                .run(TxMode::ForWriting, 10, |tx| {
                    let (db, store, key) = (&db, store.clone(), key.clone());
                    async move {
                        let mut t = db.open_btree::<String, String>(&tx, &store)?;
                        t.remove(&key).await
                    }
                })
                .await?;
            if !removed {
                bail!("key {key:?} is not in store {store:?}");
            }
        }
        ("scan", [dir, store, bounds @ ..]) if bounds.len() <= 2 => {
            use std::ops::Bound;
            let lo = bounds
                .first()
                .map_or(Bound::Unbounded, |s| Bound::Included(s.clone()));
            let hi = bounds
                .get(1)
                .map_or(Bound::Unbounded, |s| Bound::Included(s.clone()));
            let db = open(dir)?;
            let tx = db.begin(TxMode::ForReading);
            let t = db.open_btree::<String, String>(&tx, store)?;
            // Printed as the range streams: a scan of any size holds a few nodes.
            let mut range = t.range((lo, hi));
            let mut left = limit.unwrap_or(usize::MAX);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            while left > 0
                && let Some(it) = range.next().await?
            {
                writeln!(out, "{}\t{}", it.key, it.value)?;
                left -= 1;
            }
            out.flush()?;
            drop(range);
            tx.commit().await?;
        }
        ("export", [dir]) => {
            let db = open(dir)?;
            let tx = db.begin(TxMode::ForReading);
            let (kit, skipped) = sop::kit::Kit::export(&tx).await?;
            drop(tx);
            for name in skipped {
                eprintln!(
                    "sop: store {name:?} left out: not a JSON store (its types are known only \
                     to the program that made it)"
                );
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            writeln!(out, "{}", kit.to_json()?)?;
            out.flush()?;
        }
        ("import", [dir, kit]) => {
            let kit = read_kit(kit)?;
            let db = open_or_create(dir, true)?;
            let tx = db.begin(TxMode::ForWriting);
            let n = kit.import(&tx).await?;
            tx.commit().await?;
            println!("imported {n} items into {} stores", kit.stores.len());
        }
        ("restore", [dir, kit]) => {
            let kit = read_kit(kit)?;
            let (_db, what) = sop::kit::open_or_restore(dir, &kit).await?;
            match what {
                sop::kit::Restored::Opened { stores } if stores.is_empty() => {
                    println!("{dir} opened and verified: nothing to restore");
                }
                sop::kit::Restored::Opened { stores } => {
                    println!(
                        "{dir} verified; restored missing stores: {}",
                        stores.join(", ")
                    );
                }
                sop::kit::Restored::Created => println!("{dir} created from the kit"),
                sop::kit::Restored::Rebuilt { moved_to, cause } => println!(
                    "{dir} rebuilt from the kit ({cause}); the damaged folder is at {}",
                    moved_to.display()
                ),
            }
        }
        _ => bail!("{USAGE}"),
    }
    Ok(())
}

fn read_kit(path: &str) -> anyhow::Result<sop::kit::Kit> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    sop::kit::Kit::from_json(&text).with_context(|| format!("restore kit {path}"))
}

fn open(dir: &str) -> anyhow::Result<Database> {
    open_or_create(dir, false)
}

fn open_or_create(dir: &str, create: bool) -> anyhow::Result<Database> {
    let path = Path::new(dir);
    if !create && !path.join("meta").exists() {
        bail!("{dir} is not a sop database folder (no meta/ inside)");
    }
    Database::standalone(path).with_context(|| format!("cannot open database {dir}"))
}

async fn stats(dir: &str) -> anyhow::Result<()> {
    let db = open(dir)?;
    let root = PathBuf::from(dir);
    println!(
        "{:<24} {:>10} {:>6} {:>6} {:>8} {:>6} {:>12}",
        "store", "items", "slots", "depth", "nodes", "fill%", "blob bytes"
    );
    for name in db.stores()? {
        let info = db
            .store_info(&name)?
            .with_context(|| format!("store {name} vanished"))?;
        let bytes = dir_bytes(&root.join("blobs").join(&name));
        // The tree shape needs the key type; CLI stores (string keys) can be walked.
        let tx = db.begin(TxMode::ForReading);
        let shape = match db.open_btree::<String, String>(&tx, &name) {
            Ok(t) => t.check().await.ok(),
            Err(_) => None,
        };
        drop(tx);
        match shape {
            Some(s) => println!(
                "{name:<24} {:>10} {:>6} {:>6} {:>8} {:>6.1} {bytes:>12}",
                info.count, info.slot_length, s.depth, s.nodes, s.fill_percent
            ),
            None => println!(
                "{name:<24} {:>10} {:>6} {:>6} {:>8} {:>6} {bytes:>12}",
                info.count, info.slot_length, "-", "-", "-"
            ),
        }
    }
    println!(
        "registry and store files: {} bytes; log: {} bytes",
        dir_bytes(&root.join("meta")),
        dir_bytes(&root.join("log"))
    );
    Ok(())
}

async fn verify(dir: &str, repair: bool) -> anyhow::Result<()> {
    let db = open(dir)?;
    let r = db.recovery();
    if r.replayed > 0 {
        println!(
            "open: {} commits replayed from the log into the registry",
            r.replayed
        );
    }
    if let Some(d) = &r.damage {
        println!(
            "DAMAGE found on open: {} offset {} (LSN {}): {}",
            d.file.display(),
            d.offset,
            d.lsn,
            d.detail
        );
    }
    let report = db.verify(repair).await?;
    for s in &report.stores {
        let order = match s.keys_ordered {
            Some(true) => "keys in order",
            Some(false) => "KEYS OUT OF ORDER",
            None => "key order not checked (application types)",
        };
        println!(
            "{}: {} items ({} recorded), {} nodes in {} pieces, depth {}, {} values outside nodes; {order}",
            s.name, s.items, s.count, s.nodes, s.node_pieces, s.depth, s.values
        );
    }
    for g in &report.segments {
        println!(
            "log segment {}: {} bytes, {} frames, {} bytes referenced",
            g.number, g.bytes, g.frames, g.live
        );
    }
    for what in &report.repaired {
        println!("repaired: {what}");
    }
    for what in &report.problems {
        println!("PROBLEM: {what}");
    }
    if !report.is_clean() {
        bail!(
            "{} problem(s) in {dir}{}",
            report.problems.len(),
            if repair {
                ""
            } else {
                " (try --repair for leftovers)"
            }
        );
    }
    println!("ok: {dir} verified, {} stores", report.stores.len());
    Ok(())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}

fn take_value(args: &mut Vec<String>, flag: &str) -> anyhow::Result<Option<String>> {
    let Some(i) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    if i + 1 >= args.len() {
        bail!("{flag} needs a value");
    }
    let v = args.remove(i + 1);
    args.remove(i);
    Ok(Some(v))
}
