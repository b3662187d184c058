//! `ov inject`: a text file with `{{ ov://SERVICE/KEY }}` placeholders,
//! rendered with the values. Only placeholders holding a reference are
//! touched; other `{{ … }}` (a Go or Jinja template) pass through as
//! written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{OvError, Result};
use crate::paths::Paths;
use crate::refs::{self, Reference};

/// One `{{ ov://… }}` in a template.
#[derive(Debug, Clone)]
pub struct Placeholder {
    /// 1-based line.
    pub line: usize,
    /// Byte range of the whole `{{ … }}`.
    pub start: usize,
    pub end: usize,
    pub reference: Reference,
}

/// Find every placeholder, or the first that is broken, with its line:
/// `{{ ov:` not closed on its line, or a reference that does not parse.
pub fn scan(text: &str, name: &str) -> Result<Vec<Placeholder>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        let mut from = 0;
        while let Some(open) = line[from..].find("{{") {
            let open = from + open;
            let inner_start = open + 2;
            let rest = &line[inner_start..];
            let trimmed = rest.trim_start();
            if !trimmed.starts_with("ov:") {
                from = inner_start;
                continue;
            }
            let Some(close) = rest.find("}}") else {
                return Err(OvError::new(format!(
                    "{name}:{n}: `{{{{` opens a reference that is not closed with `}}}}` on the same line"
                ))
                .hint(ov_plugin_support::edit_command(Path::new(name))));
            };
            let inner = rest[..close].trim();
            let reference =
                refs::parse(inner).map_err(|e| e.context(format!("{name}:{n}: bad reference")))?;
            let end = inner_start + close + 2;
            out.push(Placeholder {
                line: n,
                start: offset + open,
                end: offset + end,
                reference,
            });
            from = end;
        }
        offset += line.len();
    }
    Ok(out)
}

/// The template with each placeholder replaced by `values[i]`.
pub fn render(text: &str, found: &[Placeholder], values: &[&str]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut at = 0;
    for (p, v) in found.iter().zip(values) {
        out.push_str(&text[at..p.start]);
        out.push_str(v);
        at = p.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The files `ov inject -o` wrote, and a hash of what it wrote, so a file
/// that is not ov's (or was edited since) is not overwritten unasked.
fn record_path(paths: &Paths) -> PathBuf {
    paths.data_dir.join("injected.json")
}

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn load_record(paths: &Paths) -> BTreeMap<String, String> {
    std::fs::read(record_path(paths))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Why `out` may not be written, if it may not: never a symlink or a
/// directory, and not a file ov did not write unless `force`.
/// `command` is the `ov inject` command line without `-o`, for the hints.
pub fn refuse_overwrite(paths: &Paths, out: &Path, force: bool, command: &str) -> Result<()> {
    let shown = out.display();
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if ov_plugin_support::is_missing(&e) => return Ok(()),
        Err(e) => return Err(OvError::new(format!("cannot look at {shown}: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(OvError::new(format!(
            "{shown} is a symlink; ov inject writes only to a regular file"
        ))
        .hint(format!(
            "{} -o \"$(readlink -f {})\"   # the file it points to",
            command,
            ov_plugin_support::shell_quote(out)
        )));
    }
    if !meta.is_file() {
        return Err(OvError::new(format!(
            "{shown} is not a regular file (a directory?); ov inject writes a file"
        ))
        .hint(format!(
            "{} -o {}/{}",
            command,
            ov_plugin_support::shell_quote(out),
            "rendered"
        )));
    }
    if force {
        return Ok(());
    }
    let key = absolute(out);
    let current = std::fs::read(out).map(|b| digest(&b)).ok();
    if current.is_some() && load_record(paths).get(&key) == current.as_ref() {
        return Ok(());
    }
    Err(OvError::new(format!(
        "{shown} exists and is not a file ov inject wrote (or it was changed since)"
    ))
    .hint(format!(
        "{command} -o {} --force   # replace it anyway",
        ov_plugin_support::shell_quote(out)
    )))
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// Write `text` to `out`: mode 0600, atomically, under the file's lock,
/// and remember that ov wrote it.
pub fn write(paths: &Paths, out: &Path, text: &[u8]) -> Result<()> {
    let shown = out.display();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(OvError::new(format!("{} does not exist", dir.display()))
            .hint(format!("mkdir -p {}", ov_plugin_support::shell_quote(dir))));
    }
    ov_plugin_support::with_lock(out, || {
        ov_plugin_support::write_atomic(out, text, Some(0o600))
    })
    .map_err(|e| OvError::new(format!("cannot write {shown}: {e}")))?;
    let record = record_path(paths);
    ov_plugin_support::create_dir_all_mode(&paths.data_dir, 0o700)?;
    ov_plugin_support::with_lock(&record, || {
        let mut known = load_record(paths);
        known.insert(absolute(out), digest(text));
        let json = serde_json::to_vec_pretty(&known).map_err(std::io::Error::other)?;
        ov_plugin_support::write_atomic(&record, &json, Some(0o600))
    })
    .map_err(|e| OvError::new(format!("cannot write {}: {e}", record.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ov_plugin_api::EntryRef;

    #[test]
    fn placeholders_are_found_with_their_lines_and_others_pass_through() {
        let t = "a={{ ov://svc/k }}\nb={{ .Go }} c={{ov://x/y/z}}\n";
        let found = scan(t, "t").unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].line, 1);
        assert_eq!(found[1].line, 2);
        assert_eq!(
            found[1].reference,
            Reference::Entry(EntryRef::new("x/y", "z"))
        );
        let out = render(t, &found, &["V1", "V2"]);
        assert_eq!(out.as_str(), "a=V1\nb={{ .Go }} c=V2\n");
    }

    #[test]
    fn broken_placeholders_name_their_line() {
        let e = scan("ok\nx={{ ov://svc/k\n", "tpl").unwrap_err();
        assert!(e.message.starts_with("tpl:2: "), "{}", e.message);
        let e = scan("x={{ ov://svc }}\n", "tpl").unwrap_err();
        assert!(
            e.message.starts_with("tpl:1: bad reference"),
            "{}",
            e.message
        );
        assert!(e.render().contains("no key"), "{}", e.render());
    }
}
