//! Input policies: the profanity guardrail with strikes.

/// What a policy decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Allow,
    /// Refuse this input (a strike).
    Block(String),
    /// Refuse this and every later input: the session is over.
    Terminate(String),
}

const PROFANITY: &[&str] = &[
    "slut", "idiot", "stupid", "damn", "hell", "ass", "bitch", "fuck",
];

/// SOP's profanity guardrail: whole words (any case) from a fixed list are violations;
/// `max_strikes` consecutive violations lock the session; a clean input resets the count.
/// Stateful: one per session.
#[derive(Clone, Debug)]
pub struct ProfanityGuardrail {
    max_strikes: u32,
    strikes: u32,
    locked: bool,
}

impl ProfanityGuardrail {
    /// A guardrail that locks after `max_strikes` (at least 1) consecutive violations.
    #[must_use]
    pub fn new(max_strikes: u32) -> Self {
        ProfanityGuardrail {
            max_strikes: max_strikes.max(1),
            strikes: 0,
            locked: false,
        }
    }

    /// Whether `text` has a listed word.
    #[must_use]
    pub fn violates(text: &str) -> bool {
        text.split(|c: char| !c.is_alphanumeric())
            .any(|w| PROFANITY.iter().any(|p| w.eq_ignore_ascii_case(p)))
    }

    /// Judges one input.
    pub fn check(&mut self, text: &str) -> Verdict {
        if self.locked {
            return Verdict::Terminate("too many policy violations".into());
        }
        if !Self::violates(text) {
            self.strikes = 0;
            return Verdict::Allow;
        }
        self.strikes += 1;
        if self.strikes >= self.max_strikes {
            self.locked = true;
            Verdict::Terminate(format!("{} consecutive policy violations", self.strikes))
        } else {
            Verdict::Block(format!(
                "inappropriate language (strike {} of {})",
                self.strikes, self.max_strikes
            ))
        }
    }

    /// Whether the session is locked.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}
