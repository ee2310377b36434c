//! The runtime the bindings run sop-rs's async API on, and the one way they call it: with the
//! GIL released, so other Python threads run while this one waits on I/O or a commit.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use pyo3::prelude::*;

use crate::errors::{exception, to_py};

static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();

fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sop-py")
            .enable_all()
            .build()
    });
    rt.as_ref().map_err(|e| {
        exception(
            "SopError",
            &format!("sop-rs could not start its runtime: {e}"),
        )
    })
}

/// Runs `f` (which may block on the runtime with [`block`]) with the GIL released.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&tokio::runtime::Runtime) -> sop::Result<T> + Send,
) -> PyResult<T> {
    let rt = runtime()?;
    py.detach(|| f(rt)).map_err(to_py)
}

/// Runs a future of the engine to its end with the GIL released.
pub(crate) fn block<T: Send>(
    py: Python<'_>,
    fut: impl Future<Output = sop::Result<T>> + Send,
) -> PyResult<T> {
    detached(py, |rt| rt.block_on(fut))
}

/// Runs `f` on the state behind `m`, with the GIL released (the lock is taken and dropped on
/// this side of the GIL, so no thread waits for it while holding the GIL).
pub(crate) fn locked<S: Send, T: Send>(
    py: Python<'_>,
    m: &Arc<Mutex<S>>,
    f: impl AsyncFnOnce(&mut S) -> sop::Result<T> + Send,
) -> PyResult<T> {
    let m = m.clone();
    detached(py, move |rt| rt.block_on(f(&mut m.lock())))
}

/// [`locked`] for a handle that `close` empties: a `UsageError` naming `what` once closed.
pub(crate) fn locked_open<S: Send, T: Send>(
    py: Python<'_>,
    m: &Arc<Mutex<Option<S>>>,
    what: &str,
    f: impl AsyncFnOnce(&mut S) -> sop::Result<T> + Send,
) -> PyResult<T> {
    let m = m.clone();
    detached(py, move |rt| match m.lock().as_mut() {
        Some(s) => rt.block_on(f(s)).map(Some),
        None => Ok(None),
    })?
    .ok_or_else(|| exception("UsageError", &format!("the {what} is closed")))
}
