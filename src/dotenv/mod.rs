//! The one `.env` parser in ov, for `ov secrets gpg` and `.env` import.
//!
//! Accepted: blank lines and `#` comments; an optional `export ` prefix;
//! `KEY=value` with spaces allowed around `=`; unquoted values (trailing
//! blanks and a ` # comment` dropped, `=` kept); single quotes (literal);
//! double quotes (escapes `\n \r \t \\ \" \$ \``); quoted values may span
//! lines; empty values; CRLF line ends and a UTF-8 BOM. Nothing is expanded:
//! `$HOME` stays `$HOME`.
//!
//! A line that does not fit is an error naming its line number, never a key
//! named after garbage. A repeated key keeps its last value, with a warning.

mod document;
mod quote;

use std::fmt;

use ov_plugin_api::Secret;

pub use document::Document;
pub use quote::{Unwritable, export_line, quote_value, render, shell_quote};

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: Secret,
    /// 1-based line where the entry starts.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// In file order; a repeated key appears once, where it was last set.
    pub entries: Vec<Entry>,
    /// Repeated keys, as sentences.
    pub warnings: Vec<String>,
}

impl Parsed {
    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }
}

/// Is `name` usable as an environment variable name?
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse a whole file. Every bad line is reported, not just the first.
pub fn parse(text: &str) -> Result<Parsed, Vec<ParseError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut parsed = Parsed::default();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        match parse_entry(&lines, &mut i) {
            Ok(None) => {}
            Ok(Some((key, value))) => {
                if let Some(pos) = parsed.entries.iter().position(|e| e.key == key) {
                    let old = parsed.entries.remove(pos);
                    parsed.warnings.push(format!(
                        "line {start}: {key} repeats line {}; the later value wins",
                        old.line
                    ));
                }
                parsed.entries.push(Entry {
                    key,
                    value,
                    line: start,
                });
            }
            Err(message) => errors.push(ParseError {
                line: start,
                message,
            }),
        }
        i += 1;
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Parse the entry starting at `lines[*i]`; leaves `*i` on its last line.
fn parse_entry(lines: &[&str], i: &mut usize) -> Result<Option<(String, Secret)>, String> {
    let line = lines[*i].trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let line = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    };
    // The line's text is never quoted back: a line that does not parse is
    // often part of a value (the second line of an unquoted PEM key), and
    // the error reaches a terminal, a log or direnv's output on every `cd`.
    let column = lines[*i].len() - line.len() + 1;
    let Some((key, rest)) = line.split_once('=') else {
        return Err(format!(
            "column {column}: expected KEY=value, and this line has no '=' \
             (if it continues the value above, quote that value)"
        ));
    };
    let key = key.trim_end();
    if !valid_name(key) {
        return Err(format!(
            "column {column}: the name before '=' is not a valid variable name \
             (letters, digits and _, not starting with a digit)"
        ));
    }
    let rest = rest.trim_start();
    let value = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            quoted(lines, i, &rest[1..], q).map_err(|why| format!("{key}: {why}"))?
        }
        _ => unquoted(rest),
    };
    Ok(Some((key.to_owned(), Secret::new(value))))
}

fn unquoted(rest: &str) -> String {
    // A comment starts at a `#` that follows a blank.
    let mut end = rest.len();
    let bytes = rest.as_bytes();
    for (pos, b) in bytes.iter().enumerate() {
        if *b == b'#' && pos > 0 && matches!(bytes[pos - 1], b' ' | b'\t') {
            end = pos;
            break;
        }
    }
    rest[..end].trim_end().to_owned()
}

/// A quoted value starting after its opening quote, possibly over lines.
fn quoted(lines: &[&str], i: &mut usize, first: &str, quote: char) -> Result<String, String> {
    let mut out = String::new();
    let mut text = first;
    loop {
        let mut chars = text.char_indices();
        while let Some((pos, c)) = chars.next() {
            if c == quote {
                let after = text[pos + 1..].trim_start();
                if !(after.is_empty() || after.starts_with('#')) {
                    return Err(format!(
                        "text after the closing {quote} quote, at column {} of that line",
                        // `after` runs to the end of the line being read.
                        lines[*i].len() - after.len() + 1
                    ));
                }
                return Ok(out);
            }
            if c == '\\' && quote == '"' {
                match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    // `\`` too: sh, bash, dash and direnv all read it as `.
                    Some(e @ ('\\' | '"' | '$' | '`')) => out.push(e),
                    Some(e) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => out.push('\\'),
                }
                continue;
            }
            out.push(c);
        }
        // No closing quote on this line: the value goes on.
        *i += 1;
        match lines.get(*i) {
            Some(next) => {
                out.push('\n');
                text = next;
            }
            None => return Err(format!("the {quote} quote opened here is never closed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value.expose().to_owned()))
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn the_common_forms() {
        let text = "\u{feff}# comment\r\n\r\nA=1\r\nexport B = two words  # trailing\r\nC='single $HOME \\n'\r\nD=\"dq \\\"x\\\" \\n \\t \\$ \\\\\"\r\nE=\r\nF=a=b=c\r\nG=x#not-a-comment\r\n  H=indented\r\n";
        assert_eq!(
            values(text),
            kv(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "single $HOME \\n"),
                ("D", "dq \"x\" \n \t $ \\"),
                ("E", ""),
                ("F", "a=b=c"),
                ("G", "x#not-a-comment"),
                ("H", "indented"),
            ])
        );
    }

    #[test]
    fn quoted_values_may_span_lines() {
        let text = "KEY=\"-----BEGIN\nline2\n-----END\"\nNEXT='a\nb'\nLAST=1\n";
        assert_eq!(
            values(text),
            kv(&[
                ("KEY", "-----BEGIN\nline2\n-----END"),
                ("NEXT", "a\nb"),
                ("LAST", "1")
            ])
        );
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.entries[1].line, 4);
        assert_eq!(parsed.entries[2].line, 6);
    }

    #[test]
    fn bad_lines_are_errors_with_their_numbers_never_keys() {
        let text = "OK=1\nthis is garbage\n1BAD=x\nfoo-bar=y\nQ=\"open\nR=2\n";
        let errors = parse(text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        assert!(errors[0].message.contains("expected KEY=value"));
        assert!(errors[1].message.contains("not a valid variable name"));
        assert!(errors[3].message.contains("never closed"));
        let text = "A='x' trailing\n";
        assert_eq!(
            parse(text).unwrap_err()[0].message,
            "A: text after the closing ' quote, at column 7 of that line"
        );
    }

    #[test]
    fn parse_errors_never_quote_the_file() {
        // An unquoted PEM key: its second line is key material.
        let text = "TLS_KEY=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nMIIEvQ+/x==\nK='s3cr3t' tail-s3cr3t\n";
        let errors = parse(text).unwrap_err();
        assert_eq!(errors.len(), 3);
        for e in &errors {
            for secret in ["MIIE", "BQC7", "s3cr3t", "tail"] {
                assert!(!e.message.contains(secret), "{}", e.message);
            }
        }
        assert_eq!(errors[0].line, 2);
        assert!(
            errors[0]
                .message
                .starts_with("column 1: expected KEY=value")
        );
        assert!(errors[2].message.starts_with("K: text after the closing"));
    }

    #[test]
    fn duplicates_keep_the_last_value_and_warn() {
        let parsed = parse("A=1\nB=2\nA=3\n").unwrap();
        let got: Vec<_> = parsed
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.expose()))
            .collect();
        assert_eq!(got, vec![("B", "2"), ("A", "3")]);
        assert_eq!(
            parsed.warnings,
            vec!["line 3: A repeats line 1; the later value wins".to_owned()]
        );
    }

    #[test]
    fn render_round_trips_any_value() {
        let tricky = [
            "plain",
            "",
            "with space",
            "quote\" and 'single'",
            "new\nline\r\n",
            "$HOME and ${X} and \\ backslash",
            "tab\there # hash",
            "ünïcode ✓",
        ];
        let entries: Vec<(String, Secret)> = tricky
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("K{i}"), Secret::from(*v)))
            .collect();
        let text = render(&entries);
        let back = values(&text);
        for (i, v) in tricky.iter().enumerate() {
            assert_eq!(back[i].1, *v, "{text}");
        }
    }

    #[test]
    fn shell_quote_survives_a_real_shell() {
        let tricky = "it's $HOME `id` \"q\" \\ \n next line";
        let line = export_line("X", &Secret::from(tricky));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{line}\nprintf '%s' \"$X\""))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), tricky);
    }

    #[test]
    fn a_document_changes_one_entry_and_keeps_every_other_byte() {
        let text = "\u{feff}# top comment\n\nexport A='1' # why\n  B=\"two\"\r\nC=x\nD='multi\nline'\n# tail";
        let mut d = Document::parse(
            "A=1 # one\nB='x#y'   # two\nC=\"a \\\" # b\" #three\nD='m\nn' # four\nE=\"e\"\n",
        )
        .unwrap();
        for k in ["A", "B", "C", "D", "E"] {
            d.set(k, "v").unwrap();
        }
        assert_eq!(
            d.render(),
            "A='v' # one\nB='v'   # two\nC='v' #three\nD='v' # four\nE='v'\n"
        );
        let mut d = Document::parse(text).unwrap();
        d.set("B", "new `b`").unwrap();
        assert_eq!(
            d.render(),
            "\u{feff}# top comment\n\nexport A='1' # why\n  B='new `b`'\r\nC=x\nD='multi\nline'\n# tail"
        );
        d.set("E", "it's").unwrap();
        assert!(
            d.render().ends_with("# tail\r\nE=\"it's\"\r\n"),
            "{:?}",
            d.render()
        );
        assert!(d.unset("D"));
        assert!(!d.unset("D"));
        assert!(!d.render().contains("multi"));
        let back = values(&d.render());
        assert_eq!(
            back,
            kv(&[("A", "1"), ("B", "new `b`"), ("C", "x"), ("E", "it's")])
        );
        // A repeated key: the winning (last) entry changes; unset drops both.
        let mut d = Document::parse("A=1\nB=2\nA=3\n").unwrap();
        d.set("A", "4").unwrap();
        assert_eq!(d.render(), "A=1\nB=2\nA='4'\n");
        d.unset("A");
        assert_eq!(d.render(), "B=2\n");
        // Every entry exported: so is a new one.
        let mut d = Document::parse("export A=1\n").unwrap();
        d.set("B", "2").unwrap();
        assert_eq!(d.render(), "export A=1\nexport B='2'\n");
        let mut d = Document::parse("").unwrap();
        d.set("A", "").unwrap();
        assert_eq!(d.render(), "A=''\n");
        assert!(Document::parse("not an entry\n").is_err());
    }

    #[test]
    fn quote_value_writes_what_every_reader_agrees_on_or_refuses() {
        assert_eq!(
            quote_value("a $b `c` \\ \"d\"").unwrap(),
            "'a $b `c` \\ \"d\"'"
        );
        assert_eq!(
            quote_value("it's \"q\" `x`").unwrap(),
            "\"it's \\\"q\\\" \\`x\\`\""
        );
        assert_eq!(quote_value("a\nb"), Err(Unwritable::LineBreak));
        assert_eq!(quote_value("a\rb"), Err(Unwritable::LineBreak));
        assert_eq!(quote_value("a\0b"), Err(Unwritable::Nul));
        assert_eq!(
            quote_value("it's $HOME"),
            Err(Unwritable::QuoteWithDollarOrBackslash)
        );
        assert_eq!(
            quote_value("it's \\"),
            Err(Unwritable::QuoteWithDollarOrBackslash)
        );
        for v in ["a $b `c` \\ \"d\" ü ✓", "it's \"q\" `x` ✓"] {
            let line = format!("K={}\n", quote_value(v).unwrap());
            assert_eq!(values(&line), kv(&[("K", v)]), "{line}");
        }
    }
}
