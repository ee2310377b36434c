//! The native module `sop._sop` of the Python package `sop` (sop4py's API over sop-rs).
//!
//! Every call that reads or writes storage runs with the GIL released ([`rt::detached`]), so
//! Python threads using sop-rs run in parallel. Keys, values and payloads cross as JSON text:
//! the Python layer (`python/sop`) turns dataclasses and dicts into it and back, and gives the
//! classes sop4py's names. Engine errors become the exceptions of `sop.errors`.

mod ai;
mod btree;
mod db;
mod errors;
mod rt;
mod stream;

use pyo3::prelude::*;

/// The module.
#[pymodule]
fn _sop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<db::NativeDatabase>()?;
    m.add_class::<db::NativeTransaction>()?;
    m.add_class::<btree::NativeBtree>()?;
    m.add_class::<ai::NativeVector>()?;
    m.add_class::<ai::NativeModels>()?;
    m.add_class::<ai::NativeSearch>()?;
    m.add_class::<stream::NativeStreams>()?;
    m.add_class::<stream::NativeStreamWriter>()?;
    m.add_class::<stream::NativeStreamReader>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
