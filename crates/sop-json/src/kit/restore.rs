//! `open_or_restore`: open a sound database, or rebuild a missing or damaged one from a kit.

use std::path::{Path, PathBuf};

use sop_core::{Error, ErrorKind, Result, UsageError};
use sop_database::Database;
use sop_txn::TxMode;

use super::Kit;

/// What [`open_or_restore`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restored {
    /// The database opened and verified clean; kit stores it lacked were made (names).
    Opened {
        /// The stores restored from the kit because the database did not have them.
        stores: Vec<String>,
    },
    /// There was no database: one was made from the kit.
    Created,
    /// The database could not be opened or failed `verify`: its folder was moved aside (never
    /// deleted) and a new one made from the kit.
    Rebuilt {
        /// Where the damaged folder is now.
        moved_to: PathBuf,
        /// Why it was replaced.
        cause: String,
    },
}

/// Opens the standalone database in `path`, or rebuilds it from `kit` when it is missing or
/// damaged, and restores the kit's stores a sound database lacks.
///
/// - Missing or empty folder: a database is built from the kit (in a sibling folder, renamed
///   into place when complete: a failure leaves nothing half built).
/// - Otherwise it is first looked at read-only (nothing written) and verified; a database that
///   needs a recovery or has only leftovers of interrupted writes is opened read-write and
///   verified with repair (which removes leftovers, never anything a record refers to). Sound:
///   it is kept as it is, and kit stores it lacks are made.
/// - Damaged (opening or verifying says corruption, or problems remain after repair): a new
///   database is built from the kit beside it, then the damaged folder is renamed to
///   `<path>.damaged-<unix ms>` (never deleted) and the new one takes its place.
///
/// Any other error (the folder in use by another process, permissions, a full disk, a newer
/// format) is returned as it is: never a reason to replace a database.
///
/// # Errors
/// As [`Kit::check`]; [`UsageError::InUse`]; storage errors.
pub async fn open_or_restore(path: impl AsRef<Path>, kit: &Kit) -> Result<(Database, Restored)> {
    let path = path.as_ref();
    kit.check()?;
    let empty = match std::fs::read_dir(path) {
        Ok(mut d) => d.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io("read the database folder", path.to_path_buf())(e)),
    };
    if empty {
        let built = build_beside(path, kit).await?;
        // An empty folder goes (rmdir removes only an empty one); then the built one moves in.
        if path.exists() {
            std::fs::remove_dir(path).map_err(Error::io(
                "replace an empty database folder",
                path.to_path_buf(),
            ))?;
        }
        rename(&built, path)?;
        return Ok((Database::standalone(path)?, Restored::Created));
    }
    // A look that changes nothing, where the folder allows one.
    match Database::open_read_only(path) {
        Ok(db) => match db.verify(false).await {
            Ok(report) if report.is_clean() => {
                drop(db);
                return open_sound(path, kit).await;
            }
            Err(e) if e.kind() == ErrorKind::Corruption => {
                drop(db);
                return rebuild(path, kit, format!("verify failed: {e}")).await;
            }
            // Problems a repair may remove, or a verify that needs a read-write open.
            _ => drop(db),
        },
        Err(e @ Error::Usage(UsageError::InUse { .. })) => return Err(e),
        Err(e) if e.kind() == ErrorKind::Corruption => {
            return rebuild(path, kit, format!("open failed: {e}")).await;
        }
        // Read-only needs a recovery first, or is not possible for this folder.
        Err(_) => {}
    }
    let cause = match Database::standalone(path) {
        Ok(db) => match db.verify(true).await {
            Ok(report) if report.is_clean() => return restore_into(db, kit).await,
            Ok(report) => format!("verify found: {}", report.problems.join("; ")),
            Err(e) if e.kind() == ErrorKind::Corruption => format!("verify failed: {e}"),
            Err(e) => return Err(e),
        },
        Err(e) if e.kind() == ErrorKind::Corruption => format!("open failed: {e}"),
        Err(e) => return Err(e),
    };
    rebuild(path, kit, cause).await
}

async fn open_sound(path: &Path, kit: &Kit) -> Result<(Database, Restored)> {
    restore_into(Database::standalone(path)?, kit).await
}

async fn restore_into(db: Database, kit: &Kit) -> Result<(Database, Restored)> {
    let tx = db.begin(TxMode::ForWriting);
    let stores = kit.restore_missing(&tx).await?;
    tx.commit().await?;
    Ok((db, Restored::Opened { stores }))
}

/// Builds the kit's database beside `path`, then swaps it in and the damaged one aside.
async fn rebuild(path: &Path, kit: &Kit, cause: String) -> Result<(Database, Restored)> {
    let built = build_beside(path, kit).await?;
    let moved_to = sibling(path, "damaged");
    rename(path, &moved_to)?;
    rename(&built, path)?;
    Ok((
        Database::standalone(path)?,
        Restored::Rebuilt { moved_to, cause },
    ))
}

/// A new database holding exactly the kit, in a sibling folder of `path`, closed.
async fn build_beside(path: &Path, kit: &Kit) -> Result<PathBuf> {
    let to = sibling(path, "restoring");
    let r = async {
        let db = Database::standalone(&to)?;
        let tx = db.begin(TxMode::ForWriting);
        kit.restore_missing(&tx).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = r {
        // Only the folder made here, just now, holding nothing anyone refers to.
        let _ = std::fs::remove_dir_all(&to);
        return Err(e);
    }
    Ok(to)
}

/// `<path>.<what>-<unix ms>`, next to `path`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}-{ms}"));
    path.with_file_name(name)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(Error::io("move a database folder", from.to_path_buf()))
}

/// `Database::open_or_restore(path, &kit)`: [`open_or_restore`] as a constructor of the
/// database (bring the trait into scope: `use sop::OpenOrRestore`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use sop_database::Database;
/// use sop_json::kit::{Kit, OpenOrRestore, Restored};
///
/// let kit = Kit::from_json(r#"{"format": "sop-restore-kit", "version": 1, "stores": [
///     {"name": "settings", "items": [{"key": "theme", "value": "dark"}]}]}"#)?;
/// let dir = tempfile::tempdir()?;
/// let (db, what) = Database::open_or_restore(dir.path().join("db"), &kit).await?;
/// assert_eq!(what, Restored::Created);
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub trait OpenOrRestore: Sized {
    /// Opens the database in `path`, or rebuilds it from `kit` (see [`open_or_restore`]).
    fn open_or_restore(
        path: impl AsRef<Path> + Send,
        kit: &Kit,
    ) -> impl std::future::Future<Output = Result<(Self, Restored)>> + Send;
}

impl OpenOrRestore for Database {
    async fn open_or_restore(path: impl AsRef<Path> + Send, kit: &Kit) -> Result<(Self, Restored)> {
        open_or_restore(path, kit).await
    }
}
