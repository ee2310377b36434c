//! Hooks for fault tests that must stop a process at an exact point of a commit (hidden from
//! the documentation; a process that sets none pays one atomic load per clustered commit).

use std::sync::OnceLock;

type Hook = Box<dyn Fn() + Send + Sync>;

static BEFORE_SHARED_COMMIT_POINT: OnceLock<Hook> = OnceLock::new();

/// Runs `hook` in every clustered commit after its node locks are taken and its pieces are
/// durable, right before its registry batch (the commit point). Set once per process; a test
/// stops the process there (SIGSTOP) to outlive its locks. Returns `false` if one was set.
#[doc(hidden)]
pub fn before_shared_commit_point(hook: impl Fn() + Send + Sync + 'static) -> bool {
    BEFORE_SHARED_COMMIT_POINT.set(Box::new(hook)).is_ok()
}

pub(crate) fn at_shared_commit_point() {
    if let Some(h) = BEFORE_SHARED_COMMIT_POINT.get() {
        h();
    }
}
