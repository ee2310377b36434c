//! How a transaction runs.

use std::time::{Duration, Instant};

/// What a transaction may do, and what its commit checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TxMode {
    /// Reads and writes; the commit validates every read and write (serializable).
    #[default]
    ForWriting,
    /// Reads only; the commit validates that nothing it read changed, so what it read was one
    /// consistent state. Writes are refused.
    ForReading,
    /// Reads and writes with no validation at all: for a single writer doing bulk work that no
    /// one else touches. Concurrent writers to the same trees lose updates silently (the
    /// registry's version fence still stops a node from being overwritten by a stale copy, which
    /// then fails the commit). Use it only when nothing else writes.
    NoCheck,
}

/// The longest a transaction's commit may take (SOP's cap).
pub const MAX_TIME_CAP: Duration = Duration::from_secs(3600);
/// The default `max_time` (SOP's).
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(15 * 60);

/// Options of one transaction.
#[derive(Clone, Copy, Debug)]
pub struct TxOptions {
    /// What it may do.
    pub mode: TxMode,
    /// How long its commit may take at most, from `begin`; also the life of its locks. Zero
    /// means the default (15 minutes); more than an hour is capped at an hour.
    pub max_time: Duration,
    /// The caller's own deadline; the commit ends at the earlier of this and `max_time`.
    pub deadline: Option<Instant>,
}

impl Default for TxOptions {
    fn default() -> Self {
        TxOptions {
            mode: TxMode::ForWriting,
            max_time: DEFAULT_MAX_TIME,
            deadline: None,
        }
    }
}

impl TxOptions {
    /// Options for `mode`, with the defaults otherwise.
    #[must_use]
    pub fn new(mode: TxMode) -> Self {
        TxOptions {
            mode,
            ..TxOptions::default()
        }
    }

    /// Sets `max_time`.
    #[must_use]
    pub fn max_time(mut self, max_time: Duration) -> Self {
        self.max_time = max_time;
        self
    }

    /// Sets the caller's deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// `max_time` as used: zero → default, capped at an hour.
    #[must_use]
    pub fn effective_max_time(&self) -> Duration {
        if self.max_time.is_zero() {
            DEFAULT_MAX_TIME
        } else {
            self.max_time.min(MAX_TIME_CAP)
        }
    }
}
