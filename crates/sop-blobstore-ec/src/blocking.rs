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

/// Waits `d` from async code on any runtime or none: a backoff that must not need tokio's
/// timer (a runtime built without `enable_time`, or no runtime at all: an executor of the
/// caller's, such as `futures::executor::block_on`). On a tokio runtime the wait happens on its
/// blocking pool, so the worker runs other tasks meanwhile; without one, the thread sleeps.
pub async fn pause(d: std::time::Duration) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            if h.spawn_blocking(move || std::thread::sleep(d))
                .await
                .is_err()
            {
                // The runtime is shutting down: the wait is moot.
            }
        }
        Err(_) => std::thread::sleep(d),
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
    fn pause_waits_without_a_runtime_or_a_timer() {
        let d = std::time::Duration::from_millis(20);
        let t = std::time::Instant::now();
        futures_lite_block_on(super::pause(d));
        assert!(t.elapsed() >= d);
        // A runtime without timers (no `enable_time`): tokio's sleep would panic here.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let t = std::time::Instant::now();
        rt.block_on(super::pause(d));
        assert!(t.elapsed() >= d);
    }

    /// A minimal executor with no tokio context, as an application's own would be.
    fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
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
