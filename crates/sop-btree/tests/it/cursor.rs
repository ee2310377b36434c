//! Cursor scenarios.
