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

mod check;
mod restore;
mod transfer;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sop_core::{Error, Result, StoreOptions, UsageError, ValueDataSize};

use crate::order::IndexSpec;

pub use restore::{OpenOrRestore, Restored, open_or_restore};

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
