//! Error scenarios.
