//! sop-rs errors as the Python exceptions of `sop.errors` (classes defined in Python, so they
//! carry docstrings, `retryable`, and also derive from the built-in exception they are).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use sop::{Error, TransactionError, UsageError};

/// The `sop.errors` class for an engine error.
fn class_of(e: &Error) -> &'static str {
    match e {
        Error::Usage(u) => match u {
            UsageError::StoreNotFound { .. } => "StoreNotFoundError",
            UsageError::StoreExists { .. } => "StoreExistsError",
            UsageError::InUse { .. } => "InUseError",
            UsageError::InvalidArgument { .. }
            | UsageError::InvalidId { .. }
            | UsageError::InvalidStoreName { .. }
            | UsageError::InvalidOptions { .. }
            | UsageError::SlotLengthOutOfRange { .. }
            | UsageError::TypeMismatch { .. }
            | UsageError::ValueTooLarge { .. }
            | UsageError::InvalidDocument { .. } => "InvalidArgumentError",
            _ => "UsageError",
        },
        Error::Cursor(_) => "UsageError",
        Error::Transaction(t) => match t {
            // sop-txn's reasons for an ended transaction begin with these words (a store's
            // name, which a reason may also hold, comes later).
            TransactionError::TransactionState { reason, .. }
                if [
                    "it has ended",
                    "it was dropped",
                    "its Database was closed",
                    "cannot commit: it has ended",
                ]
                .iter()
                .any(|w| reason.starts_with(w)) =>
            {
                "TransactionClosedError"
            }
            TransactionError::TransactionState { .. } => "TransactionStateError",
            TransactionError::Timeout { .. } => "TransactionTimeoutError",
            _ if e.is_retryable() => "ConflictError",
            _ => "TransactionError",
        },
        Error::Corruption(_) => "CorruptionError",
        Error::Storage(_) => "StorageError",
        Error::Coordination(_) => "CoordinationError",
        _ => "SopError",
    }
}

/// An exception of class `name` (from `sop.errors`) with `message`.
pub(crate) fn exception(name: &str, message: &str) -> PyErr {
    Python::attach(|py| {
        let class = py
            .import("sop.errors")
            .and_then(|m| m.getattr(name))
            .and_then(|c| c.cast_into::<pyo3::types::PyType>().map_err(PyErr::from));
        match class {
            Ok(c) => PyErr::from_type(c, message.to_string()),
            // The package is not importable (the module loaded on its own): still an exception.
            Err(_) => PyRuntimeError::new_err(format!("{name}: {message}")),
        }
    })
}

/// The Python exception for an engine error.
pub(crate) fn to_py(e: Error) -> PyErr {
    exception(class_of(&e), &e.to_string())
}

/// A call's argument refused before it reached the engine.
pub(crate) fn invalid(message: impl std::fmt::Display) -> PyErr {
    exception("InvalidArgumentError", &message.to_string())
}
