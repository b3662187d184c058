//! The one error type at the CLI edge: a message, the commands that fix it,
//! and how the process should exit.

use std::fmt;

use ov_plugin_api::BackendError;

/// Exit status for a failed command; clap's usage errors exit 2 on their own.
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Clone)]
pub struct OvError {
    pub message: String,
    pub hints: Vec<String>,
    pub exit_code: i32,
}

pub type Result<T, E = OvError> = std::result::Result<T, E>;

impl OvError {
    pub fn new(message: impl Into<String>) -> Self {
        OvError {
            message: message.into(),
            hints: Vec::new(),
            exit_code: EXIT_ERROR,
        }
    }

    /// A mistake in how the command was called.
    pub fn usage(message: impl Into<String>) -> Self {
        OvError {
            exit_code: EXIT_USAGE,
            ..OvError::new(message)
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// What goes to stderr: `ov: error: …` and a `hint: …` line per hint.
    pub fn render(&self) -> String {
        let mut out = format!("ov: error: {}\n", self.message);
        for h in &self.hints {
            out.push_str("hint: ");
            out.push_str(h);
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for OvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OvError {}

impl From<BackendError> for OvError {
    fn from(e: BackendError) -> Self {
        OvError {
            message: e.message,
            hints: e.hints,
            exit_code: EXIT_ERROR,
        }
    }
}

impl From<std::io::Error> for OvError {
    fn from(e: std::io::Error) -> Self {
        OvError::new(e.to_string())
    }
}
