//! The one error type at the CLI edge: a message, the commands that fix it,
//! and how the process should exit.

use std::fmt;

use ov_plugin_api::BackendError;

/// Exit status for a failed command; clap's usage errors exit 2 on their own.
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Whose move it is, for code that acts on an error (the doctor's status,
/// say) instead of reading its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// The command was called wrongly.
    Usage,
    /// Something the user can change: a file's mode, a value, a setting.
    #[default]
    User,
    /// The machine or another account: a file someone else owns, a
    /// service that is down.
    Environment,
    /// A bug in ov.
    Internal,
}

#[derive(Debug, Clone)]
pub struct OvError {
    pub message: String,
    pub hints: Vec<String>,
    pub exit_code: i32,
    pub kind: Kind,
}

pub type Result<T, E = OvError> = std::result::Result<T, E>;

impl OvError {
    pub fn new(message: impl Into<String>) -> Self {
        OvError {
            message: message.into(),
            hints: Vec::new(),
            exit_code: EXIT_ERROR,
            kind: Kind::User,
        }
    }

    /// A mistake in how the command was called.
    pub fn usage(message: impl Into<String>) -> Self {
        OvError {
            exit_code: EXIT_USAGE,
            kind: Kind::Usage,
            ..OvError::new(message)
        }
    }

    /// Say whose move it is (see [`Kind`]).
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
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
        use ov_plugin_api::ErrorKind as B;
        let kind = match e.kind {
            B::Internal => Kind::Internal,
            B::Unavailable | B::Io => Kind::Environment,
            _ => Kind::User,
        };
        OvError {
            message: e.message,
            hints: e.hints,
            exit_code: EXIT_ERROR,
            kind,
        }
    }
}

impl From<std::io::Error> for OvError {
    fn from(e: std::io::Error) -> Self {
        OvError::new(e.to_string())
    }
}
