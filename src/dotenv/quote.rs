//! Writing values back: shell quoting for `export` lines, and the quoting
//! every `.env` reader agrees on.

use std::fmt;

use ov_plugin_api::Secret;

/// Quote a value for a POSIX shell: single quotes, with `'` written `'\''`.
/// Any content, newlines and `$` included, `eval`s back to itself.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `export KEY='value'`, for `eval "$(ov secrets gpg env)"`.
pub fn export_line(key: &str, value: &Secret) -> String {
    format!("export {key}={}", shell_quote(value.expose()))
}

/// Write entries back as a `.env` file this parser reads to the same values:
/// plain when safe, double-quoted with escapes otherwise.
pub fn render(entries: &[(String, Secret)]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        let v = value.expose();
        let plain = !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./:@+,%^".contains(c));
        out.push_str(key);
        out.push('=');
        if plain {
            out.push_str(v);
        } else {
            out.push('"');
            for c in v.chars() {
                match c {
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '$' => out.push_str("\\$"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('\n');
    }
    out
}

/// Why a value cannot be written into a `.env` file every reader agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwritable {
    /// A newline or carriage return: direnv's dotenv reads no quoted value
    /// over lines, and the `\n` escape it knows is literal to a shell.
    LineBreak,
    /// A NUL byte: no environment variable can hold one.
    Nul,
    /// A `'` together with `$` or `\`: single quotes cannot hold the `'`
    /// for direnv, and double quotes expand `$` in direnv (even `\$`) and
    /// read `\\n` as a newline.
    QuoteWithDollarOrBackslash,
}

impl fmt::Display for Unwritable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unwritable::LineBreak => "it holds a line break",
            Unwritable::Nul => "it holds a NUL byte",
            Unwritable::QuoteWithDollarOrBackslash => {
                "it holds a single quote (') together with $ or \\"
            }
        })
    }
}

/// Quote `value` for a `.env` file so that `sh`, `bash` and `dash` sourcing
/// it, direnv's `dotenv` and this parser all read back exactly `value`, and
/// none of them runs or expands anything:
///
/// - no `'` in the value: `'value'` (literal for every reader);
/// - a `'` but no `$` or `\`: `"value"` with `"` and `` ` `` escaped as
///   `\"` and `` \` `` (the only escapes all readers share);
/// - anything else is refused (see [`Unwritable`]).
pub fn quote_value(value: &str) -> Result<String, Unwritable> {
    if value.contains(['\n', '\r']) {
        return Err(Unwritable::LineBreak);
    }
    if value.contains('\0') {
        return Err(Unwritable::Nul);
    }
    if !value.contains('\'') {
        return Ok(format!("'{value}'"));
    }
    if value.contains(['$', '\\']) {
        return Err(Unwritable::QuoteWithDollarOrBackslash);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}
