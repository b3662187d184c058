//! Editing a `.env` file in place: one entry changed, every other line kept.

use std::fmt;

use super::{ParseError, Unwritable, parse, parse_entry, quote_value};

/// A `.env` file as lines, for changing one entry and keeping every other
/// byte: comments, blank lines, order, `export` prefixes, quoting and line
/// ends stay as they were.
#[derive(Default)]
pub struct Document {
    /// The text before the first line (a UTF-8 BOM, or nothing).
    bom: String,
    chunks: Vec<Chunk>,
}

/// One entry (its lines, a quoted value may span several) or one line that
/// is not an entry. `text` holds the lines with their line ends.
struct Chunk {
    text: String,
    key: Option<String>,
}

impl Document {
    /// Parse `text`; the same errors as [`parse`].
    pub fn parse(text: &str) -> Result<Document, Vec<ParseError>> {
        parse(text)?;
        let (bom, body) = match text.strip_prefix('\u{feff}') {
            Some(rest) => ("\u{feff}".to_owned(), rest),
            None => (String::new(), text),
        };
        let raw: Vec<&str> = body.split_inclusive('\n').collect();
        let lines: Vec<&str> = raw
            .iter()
            .map(|l| {
                let l = l.strip_suffix('\n').unwrap_or(l);
                l.strip_suffix('\r').unwrap_or(l)
            })
            .collect();
        let mut chunks = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let start = i;
            let key = parse_entry(&lines, &mut i).ok().flatten().map(|(k, _)| k);
            chunks.push(Chunk {
                text: raw[start..=i].concat(),
                key,
            });
            i += 1;
        }
        Ok(Document { bom, chunks })
    }

    /// Does the file set `key`?
    pub fn contains(&self, key: &str) -> bool {
        self.chunks.iter().any(|c| c.key.as_deref() == Some(key))
    }

    /// Set `key` to `value`: the entry that wins (the last one) is rewritten
    /// in place, keeping its indentation, its `export` prefix and its line
    /// end; a new key goes at the end, with `export ` when every entry has
    /// it. Nothing changes when the value cannot be written.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Unwritable> {
        let quoted = quote_value(value)?;
        if let Some(c) = self
            .chunks
            .iter_mut()
            .rev()
            .find(|c| c.key.as_deref() == Some(key))
        {
            let indent: String = c
                .text
                .chars()
                .take_while(|ch| *ch == ' ' || *ch == '\t')
                .collect();
            let export = has_export(&c.text);
            let end = if c.text.ends_with("\r\n") {
                "\r\n"
            } else if c.text.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            let body = &c.text[..c.text.len() - end.len()];
            let comment = trailing_comment(body).unwrap_or("").to_owned();
            c.text = format!(
                "{indent}{}{key}={quoted}{comment}{end}",
                if export { "export " } else { "" }
            );
            return Ok(());
        }
        let entries: Vec<&Chunk> = self.chunks.iter().filter(|c| c.key.is_some()).collect();
        let export = !entries.is_empty() && entries.iter().all(|c| has_export(&c.text));
        let crlf = self.chunks.iter().any(|c| c.text.ends_with("\r\n"));
        let end = if crlf { "\r\n" } else { "\n" };
        if let Some(last) = self.chunks.last_mut()
            && !last.text.ends_with('\n')
        {
            last.text.push_str(end);
        }
        self.chunks.push(Chunk {
            text: format!("{}{key}={quoted}{end}", if export { "export " } else { "" }),
            key: Some(key.to_owned()),
        });
        Ok(())
    }

    /// Remove every entry of `key`; false when there was none.
    pub fn unset(&mut self, key: &str) -> bool {
        let before = self.chunks.len();
        self.chunks.retain(|c| c.key.as_deref() != Some(key));
        self.chunks.len() != before
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = self.bom.clone();
        for c in &self.chunks {
            out.push_str(&c.text);
        }
        out
    }
}

/// The ` # comment` after an entry's value (with the blanks before it), as
/// the parser skips it; `entry` is the entry's text without its last line
/// end.
fn trailing_comment(entry: &str) -> Option<&str> {
    let (_, rest) = entry.split_once('=')?;
    let rest = rest.trim_start();
    let after = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let mut chars = rest.char_indices().skip(1);
            let mut close = None;
            while let Some((pos, c)) = chars.next() {
                if c == '\\' && q == '"' {
                    chars.next();
                } else if c == q {
                    close = Some(pos + 1);
                    break;
                }
            }
            &rest[close?..]
        }
        _ => {
            let bytes = rest.as_bytes();
            let hash = (1..bytes.len())
                .find(|&p| bytes[p] == b'#' && matches!(bytes[p - 1], b' ' | b'\t'))?;
            let start = rest[..hash].trim_end_matches([' ', '\t']).len();
            &rest[start..]
        }
    };
    after.trim_start().starts_with('#').then_some(after)
}

/// Does this entry line start with `export `?
fn has_export(line: &str) -> bool {
    line.trim_start_matches([' ', '\t'])
        .strip_prefix("export")
        .is_some_and(|r| r.starts_with([' ', '\t']))
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The lines hold secret values: only the keys are shown.
        let keys: Vec<&str> = self
            .chunks
            .iter()
            .filter_map(|c| c.key.as_deref())
            .collect();
        f.debug_struct("Document").field("keys", &keys).finish()
    }
}

impl Drop for Document {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for c in &mut self.chunks {
            c.text.zeroize();
        }
    }
}
