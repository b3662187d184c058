//! The one error type of `ov`: backends return it, the engine and the
//! GnuPG tooling return it, and the CLI prints it in one place
//! ([`Error::render`]). It carries a kind, the commands that fix it, a
//! named problem for code to act on, and the error it was caused by.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Exit status of a failed command.
pub const EXIT_ERROR: i32 = 1;
/// Exit status of a command called wrongly (as clap's own usage errors).
pub const EXIT_USAGE: i32 = 2;

/// What kind of failure it is; the engine decides what to do with each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command was called wrongly.
    Usage,
    /// Something the user can change: a value, a setting, a file of theirs.
    #[default]
    User,
    /// The machine or another account: a file someone else owns, a
    /// service that is down.
    Environment,
    /// The backend cannot run here (no bus, no file, missing tool).
    Unavailable,
    /// The store is locked and needs an unlock secret.
    Locked,
    /// The unlock secret was wrong.
    WrongPassword,
    /// A file has unsafe permissions or the wrong owner.
    Permissions,
    /// A file exists but cannot be parsed.
    Corrupt,
    /// The caller's input was refused.
    InvalidInput,
    /// Reading or writing failed.
    Io,
    /// The backend does not do this (read-only, or an unknown request).
    Unsupported,
    /// A bug: a panic or a broken message.
    Internal,
    /// A kind this engine does not know yet.
    #[serde(other)]
    Other,
}

/// Whose move it is: the four classes every [`ErrorKind`] falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The command was called wrongly.
    Usage,
    /// The user can fix it.
    User,
    /// The machine, another account or a service must change.
    Environment,
    /// A bug in `ov` or a plugin.
    Internal,
}

impl ErrorKind {
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorKind::Usage => ErrorClass::Usage,
            ErrorKind::Environment | ErrorKind::Unavailable | ErrorKind::Io => {
                ErrorClass::Environment
            }
            ErrorKind::Internal => ErrorClass::Internal,
            ErrorKind::User
            | ErrorKind::Locked
            | ErrorKind::WrongPassword
            | ErrorKind::Permissions
            | ErrorKind::Corrupt
            | ErrorKind::InvalidInput
            | ErrorKind::Unsupported
            | ErrorKind::Other => ErrorClass::User,
        }
    }
}

/// A failure, with the commands that fix it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default)]
    pub hints: Vec<String>,
    /// The condition may pass with nothing done here: the service behind
    /// the store is starting (a keyring provider at login). A miss says
    /// so, and `get --wait-unlock` can wait for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
    /// The service behind the store is there but did not answer in time
    /// (a hung provider): a miss says so rather than only "no secret".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unresponsive: bool,
    /// A name for the problem, defined by the code that found it
    /// (`no_session_bus`, `timed_out`), for the engine and checks to act on
    /// instead of reading the message, which is for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The failure this one was caused by, printed after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Box<Error>>,
    /// How the process exits when this error ends it. A plugin cannot
    /// choose it: it is the engine's.
    #[serde(skip, default = "exit_error")]
    pub exit_code: i32,
}

fn exit_error() -> i32 {
    EXIT_ERROR
}

/// The name backends use for [`Error`].
pub type BackendError = Error;

impl Error {
    /// An error the user can fix (kind [`ErrorKind::User`]).
    pub fn new(message: impl Into<String>) -> Self {
        Error::of(ErrorKind::User, message)
    }

    /// An error of the given kind.
    pub fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hints: Vec::new(),
            transient: false,
            unresponsive: false,
            problem: None,
            cause: None,
            exit_code: if kind == ErrorKind::Usage {
                EXIT_USAGE
            } else {
                EXIT_ERROR
            },
        }
    }

    /// A mistake in how the command was called: exits 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::of(ErrorKind::Usage, message)
    }

    pub fn unsupported(what: impl fmt::Display) -> Self {
        Error::of(ErrorKind::Unsupported, format!("{what} is not supported"))
    }

    /// Say what kind of failure it is (see [`ErrorKind`]).
    pub fn kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// A command that fixes it, or the next step.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Name the problem (see [`Error::problem`]).
    pub fn with_problem(mut self, code: &str) -> Self {
        self.problem = Some(code.to_owned());
        self
    }

    /// Is this, or the error it was caused by, the problem named `code`?
    pub fn is(&self, code: &str) -> bool {
        self.problem.as_deref() == Some(code) || self.cause.as_deref().is_some_and(|c| c.is(code))
    }

    /// Mark the error as one that may pass by itself.
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// Mark the error as a service that is there but did not answer.
    pub fn unresponsive(mut self) -> Self {
        self.unresponsive = true;
        self
    }

    /// This error as the cause of a new one saying what was being done:
    /// `message` comes first, this error's message after it. The hints,
    /// kind and exit status carry over to the new error.
    pub fn context(mut self, message: impl Into<String>) -> Self {
        let hints = std::mem::take(&mut self.hints);
        Error {
            kind: self.kind,
            message: message.into(),
            hints,
            transient: self.transient,
            unresponsive: self.unresponsive,
            problem: None,
            exit_code: self.exit_code,
            cause: Some(Box::new(self)),
        }
    }

    /// The messages from this error down its causes.
    pub fn chain(&self) -> impl Iterator<Item = &Error> {
        std::iter::successors(Some(self), |e| e.cause.as_deref())
    }

    /// What goes to stderr: `ov: error: …`, a `caused by: …` line per
    /// cause, and a `hint: …` line per hint (the hints of every error in
    /// the chain, outermost first, each once).
    pub fn render(&self) -> String {
        let mut out = format!("ov: error: {}\n", self.message);
        for cause in self.chain().skip(1) {
            out.push_str("caused by: ");
            out.push_str(&cause.message);
            out.push('\n');
        }
        let mut seen = Vec::new();
        for h in self.chain().flat_map(|e| &e.hints) {
            if !seen.contains(&h) {
                seen.push(h);
                out.push_str("hint: ");
                out.push_str(h);
                out.push('\n');
            }
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::PermissionDenied {
            ErrorKind::Permissions
        } else {
            ErrorKind::Io
        };
        Error::of(kind, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_cause_and_its_hints_and_prints_both() {
        let inner = Error::of(ErrorKind::Unavailable, "the keyring is down")
            .hint("ov doctor keyring")
            .with_problem("down");
        let outer = inner.context("cannot seal app/prod now");
        assert_eq!(outer.kind, ErrorKind::Unavailable);
        assert!(outer.is("down"));
        assert_eq!(
            outer.render(),
            "ov: error: cannot seal app/prod now\ncaused by: the keyring is down\nhint: ov doctor keyring\n"
        );
        let source = std::error::Error::source(&outer).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("the keyring is down"));
    }

    #[test]
    fn usage_exits_2_and_the_rest_1_and_a_plugin_cannot_choose() {
        assert_eq!(Error::usage("x").exit_code, EXIT_USAGE);
        assert_eq!(Error::new("x").exit_code, EXIT_ERROR);
        let mut e = Error::new("x");
        e.exit_code = 77;
        let back: Error = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back.exit_code, EXIT_ERROR);
    }

    #[test]
    fn every_kind_has_a_class() {
        assert_eq!(ErrorKind::Io.class(), ErrorClass::Environment);
        assert_eq!(ErrorKind::Locked.class(), ErrorClass::User);
        assert_eq!(ErrorKind::Usage.class(), ErrorClass::Usage);
        assert_eq!(ErrorKind::Internal.class(), ErrorClass::Internal);
    }
}
