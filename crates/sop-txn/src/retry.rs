//! Running a transaction again when it conflicts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sop_core::{Error, Result};

use crate::{Engine, Transaction, TxOptions};

/// Whether running the transaction again may succeed.
#[must_use]
pub fn is_retryable(e: &Error) -> bool {
    e.is_retryable()
}

/// Runs `work` in a new transaction and commits it; on a conflict (see [`is_retryable`]) runs
/// it again in a fresh transaction after a jittered, growing pause, up to `attempts` times.
/// `work` gets the transaction by value (a cheap handle); its result is returned once the
/// commit succeeds.
///
/// # Errors
/// The last conflict after `attempts` tries, or the first error that is not a conflict.
pub async fn run<T, F, Fut>(
    engine: &Arc<Engine>,
    options: TxOptions,
    attempts: usize,
    mut work: F,
) -> Result<T>
where
    F: FnMut(Transaction) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut last = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            sop_blobstore_ec::pause(backoff(attempt)).await;
        }
        let tx = engine.begin(options);
        let r = match work(tx.clone()).await {
            Ok(v) => tx.commit().await.map(|()| v),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) if is_retryable(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(
        last.unwrap_or(Error::Transaction(sop_core::TransactionError::Conflict {
            store: String::new(),
            detail: "no attempt was made".into(),
        })),
    )
}

/// The pause before attempt `attempt` (1-based retries) of a transaction that conflicted:
/// jittered and growing, up to ~400 ms.
#[must_use]
pub fn backoff(attempt: usize) -> Duration {
    let cap = 1u64 << attempt.min(7);
    let jitter = u64::from(sop_core::Uuid::new_v4().as_bytes()[0]) % (cap * 2);
    Duration::from_millis(cap + jitter)
}
