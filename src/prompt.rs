//! Reading secrets from a person or a pipe. Nothing else in ov touches the
//! terminal for input.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, IsTerminal, Read, Write};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

use ov_plugin_api::{MAX_VALUE_BYTES, Secret};
use zeroize::Zeroizing;

use crate::error::{OvError, Result};

/// A line for the person at the terminal (a retry notice), on stderr.
pub fn say(line: &str) {
    eprintln!("{line}");
}

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Puts the terminal and SIGINT back as they were, on every exit path.
struct TtyGuard {
    tty: File,
    saved: Termios,
    sigint: SigAction,
}

impl Drop for TtyGuard {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.tty, SetArg::TCSANOW, &self.saved);
        // SAFETY: restores the disposition saved in `ask_hidden`.
        let _ = unsafe { sigaction(Signal::SIGINT, &self.sigint) };
    }
}

/// Ask on the controlling terminal without echo.
///
/// Echo goes off *before* the prompt is shown, so an answer typed (or sent
/// by a script) the instant the prompt appears is never displayed. Reads
/// the terminal itself, so a redirected stdout or stderr does not turn the
/// prompt into an empty answer. Ctrl-C ends the prompt with an error after
/// the terminal is restored, instead of killing ov with echo still off.
pub fn ask_hidden(prompt: &str) -> Result<Secret> {
    let tty_error =
        |e: &dyn std::fmt::Display| OvError::new(format!("cannot use the terminal: {e}"));
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| tty_error(&e))?;
    let saved = termios::tcgetattr(&tty).map_err(|e| tty_error(&e))?;
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal installs no handler code.
    let sigint = unsafe { sigaction(Signal::SIGINT, &ignore) }.map_err(|e| tty_error(&e))?;
    let guard = TtyGuard {
        tty: tty.try_clone().map_err(|e| tty_error(&e))?,
        saved: saved.clone(),
        sigint,
    };
    let mut quiet = saved;
    // No echo, and Ctrl-C stays a character (not a signal that would also
    // flush what was typed) until the reader below handles it.
    quiet.local_flags &= !(LocalFlags::ECHO
        | LocalFlags::ECHOE
        | LocalFlags::ECHOK
        | LocalFlags::ECHONL
        | LocalFlags::ISIG);
    termios::tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(|e| tty_error(&e))?;
    (&tty)
        .write_all(prompt.as_bytes())
        .and_then(|()| (&tty).flush())
        .map_err(|e| tty_error(&e))?;
    let answer = rpassword::read_password();
    drop(guard);
    match answer {
        Ok(line) => Ok(Secret::new(line)),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            Err(OvError::new("interrupted; nothing was stored"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(OvError::new(
            "no value typed (end of input); nothing was stored",
        )),
        Err(e) => Err(tty_error(&e)),
    }
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

/// A value from standard input (a pipe or a file): everything up to end of
/// input, less one trailing line ending (`\n`, or `\r\n`). A
/// PEM key or any other multi-line value is kept whole; a value over
/// [`MAX_VALUE_BYTES`] is refused without reading the rest.
pub fn read_stdin_value() -> Result<Secret> {
    read_value_from(&mut std::io::stdin().lock())
}

fn read_value_from(input: &mut dyn Read) -> Result<Secret> {
    // One byte for the trailing newline, one more to see that it is over.
    let limit = u64::try_from(MAX_VALUE_BYTES + 2).unwrap_or(u64::MAX);
    let mut raw = Zeroizing::new(Vec::new());
    input
        .take(limit)
        .read_to_end(&mut raw)
        .map_err(|e| OvError::new(format!("cannot read the value from standard input: {e}")))?;
    if raw.is_empty() {
        return Err(OvError::new("no value on standard input")
            .hint("printf '%s\\n' \"$VALUE\" | ov secrets set SERVICE KEY")
            .hint("ov secrets set SERVICE KEY < FILE   # the whole file, less one final newline")
            .hint("ov secrets set SERVICE KEY --generate"));
    }
    if raw.last() == Some(&b'\n') {
        raw.pop();
        // A file saved with Windows line endings ends in CR LF.
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
    }
    if raw.len() > MAX_VALUE_BYTES {
        return Err(OvError::usage(format!(
            "the value on standard input is longer than the limit; the limit is {MAX_VALUE_BYTES} bytes (1 MiB), and nothing was stored"
        ))
        .hint("store a path to the file instead, or keep large files in an encrypted volume"));
    }
    let text = std::str::from_utf8(&raw).map_err(|_| {
        OvError::new("the value on standard input is not valid UTF-8 text; nothing was stored")
            .hint("base64 < FILE | ov secrets set SERVICE KEY   # binary data, stored as text")
    })?;
    Ok(Secret::from(text))
}

/// Ask a yes/no question on the controlling terminal; Enter means yes.
/// Without a terminal the answer is no.
pub fn ask_yes_no(question: &str) -> Result<bool> {
    Ok(match ask_line(&format!("{question} [Y/n] "))? {
        // No terminal, or Ctrl-D: no.
        None => false,
        Some(a) => a.is_empty() || a == "y" || a == "yes",
    })
}

/// Ask on the controlling terminal for a typed `yes` (or `y`): anything
/// else, Enter included, is no, as is having no terminal. For changes that
/// cannot be taken back.
pub fn ask_typed_yes(question: &str) -> Result<bool> {
    Ok(ask_line(&format!("{question} (yes/no): "))?.is_some_and(|a| a == "y" || a == "yes"))
}

/// One line typed at the controlling terminal after `prompt`, trimmed and
/// in lower case; `None` without a terminal or at end of input.
fn ask_line(prompt: &str) -> Result<Option<String>> {
    let Ok(mut tty) = OpenOptions::new().read(true).write(true).open("/dev/tty") else {
        return Ok(None);
    };
    write!(tty, "{prompt}")
        .and_then(|()| tty.flush())
        .map_err(|e| OvError::new(format!("cannot write to the terminal: {e}")))?;
    let mut answer = String::new();
    let read = std::io::BufReader::new(&tty)
        .read_line(&mut answer)
        .map_err(|e| OvError::new(format!("cannot read from the terminal: {e}")))?;
    Ok((read > 0).then(|| answer.trim().to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Secret> {
        read_value_from(&mut &bytes[..])
    }

    #[test]
    fn a_piped_value_is_kept_whole_less_one_newline() {
        let pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n";
        assert_eq!(read(pem.as_bytes()).unwrap().expose(), pem.trim_end());
        assert_eq!(read(b"a\n\n").unwrap().expose(), "a\n");
        assert_eq!(read(b"a\r\n").unwrap().expose(), "a");
        assert_eq!(read(b"a\r\n\r\n").unwrap().expose(), "a\r\n");
        assert_eq!(read(b"no newline").unwrap().expose(), "no newline");
        assert_eq!(read(b"\n").unwrap().expose(), "");
        assert!(read(b"").is_err());
    }

    #[test]
    fn the_size_limit_counts_the_value_not_its_newline() {
        let mut at = vec![b'v'; MAX_VALUE_BYTES];
        assert_eq!(read(&at).unwrap().len(), MAX_VALUE_BYTES);
        at.push(b'\n');
        assert_eq!(read(&at).unwrap().len(), MAX_VALUE_BYTES);
        let over = vec![b'v'; MAX_VALUE_BYTES + 1];
        let e = read(&over).unwrap_err();
        assert!(e.message.contains("the limit is"), "{}", e.message);
        let mut far_over = vec![b'v'; MAX_VALUE_BYTES * 3];
        far_over.push(b'\n');
        assert!(read(&far_over).is_err());
    }

    #[test]
    fn bytes_that_are_not_text_are_refused() {
        let e = read(b"\xff\xfe\n").unwrap_err();
        assert!(e.message.contains("not valid UTF-8"), "{}", e.message);
    }
}
