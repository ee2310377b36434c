//! The runtime the bindings run sop-rs's async API on, and the one way they call it: with the
//! GIL released, so other Python threads run while this one waits on I/O or a commit.

use std::future::Future;
use std::sync::OnceLock;

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
