//! Blocking file work called from async code, done where tokio expects it.

/// Runs blocking work (file syncs, an OS lock) from async code: on a multi-threaded tokio
/// runtime through `block_in_place`, so the runtime first hands this worker's other tasks to
/// another thread; elsewhere (a current-thread runtime, no runtime) directly, as there is no
/// other worker to hand them to.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::blocking;

    /// With one worker, blocking work that waits for another task completes only if the runtime
    /// was told and moved that task to another thread.
    #[test]
    fn blocking_work_on_a_multi_threaded_runtime_lets_the_workers_other_tasks_run() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::spawn(async {
                let (tx, rx) = std::sync::mpsc::channel();
                let other = tokio::spawn(async move { tx.send(()).unwrap() });
                let got = blocking(|| rx.recv_timeout(std::time::Duration::from_secs(20)));
                assert!(
                    got.is_ok(),
                    "the other task never ran while this one blocked"
                );
                other.await.unwrap();
            })
            .await
            .unwrap();
        });
    }

    #[test]
    fn blocking_work_runs_directly_without_a_runtime_or_on_a_current_thread_one() {
        assert_eq!(blocking(|| 7), 7);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(async { blocking(|| 8) }), 8);
    }
}
