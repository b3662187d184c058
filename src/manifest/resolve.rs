//! A manifest's secrets against the store: what each holds, generating
//! the missing ones, writing values checked against their type.

use ov_plugin_api::{EntryRef, Secret};

use crate::error::{OvError, Result};
use crate::paths::Paths;
use crate::store::{Store, Written};

use super::{Decl, Kind};

/// What the store holds for a declared secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// A value of the right format.
    Valid,
    /// No value anywhere (a generated type).
    Missing,
    /// `CHANGE_ME`, or empty.
    Placeholder,
    /// A value that is not of its type's format: why.
    Invalid(String),
    /// A manual (skip) secret that has no value yet.
    Manual,
    /// A backend that may hold it could not be searched: why, and the
    /// commands that make it searchable.
    Unknown(String, Vec<String>),
}

impl Status {
    /// Whether `validate` fails for it.
    pub fn fails(&self, decl: &Decl) -> bool {
        decl.required
            && matches!(
                self,
                Status::Missing | Status::Placeholder | Status::Invalid(_) | Status::Unknown(..)
            )
    }

    pub fn label(&self) -> &'static str {
        match self {
            Status::Valid => "ok",
            Status::Missing => "missing",
            Status::Placeholder => "placeholder",
            Status::Invalid(_) => "invalid",
            Status::Manual => "manual",
            Status::Unknown(..) => "unknown",
        }
    }
}

/// A value that stands in for one: `CHANGE_ME` (any case, as templates
/// write it) or nothing but blanks.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty() || v.eq_ignore_ascii_case("change_me") || v.eq_ignore_ascii_case("changeme")
}

/// The value the store holds for `decl`, if any. When a backend that may
/// hold it could not be searched (locked, or its service not up), ov
/// cannot tell a missing secret from a hidden one: that is an error, so
/// nothing is generated over a value that exists.
pub fn current(store: &Store, decl: &Decl) -> Result<Option<Secret>> {
    lookup(store, decl)?
}

/// [`current`], with the search that could not be completed as the inner
/// error.
fn lookup(store: &Store, decl: &Decl) -> Result<Result<Option<Secret>>> {
    read(store, &decl.entry, &decl.name)
}

/// The value at `entry` (called `name` in messages); the inner error when
/// a backend that may hold it could not be searched.
pub fn read(store: &Store, entry: &EntryRef, name: &str) -> Result<Result<Option<Secret>>> {
    let miss = match store.get(entry)? {
        Ok((v, _)) => return Ok(Ok(Some(v))),
        Err(miss) => miss,
    };
    let mut why: Vec<String> = miss
        .locked
        .iter()
        .map(|(backend, e)| format!("{backend}: {}", e.message))
        .chain(
            miss.starting()
                .chain(miss.unresponsive())
                .map(|(backend, e)| format!("{backend} not searched: {}", e.message)),
        )
        .collect();
    why.dedup();
    if why.is_empty() {
        return Ok(Ok(None));
    }
    let mut e = OvError::new(format!(
        "cannot tell whether {name} is stored ({}); nothing was generated or changed",
        why.join("; ")
    ));
    for (_, err) in miss.locked.iter().chain(miss.starting()) {
        for h in &err.hints {
            e = e.hint(h.clone());
        }
    }
    Ok(Err(e.hint("ov doctor   # what is locked or not running")))
}

/// The status of `decl` and its value.
pub fn status(store: &Store, decl: &Decl) -> Result<(Status, Option<Secret>)> {
    let value = match lookup(store, decl)? {
        Ok(v) => v,
        Err(unseen) => return Ok((Status::Unknown(unseen.message, unseen.hints), None)),
    };
    let status = match &value {
        None if decl.kind == Kind::Skip => Status::Manual,
        None => Status::Missing,
        Some(v) if is_placeholder(v.expose()) && decl.kind == Kind::Skip => Status::Manual,
        Some(v) if is_placeholder(v.expose()) => Status::Placeholder,
        Some(v) => match decl.kind.check(v.expose()) {
            Some(why) => Status::Invalid(why),
            None => Status::Valid,
        },
    };
    Ok((status, value))
}

/// Generate a value for `decl` and store it (for htpasswd, the password
/// first, then the line made from it). Returns the value and the write.
pub fn generate(store: &Store, decl: &Decl) -> Result<(Secret, Written)> {
    let made = decl.kind.generate(decl.hash)?;
    if let (Some(pw), Some(entry)) = (&made.password, decl.password_entry()) {
        store.set(&entry, pw)?;
    }
    let written = store.set(&decl.entry, &made.value)?;
    Ok((made.value, written))
}

/// The value of `decl`, generating and storing a required one that is
/// missing. Read, check and write happen under one lock (the one
/// `ov secrets ensure` takes), so concurrent callers all see the value
/// the first one stored.
pub fn get_or_generate(
    paths: &Paths,
    store: &Store,
    decl: &Decl,
) -> Result<(Secret, Option<Written>)> {
    if let Some(v) = current(store, decl)? {
        return Ok((v, None));
    }
    let lock = paths.ensure_lock();
    ov_plugin_support::with_lock(&lock, || -> Result<_> {
        if let Some(v) = current(store, decl)? {
            return Ok((v, None));
        }
        if !decl.kind.generated() {
            return Err(OvError::new(format!(
                "{} has no value; it is set by hand (type skip)",
                decl.name
            ))
            .hint(format!("ov manifest set {}", decl.name)));
        }
        if !decl.required {
            return Err(OvError::new(format!(
                "{} has no value; it is optional, so ov does not generate it",
                decl.name
            ))
            .hint(format!("ov manifest set {}", decl.name))
            .hint(format!("ov manifest generate {}", decl.name)));
        }
        let (v, w) = generate(store, decl)?;
        Ok((v, Some(w)))
    })
}

/// Store `value` for `decl` after checking it against the type. For an
/// htpasswd secret `value` is the password: the line is made from it.
pub fn set(store: &Store, decl: &Decl, value: &Secret) -> Result<Written> {
    if let Kind::Htpasswd(user) = &decl.kind {
        let line = super::kind::htpasswd_line(user, value, decl.hash)?;
        if let Some(entry) = decl.password_entry() {
            store.set(&entry, value)?;
        }
        return store.set(&decl.entry, &line);
    }
    if let Some(why) = decl.kind.check(value.expose()) {
        return Err(OvError::usage(format!(
            "the value for {} ({}) is {why}; nothing was stored",
            decl.name, decl.kind
        ))
        .hint(match decl.kind.generated() {
            true => format!(
                "ov manifest generate {} --force   # a fresh value of the right format",
                decl.name
            ),
            false => format!("ov manifest set {}", decl.name),
        }));
    }
    store.set(&decl.entry, value)
}
