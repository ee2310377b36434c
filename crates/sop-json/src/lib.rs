//! JSON stores of sop-rs, for callers that do not know their types at compile time (the
//! Python binding, the REST server, the CLI): SOP's `jsondb`, made deterministic.
//!
//! A [`JsonStore`] holds `serde_json::Value` keys and values in one B-tree, ordered by an
//! [`IndexSpec`] (fields of object keys, each ascending or descending) or by the total order
//! over JSON values ([`compare_values`]; SOP guessed a field's type from the first value it saw,
//! here types order by a fixed rank). The [`kit`] module is the factory reset kit: a JSON
//! "restore disk" that `sop export` writes and [`kit::open_or_restore`] rebuilds from.
//!
//! This crate uses the public transaction and tree API (`sop-txn`) and the `Database` entry
//! point; it knows nothing of registries or blob files.

pub mod kit;
mod locate;
mod order;
mod page;
mod store;
mod value;

pub use order::{IndexField, IndexSpec, JsonOrder, compare_values};
pub use page::{Direction, PagingInfo};
pub use store::{JsonItem, JsonStore};
pub use value::Json;
