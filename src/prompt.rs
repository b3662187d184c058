//! Reading secrets from a person or a pipe. Nothing else in ov touches the
//! terminal for input.

use std::io::{BufRead, IsTerminal, Read};

use ov_plugin_api::Secret;
use zeroize::Zeroizing;

use crate::error::{OvError, Result};
use crate::store::MAX_VALUE_BYTES;

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Ask on the terminal without echo.
pub fn ask_hidden(prompt: &str) -> Result<Secret> {
    let term = console::Term::stderr();
    term.write_str(prompt)
        .and_then(|()| term.flush())
        .map_err(|e| OvError::new(format!("cannot write to the terminal: {e}")))?;
    let line = term
        .read_secure_line()
        .map_err(|e| OvError::new(format!("cannot read from the terminal: {e}")))?;
    Ok(Secret::new(line))
}

/// Ask twice and insist the answers match.
pub fn ask_hidden_twice(prompt: &str) -> Result<Secret> {
    let first = ask_hidden(prompt)?;
    let second = ask_hidden("Again: ")?;
    if first != second {
        return Err(OvError::new("the two entries differ; nothing was stored")
            .hint("run the command again and type the same value twice"));
    }
    Ok(first)
}

/// One line from standard input (a pipe or a file), without its line ending.
pub fn read_stdin_line() -> Result<Secret> {
    let limit = u64::try_from(MAX_VALUE_BYTES + 2).unwrap_or(u64::MAX);
    let mut raw = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(limit)
        .read_until(b'\n', &mut raw)
        .map_err(|e| OvError::new(format!("cannot read the value from standard input: {e}")))?;
    if raw.is_empty() {
        return Err(OvError::new("no value on standard input")
            .hint("printf '%s\\n' \"$VALUE\" | ov secrets set SERVICE KEY")
            .hint("ov secrets set SERVICE KEY --generate"));
    }
    if raw.last() == Some(&b'\n') {
        raw.pop();
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
    }
    let text = std::str::from_utf8(&raw)
        .map_err(|_| OvError::new("the value on standard input is not valid UTF-8"))?;
    Ok(Secret::from(text))
}
