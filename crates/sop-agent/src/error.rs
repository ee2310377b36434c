//! The agent's errors.

/// What can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The storage engine failed.
    #[error(transparent)]
    Sop(#[from] sop::Error),
    /// An HTTP call (Ollama) failed.
    #[error("{url}: {reason}")]
    Http {
        /// The URL called.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The configuration is wrong.
    #[error("agent configuration {what}: {reason}")]
    Config {
        /// Which file or field.
        what: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A policy refused the input.
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// The guardrail locked the session after too many violations.
    #[error("Session terminated: {0}")]
    Terminated(String),
}

impl AgentError {
    pub(crate) fn config(what: impl Into<String>, reason: impl Into<String>) -> Self {
        AgentError::Config {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// The agent's result type.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
