//! The factory reset kit: a JSON "restore disk" of JSON stores (their options, index
//! specifications and items) that rebuilds a database when it is missing or damaged.
//!
//! The format (version 1), as `sop export DIR` writes it:
//!
//! ```json
//! {
//!   "format": "sop-restore-kit",
//!   "version": 1,
//!   "stores": [
//!     {
//!       "name": "people",
//!       "options": { "slot_length": 1000, "unique": true, "value_size": "small",
//!                    "description": "" },
//!       "index": { "index_fields": [ { "field_name": "last", "ascending_sort_order": true } ] },
//!       "items": [ { "key": { "last": "Lovelace" }, "value": { "first": "Ada" } } ]
//!     }
//!   ]
//! }
//! ```
//!
//! `options` (every field optional: SOP's defaults), `index` (absent or `null`: keys in the
//! JSON value order) and `items` (`value` absent: `null`) may be left out. A store with
//! `"kind": "strings"` is a store of `String` keys and values (what `sop put` makes), its keys
//! and values JSON strings; other typed stores are not in kits (their bytes mean what only the
//! program that made them knows), and `export` names those it leaves out. Unknown fields are
//! errors, so a misspelt option is never silently ignored. A kit with an error is refused with
//! [`UsageError::InvalidDocument`] naming the line, column and field.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sop_core::{Error, ErrorKind, Result, StoreOptions, UsageError, ValueDataSize};
use sop_database::Database;
use sop_txn::{Transaction, TxMode};

use crate::locate::{Seg, position, show};
use crate::order::{IndexSpec, JsonOrder};
use crate::store::{JsonItem, JsonStore};

/// The `format` every kit names.
pub const KIT_FORMAT: &str = "sop-restore-kit";
/// The kit format version this code writes and reads.
pub const KIT_VERSION: u32 = 1;

/// A restore kit (see the module documentation for its JSON form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kit {
    /// Always [`KIT_FORMAT`].
    pub format: String,
    /// [`KIT_VERSION`].
    pub version: u32,
    /// The stores, each with its items.
    pub stores: Vec<KitStore>,
}

/// One store of a kit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitStore {
    /// The store's name.
    pub name: String,
    /// What kind of store: a JSON store (the default), or a store of string keys and string
    /// values (what `sop put` makes).
    #[serde(default, skip_serializing_if = "KitKind::is_json")]
    pub kind: KitKind,
    /// Its options.
    #[serde(default)]
    pub options: KitOptions,
    /// Its index specification (`None`: whole keys).
    #[serde(default)]
    pub index: Option<IndexSpec>,
    /// Its items, in key order.
    #[serde(default)]
    pub items: Vec<KitItem>,
}

/// The kind of a kit store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KitKind {
    /// A [`JsonStore`]: JSON keys and values.
    #[default]
    Json,
    /// A store of `String` keys and `String` values (keys and values in the kit are strings).
    Strings,
}

impl KitKind {
    fn is_json(&self) -> bool {
        *self == KitKind::Json
    }
}

/// Whether a store holds `String` keys and values in their natural order.
fn is_strings_store(info: &sop_core::StoreInfo) -> bool {
    info.types.as_ref().is_some_and(|t| {
        t.key == std::any::type_name::<String>()
            && t.value == std::any::type_name::<String>()
            && t.order == sop_btree::KeyComparator::<String>::name(&sop_btree::NaturalOrder)
    })
}

/// A store's options in a kit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KitOptions {
    /// The most items a node holds.
    pub slot_length: usize,
    /// Whether keys are unique.
    pub unique: bool,
    /// Where values live: `small` (in nodes), `medium` or `big`.
    pub value_size: KitValueSize,
    /// Free text.
    pub description: String,
}

impl Default for KitOptions {
    fn default() -> Self {
        KitOptions {
            slot_length: sop_core::DEFAULT_SLOT_LENGTH,
            unique: true,
            value_size: KitValueSize::Small,
            description: String::new(),
        }
    }
}

/// [`ValueDataSize`] as a kit spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KitValueSize {
    /// In the nodes.
    Small,
    /// Out of the nodes, cached.
    Medium,
    /// Out of the nodes, written as added.
    Big,
}

/// One item of a kit store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitItem {
    /// The key.
    pub key: Value,
    /// The value.
    #[serde(default)]
    pub value: Value,
}

impl KitStore {
    /// The store options the kit asks for.
    #[must_use]
    pub fn store_options(&self) -> StoreOptions {
        let size = match self.options.value_size {
            KitValueSize::Small => ValueDataSize::Small,
            KitValueSize::Medium => ValueDataSize::Medium,
            KitValueSize::Big => ValueDataSize::Big,
        };
        let mut o = StoreOptions::with_value_size(self.name.clone(), size)
            .slot_length(self.options.slot_length)
            .unique(self.options.unique);
        o.description.clone_from(&self.options.description);
        o
    }
}

/// Parses `text` as a `T`, an error naming line, column and field.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, what: &'static str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = (inner.line(), inner.column());
        // serde_json puts " at line L column C" at the end of its message: said apart here.
        let mut reason = inner.to_string();
        if let Some(at) = reason.rfind(" at line ") {
            reason.truncate(at);
        }
        Error::Usage(UsageError::InvalidDocument {
            what,
            line,
            column,
            field,
            reason,
        })
    })
}

struct Problem {
    path: Vec<Seg>,
    reason: String,
}

fn problem(path: Vec<Seg>, reason: impl Into<String>) -> Problem {
    Problem {
        path,
        reason: reason.into(),
    }
}

impl Kit {
    /// An empty kit.
    #[must_use]
    pub fn new() -> Self {
        Kit {
            format: KIT_FORMAT.into(),
            version: KIT_VERSION,
            stores: Vec::new(),
        }
    }

    /// Parses and checks a kit.
    ///
    /// # Errors
    /// [`UsageError::InvalidDocument`] naming the line, column and field of the first problem:
    /// malformed JSON, a missing or unknown field, a wrong type, a bad store name or options, a
    /// duplicate store, a key the index cannot order, a key given twice in a unique store.
    pub fn from_json(text: &str) -> Result<Self> {
        let kit: Kit = parse(text, "restore kit")?;
        if let Err(p) = kit.problems() {
            let (line, column) = position(text, &p.path).unwrap_or((0, 0));
            return Err(invalid(line, column, &p));
        }
        Ok(kit)
    }

    /// Checks a kit made in code (no lines to name: line and column are 0).
    ///
    /// # Errors
    /// As [`Kit::from_json`].
    pub fn check(&self) -> Result<()> {
        self.problems().map_err(|p| invalid(0, 0, &p))
    }

    /// The kit as pretty JSON (one field per line, so errors in an edited kit name a line).
    ///
    /// # Errors
    /// [`UsageError::Encode`] (not expected: keys and values are JSON already).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| {
            Error::Usage(UsageError::Encode {
                what: "a restore kit",
                source: sop_core::CodecError::new(e),
            })
        })
    }

    fn problems(&self) -> std::result::Result<(), Problem> {
        if self.format != KIT_FORMAT {
            return Err(problem(
                vec![Seg::Key("format".into())],
                format!("{:?} is not {KIT_FORMAT:?}", self.format),
            ));
        }
        if self.version != KIT_VERSION {
            return Err(problem(
                vec![Seg::Key("version".into())],
                format!(
                    "version {} is not {KIT_VERSION}, the one this build reads",
                    self.version
                ),
            ));
        }
        for (s, store) in self.stores.iter().enumerate() {
            let at = |rest: &[Seg]| {
                let mut p = vec![Seg::Key("stores".into()), Seg::Index(s)];
                p.extend_from_slice(rest);
                p
            };
            if self.stores[..s].iter().any(|o| o.name == store.name) {
                return Err(problem(
                    at(&[Seg::Key("name".into())]),
                    format!("store {:?} is in the kit twice", store.name),
                ));
            }
            if let Err(e) = sop_core::StoreInfo::new(&store.store_options(), 0) {
                let field = match e {
                    Error::Usage(UsageError::InvalidStoreName { .. }) => {
                        vec![Seg::Key("name".into())]
                    }
                    Error::Usage(UsageError::SlotLengthOutOfRange { .. }) => {
                        vec![Seg::Key("options".into()), Seg::Key("slot_length".into())]
                    }
                    _ => vec![Seg::Key("options".into())],
                };
                return Err(problem(at(&field), e.to_string()));
            }
            if let Some(spec) = &store.index
                && let Err(Error::Usage(UsageError::InvalidDocument { field, reason, .. })) =
                    spec.check()
            {
                return Err(problem(
                    at(&[Seg::Key("index".into())]),
                    format!("{field}: {reason}"),
                ));
            }
            if store.kind == KitKind::Strings {
                if store.index.is_some() {
                    return Err(problem(
                        at(&[Seg::Key("index".into())]),
                        "a store of strings orders its keys as strings: no index specification",
                    ));
                }
                for (i, item) in store.items.iter().enumerate() {
                    for (field, v) in [("key", &item.key), ("value", &item.value)] {
                        if !v.is_string() {
                            return Err(problem(
                                at(&[
                                    Seg::Key("items".into()),
                                    Seg::Index(i),
                                    Seg::Key(field.into()),
                                ]),
                                "a store of kind \"strings\" holds strings",
                            ));
                        }
                    }
                }
            }
            let order = JsonOrder::new(store.index.clone());
            let mut keys: Vec<(usize, &Value)> = Vec::with_capacity(store.items.len());
            for (i, item) in store.items.iter().enumerate() {
                if store.index.is_some() && !item.key.is_object() {
                    return Err(problem(
                        at(&[
                            Seg::Key("items".into()),
                            Seg::Index(i),
                            Seg::Key("key".into()),
                        ]),
                        "the store has an index specification: its keys are JSON objects",
                    ));
                }
                keys.push((i, &item.key));
            }
            if store.options.unique {
                keys.sort_by(|a, b| order.compare_keys(a.1, b.1).then(a.0.cmp(&b.0)));
                if let Some(w) = keys
                    .windows(2)
                    .find(|w| order.compare_keys(w[0].1, w[1].1).is_eq())
                {
                    return Err(problem(
                        at(&[
                            Seg::Key("items".into()),
                            Seg::Index(w[1].0),
                            Seg::Key("key".into()),
                        ]),
                        format!(
                            "the key equals that of item {} in a store of unique keys",
                            w[0].0
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The JSON stores `tx` sees, with all their items; the names of the stores left out
    /// (typed stores: their bytes mean what only the program that made them knows).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn export(tx: &Transaction) -> Result<(Kit, Vec<String>)> {
        let mut kit = Kit::new();
        let mut skipped = Vec::new();
        for name in tx.stores()? {
            if !JsonStore::is_json_store(tx, &name)? {
                match tx.store_info(&name)? {
                    Some(info) if is_strings_store(&info) => {
                        kit.stores.push(export_strings(tx, name, &info).await?);
                    }
                    _ => skipped.push(name),
                }
                continue;
            }
            let mut store = JsonStore::open(tx, &name)?;
            let info = store.store_info().clone();
            let mut items = Vec::new();
            let mut more = store.first().await?;
            while more {
                if let Some(i) = store.current_item().await? {
                    items.push(KitItem {
                        key: i.key,
                        value: i.value.unwrap_or(Value::Null),
                    });
                }
                more = store.next().await?;
            }
            kit.stores.push(KitStore {
                name,
                kind: KitKind::Json,
                options: KitOptions::of(&info),
                index: store.spec().cloned(),
                items,
            });
        }
        Ok((kit, skipped))
    }

    /// Creates the kit's stores that `tx` does not see and fills them; the names of those
    /// restored. Stores that exist are left as they are.
    ///
    /// # Errors
    /// As [`Kit::check`]; conflicts, storage errors.
    pub async fn restore_missing(&self, tx: &Transaction) -> Result<Vec<String>> {
        self.check()?;
        let mut done = Vec::new();
        for s in &self.stores {
            if tx.store_info(&s.name)?.is_some() {
                continue;
            }
            if s.kind == KitKind::Strings {
                let mut store = tx.new_btree::<String, String>(&s.store_options())?;
                for i in &s.items {
                    store.add(string_of(&i.key), string_of(&i.value)).await?;
                }
                done.push(s.name.clone());
                continue;
            }
            let mut store = JsonStore::new(tx, &s.store_options(), s.index.clone())?;
            let items: Vec<JsonItem> = s
                .items
                .iter()
                .map(|i| JsonItem::new(i.key.clone(), i.value.clone()))
                .collect();
            store.add(&items).await?;
            done.push(s.name.clone());
        }
        Ok(done)
    }

    /// Imports the kit's items into `tx`'s stores, creating the missing stores and replacing
    /// the values of keys that exist (SOP's `Upsert`): `sop import`.
    ///
    /// # Errors
    /// As [`Kit::check`]; [`UsageError::TypeMismatch`] for a store of that name that is not a
    /// JSON store; conflicts, storage errors.
    pub async fn import(&self, tx: &Transaction) -> Result<u64> {
        self.check()?;
        let mut n = 0;
        for s in &self.stores {
            if s.kind == KitKind::Strings {
                let mut store = if tx.store_info(&s.name)?.is_some() {
                    tx.open_btree::<String, String>(&s.name)?
                } else {
                    tx.new_btree::<String, String>(&s.store_options())?
                };
                for i in &s.items {
                    store.upsert(string_of(&i.key), string_of(&i.value)).await?;
                }
                n += s.items.len() as u64;
                continue;
            }
            let mut store = if tx.store_info(&s.name)?.is_some() {
                JsonStore::open(tx, &s.name)?
            } else {
                JsonStore::new(tx, &s.store_options(), s.index.clone())?
            };
            let items: Vec<JsonItem> = s
                .items
                .iter()
                .map(|i| JsonItem::new(i.key.clone(), i.value.clone()))
                .collect();
            store.upsert(&items).await?;
            n += items.len() as u64;
        }
        Ok(n)
    }
}

impl Default for Kit {
    fn default() -> Self {
        Kit::new()
    }
}

impl KitOptions {
    fn of(info: &sop_core::StoreInfo) -> Self {
        KitOptions {
            slot_length: info.slot_length,
            unique: info.unique,
            value_size: if info.value_in_node {
                KitValueSize::Small
            } else if info.value_actively_persisted {
                KitValueSize::Big
            } else {
                KitValueSize::Medium
            },
            description: info.description.clone(),
        }
    }
}

fn string_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

async fn export_strings(
    tx: &Transaction,
    name: String,
    info: &sop_core::StoreInfo,
) -> Result<KitStore> {
    let store = tx.open_btree::<String, String>(&name)?;
    let mut range = store.iter();
    let mut items = Vec::new();
    while let Some(it) = range.next().await? {
        items.push(KitItem {
            key: Value::String(it.key),
            value: Value::String(it.value),
        });
    }
    Ok(KitStore {
        name,
        kind: KitKind::Strings,
        options: KitOptions::of(info),
        index: None,
        items,
    })
}

fn invalid(line: usize, column: usize, p: &Problem) -> Error {
    Error::Usage(UsageError::InvalidDocument {
        what: "restore kit",
        line,
        column,
        field: show(&p.path),
        reason: p.reason.clone(),
    })
}

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
