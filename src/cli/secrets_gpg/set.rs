//! `ov secrets gpg set`: add or change one entry, keeping every other line.

use std::path::Path;

use clap::Args;
use ov_gpg::Gpg;
use ov_plugin_api::Secret;
use ov_plugin_support::shell_quote;
use zeroize::Zeroizing;

use super::{FileArgs, check_writable, document, recipients_for, write_secrets};
use crate::cli::warn;
use crate::dotenv;
use crate::error::{OvError, Result};
use crate::prompt;

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Variable name
    key: String,
    /// The value; better left out (it shows up in shell history and ps): then read from stdin
    value: Option<String>,
    #[command(flatten)]
    f: FileArgs,
    /// GPG key ID, for a new file (repeatable; default: your own key)
    #[arg(short, long = "recipient", value_name = "KEY_ID")]
    recipient: Vec<String>,
}

pub(super) fn set(gpg: &Gpg, a: SetArgs) -> Result<i32> {
    let file = &a.f.file;
    if !dotenv::valid_name(&a.key) {
        return Err(OvError::usage(format!(
            "{:?} is not a valid variable name (letters, digits and _, not starting with a digit)",
            a.key
        )));
    }
    check_writable(file)?;
    let from_argv = a.value.is_some();
    let value = match a.value {
        Some(v) => {
            crate::cmdline::hide(&v);
            Secret::new(v)
        }
        None => {
            if prompt::stdin_is_tty() {
                prompt::ask_hidden(&format!("{}: ", a.key))?
            } else {
                prompt::read_stdin_value()?
            }
        }
    };
    let recipients = recipients_for(gpg, file, &a.recipient)?;
    let mut doc = if file.exists() {
        document(gpg, file)?
    } else {
        dotenv::Document::default()
    };
    doc.set(&a.key, value.expose())
        .map_err(|why| unwritable(&a.key, file, why))?;
    let text = Zeroizing::new(doc.render());
    write_secrets(gpg, file, text.as_bytes(), &recipients)?;
    if from_argv {
        warn(
            "a value given on the command line was visible in ps until ov hid it, and stays in your shell history; leave it out to be prompted",
        );
    }
    eprintln!("set {} in {}", a.key, file.display());
    Ok(0)
}

/// A value no quoting writes so that every reader gets it back.
fn unwritable(key: &str, file: &Path, why: dotenv::Unwritable) -> OvError {
    let shown = file.display();
    let e = OvError::new(format!(
        "the value of {key} cannot be written to {shown} so that sh, bash, dash and direnv all read it back unchanged: {why}; {shown} is unchanged"
    ));
    let f = shell_quote(file);
    match why {
        dotenv::Unwritable::LineBreak => e
            .hint(format!(
                "base64 -w0 < FILE | ov secrets gpg set {key} -f {f}   # store it encoded, decode where it is used"
            ))
            .hint(format!(
                "ov secrets gpg edit -f {f}   # or write that line by hand, quoted for the readers you use"
            )),
        _ => e.hint(format!(
            "ov secrets gpg edit -f {f}   # write that line by hand, quoted for the readers you use"
        )),
    }
}
