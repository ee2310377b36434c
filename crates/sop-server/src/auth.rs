//! Bearer tokens: read-write and read-only, from a file or the environment.

use std::path::Path;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads only (GET, queries).
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

/// The accepted tokens.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    entries: Vec<(String, Role)>,
}

impl Tokens {
    /// No token: every request is refused unless the server runs with authentication off.
    #[must_use]
    pub fn new() -> Self {
        Tokens::default()
    }

    /// Adds a token.
    #[must_use]
    pub fn with(mut self, token: impl Into<String>, role: Role) -> Self {
        self.entries.push((token.into(), role));
        self
    }

    /// Whether none is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tokens from a file of lines `rw TOKEN` or `ro TOKEN` (`#` starts a comment).
    ///
    /// # Errors
    /// The file cannot be read, a line is not `rw|ro TOKEN`, or a token is shorter than 16
    /// characters.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        let mut t = Tokens::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                format!(
                    "{}:{}: expected `rw TOKEN` or `ro TOKEN` (tokens of 16 characters or more)",
                    path.display(),
                    n + 1
                )
            };
            let (role, token) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
            let role = match role {
                "rw" => Role::ReadWrite,
                "ro" => Role::ReadOnly,
                _ => return Err(bad()),
            };
            let token = token.trim();
            if token.len() < 16 {
                return Err(bad());
            }
            t = t.with(token, role);
        }
        Ok(t)
    }

    /// Tokens from `SOP_TOKEN` (read-write) and `SOP_READ_TOKEN` (read-only).
    #[must_use]
    pub fn from_env() -> Self {
        let mut t = Tokens::new();
        if let Ok(v) = std::env::var("SOP_TOKEN")
            && !v.is_empty()
        {
            t = t.with(v, Role::ReadWrite);
        }
        if let Ok(v) = std::env::var("SOP_READ_TOKEN")
            && !v.is_empty()
        {
            t = t.with(v, Role::ReadOnly);
        }
        t
    }

    /// The role of the `Authorization` header's bearer token, if it is one of these.
    #[must_use]
    pub fn role(&self, header: Option<&str>) -> Option<Role> {
        let given = header?.strip_prefix("Bearer ")?.trim().as_bytes();
        // Every token is compared in full, so the time taken does not tell which bytes matched.
        let mut found = None;
        for (token, role) in &self.entries {
            if eq_const_time(token.as_bytes(), given) && found.is_none() {
                found = Some(*role);
            }
        }
        found
    }
}

fn eq_const_time(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
