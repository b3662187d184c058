//! The plaintext backend: `credentials.toml` in ov's config directory.
//!
//! Layout: one table per service, one string per key.
//!
//! ```toml
//! ["ov/vnc"]
//! password = "s3cret"
//! ```
//!
//! The file must be a regular file owned by the user with mode 0600; anything
//! else is refused with the command that fixes it. Writes hold a lock and
//! replace the file atomically, so comments and other entries survive.

use std::io;
use std::path::{Path, PathBuf};

use ov_plugin_api::{
    Availability, Backend, BackendError, CheckDecl, CheckReport, Context, Description, EntryList,
    EntryRef, ErrorKind, Secret, Status, service_matches,
};
use ov_plugin_support::{
    FileProblem, check_private_file, edit_command, private_file_report, report, toml_error_message,
    with_lock, write_atomic,
};
use toml_edit::{DocumentMut, Item, Table, TableLike, value};

pub const FILE_NAME: &str = "credentials.toml";
const HEADER: &str = "# ov plaintext credentials: one [\"service\"] table per service, key = \"value\".\n\
# Keep this file mode 0600: it holds secrets unencrypted.\n";

#[derive(Debug, Default)]
pub struct ConfigBackend;

pub fn credentials_path(ctx: &Context) -> PathBuf {
    ctx.config_dir.join(FILE_NAME)
}

fn io_error(err: io::Error) -> BackendError {
    BackendError::from(err)
}

fn problem_error(problem: &FileProblem) -> BackendError {
    BackendError::of(ErrorKind::Permissions, problem.message()).hint(problem.fix())
}

/// Read and parse the file; `None` when it does not exist.
fn load(path: &Path) -> Result<Option<DocumentMut>, BackendError> {
    match check_private_file(path).map_err(io_error)? {
        Ok(false) => return Ok(None),
        Ok(true) => {}
        Err(problem) => return Err(problem_error(&problem)),
    }
    let text = ov_plugin_support::read_regular(path)
        .and_then(|b| {
            String::from_utf8(b)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
        })
        .map_err(|e| io_error(ov_plugin_support::io_context("read", path, e)))?;
    parse(path, &text).map(Some)
}

fn parse(path: &Path, text: &str) -> Result<DocumentMut, BackendError> {
    text.parse::<DocumentMut>().map_err(|e| {
        BackendError::of(ErrorKind::Corrupt, toml_error_message(path, text, &e)).hint(format!(
            "{}  # fix the syntax; ov leaves the file as it is",
            edit_command(path)
        ))
    })
}

fn lookup(
    doc: &DocumentMut,
    entry: &EntryRef,
    path: &Path,
) -> Result<Option<Secret>, BackendError> {
    let Some(item) = doc
        .get(&entry.service)
        .and_then(Item::as_table_like)
        .and_then(|t| t.get(&entry.key))
    else {
        return Ok(None);
    };
    match item.as_str() {
        Some(s) => Ok(Some(Secret::from(s))),
        None => Err(BackendError::of(
            ErrorKind::Corrupt,
            format!(
                "{}: [\"{}\"] {} is not a string",
                path.display(),
                entry.service,
                entry.key
            ),
        )),
    }
}

/// Lock, load, change, write back. `change` returns whether it changed
/// anything, or refuses.
fn modify<T>(
    path: &Path,
    change: impl FnOnce(&mut DocumentMut) -> Result<(T, bool), BackendError>,
) -> Result<T, BackendError> {
    with_lock(path, || {
        let existing = load(path)?;
        let is_new = existing.is_none();
        let mut doc = existing.unwrap_or_default();
        let (out, changed) = change(&mut doc)?;
        if changed {
            let mut text = doc.to_string();
            if is_new {
                // Once written, the header is the first table's leading
                // comment and later writes keep it.
                text.insert_str(0, HEADER);
            }
            write_atomic(path, text.as_bytes(), Some(0o600))?;
        }
        Ok(out)
    })
}

/// An item ov did not write (a top-level `svc = "x"`, a number, a nested
/// table) is the user's: ov neither replaces nor removes it.
fn foreign_shape(path: &Path, what: &str, item: &Item) -> BackendError {
    let shape = item.type_name();
    BackendError::of(
        ErrorKind::InvalidInput,
        format!(
            "{}: {what} is {} {shape}, not what ov writes there; ov leaves it as it is",
            path.display(),
            if shape.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            },
        ),
    )
    .hint(format!(
        "{}   # move it into a [\"service\"] table as key = \"value\", or rename it",
        edit_command(path)
    ))
}

/// The entry's key in its service table is absent or a string ov wrote.
fn ours(path: &Path, table: &dyn TableLike, entry: &EntryRef) -> Result<(), BackendError> {
    match table.get(&entry.key) {
        Some(old) if !old.is_str() => Err(foreign_shape(
            path,
            &format!("[{:?}] {}", entry.service, entry.key),
            old,
        )),
        _ => Ok(()),
    }
}

impl Backend for ConfigBackend {
    fn describe(&self) -> Description {
        Description {
            name: "config".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: format!("plaintext {FILE_NAME} in the ov config directory (mode 0600)"),
            priority: 40,
            writable: true,
            plaintext: true,
            needs_unlock: false,
            listable: true,
            waits: false,
            ..Description::default()
        }
    }

    fn probe(&self, ctx: &Context) -> Availability {
        Availability::Available {
            location: Some(credentials_path(ctx).display().to_string()),
        }
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        let path = credentials_path(ctx);
        match load(&path)? {
            Some(doc) => lookup(&doc, entry, &path),
            None => Ok(None),
        }
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, secret: &Secret) -> Result<(), BackendError> {
        let path = credentials_path(ctx);
        modify(&path, |doc| {
            let table = doc
                .entry(&entry.service)
                .or_insert_with(|| Item::Table(Table::new()));
            let Some(t) = table.as_table_like_mut() else {
                return Err(foreign_shape(
                    &path,
                    &format!("top-level {:?}", entry.service),
                    table,
                ));
            };
            ours(&path, &*t, entry)?;
            t.insert(&entry.key, value(secret.expose()));
            Ok(((), true))
        })
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        let path = credentials_path(ctx);
        modify(&path, |doc| {
            let Some(table) = doc
                .get_mut(&entry.service)
                .and_then(Item::as_table_like_mut)
            else {
                return Ok((false, false));
            };
            ours(&path, &*table, entry)?;
            let removed = table.remove(&entry.key).is_some();
            let now_empty = table.is_empty();
            if now_empty {
                doc.remove(&entry.service);
            }
            Ok((removed, removed))
        })
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<EntryList, BackendError> {
        let path = credentials_path(ctx);
        let Some(doc) = load(&path)? else {
            return Ok(EntryList::default());
        };
        let mut out = Vec::new();
        for (svc, item) in doc.iter() {
            if !service_matches(svc, service) {
                continue;
            }
            if let Some(table) = item.as_table_like() {
                for (key, v) in table.iter() {
                    if v.is_str() {
                        out.push(EntryRef::new(svc, key));
                    }
                }
            }
        }
        out.sort();
        Ok(out.into())
    }

    fn declare_checks(&self) -> Vec<CheckDecl> {
        vec![
            CheckDecl::new(MODE_CHECK, MODE_TITLE),
            CheckDecl::new(PARSE_CHECK, PARSE_TITLE).after(MODE_CHECK),
        ]
    }

    fn run_check(&self, ctx: &Context, id: &str) -> Vec<CheckReport> {
        let path = credentials_path(ctx);
        match id {
            MODE_CHECK => vec![mode_check(&path)],
            PARSE_CHECK => parse_check(&path).into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

const MODE_CHECK: &str = "config.credentials_mode";
const MODE_TITLE: &str = "plaintext credentials file permissions";
const PARSE_CHECK: &str = "config.credentials_parse";
const PARSE_TITLE: &str = "plaintext credentials file parses";

fn mode_check(path: &Path) -> CheckReport {
    let mut mode = private_file_report(MODE_CHECK, MODE_TITLE, path);
    if mode.status == Status::Ok && !path.exists() {
        mode.finding = format!(
            "{} does not exist; nothing is stored in plaintext",
            path.display()
        );
    }
    mode
}

/// Nothing when there is no file to parse.
fn parse_check(path: &Path) -> Option<CheckReport> {
    let mode = private_file_report(MODE_CHECK, MODE_TITLE, path);
    if mode.status == Status::Ok && !path.exists() {
        return None;
    }
    let (parse_id, parse_title) = (PARSE_CHECK, PARSE_TITLE);
    if mode.status == Status::Fail {
        let mut r = report(
            parse_id,
            parse_title,
            Status::Skip,
            "skipped: permissions come first",
        );
        r.depends_on = vec![MODE_CHECK.into()];
        return Some(r);
    }
    let mut r = match load(path) {
        Ok(doc) => {
            let n = doc
                .map(|d| {
                    d.iter()
                        .filter_map(|(_, i)| i.as_table_like())
                        .map(|t| t.len())
                        .sum::<usize>()
                })
                .unwrap_or(0);
            report(
                parse_id,
                parse_title,
                Status::Ok,
                format!(
                    "{n} entr{} stored in plaintext",
                    if n == 1 { "y" } else { "ies" }
                ),
            )
        }
        Err(e) => {
            let mut r = report(parse_id, parse_title, Status::Fail, e.message.clone());
            r.fix = e.hints.first().cloned();
            r
        }
    };
    r.depends_on = vec![MODE_CHECK.into()];
    Some(r)
}

ov_plugin_api::export_plugin!(ConfigBackend);
