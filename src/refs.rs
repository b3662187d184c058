//! References: `ov://SERVICE/KEY` names an entry of the store, so a file
//! that is committed (an env file, a template) can say where a secret
//! lives without holding it.
//!
//! The rule: after `ov://`, the text up to the **last** `/` is the service
//! and the rest is the key, so `ov://ov/api-key/openrouter` is service
//! `ov/api-key`, key `openrouter`. A `/` inside a key, and a `%`, are
//! written `%2F` and `%25` (any byte may be written `%XX`). The service
//! spelled `manifest` names a manifest secret instead: `ov://manifest/NAME`;
//! a store service really named `manifest` is reached as `ov://%6Danifest/KEY`.

use std::fmt;

use ov_plugin_api::{EntryRef, Secret};

use crate::error::{OvError, Result};
use crate::store::{Miss, Source, Store, validate_entry};

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An entry of the store.
    Entry(EntryRef),
    /// A secret the project's manifest declares.
    Manifest(String),
}

pub const SCHEME: &str = "ov://";

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Entry(e) => {
                let manifest = if e.service == "manifest" {
                    "%6Danifest".to_owned()
                } else {
                    e.service.replace('%', "%25")
                };
                write!(
                    f,
                    "{SCHEME}{manifest}/{}",
                    e.key.replace('%', "%25").replace('/', "%2F")
                )
            }
            Reference::Manifest(name) => write!(f, "{SCHEME}manifest/{name}"),
        }
    }
}

/// Whether `text` is meant as a reference: it starts with `ov:/`. Such a
/// text that does not parse is an error, never a literal value.
pub fn looks_like(text: &str) -> bool {
    text.starts_with("ov:/")
}

/// Parse a whole reference (`ov://SERVICE/KEY`, `ov://manifest/NAME`).
pub fn parse(text: &str) -> Result<Reference> {
    let bad = |why: &str| {
        OvError::new(format!(
            "'{}' is not a reference: {why}",
            text.escape_debug()
        ))
        .hint("ov://SERVICE/KEY   # such as ov://ov/api-key/openrouter; a '/' in a key is %2F")
    };
    let Some(rest) = text.strip_prefix(SCHEME) else {
        return Err(bad("it must start with ov://"));
    };
    if rest.is_empty() {
        return Err(bad("nothing follows ov://"));
    }
    let Some((service, key)) = rest.rsplit_once('/') else {
        return Err(bad("it names a service but no key"));
    };
    if service == "manifest" {
        let name = decode(key).map_err(|why| bad(&why))?;
        if !crate::dotenv::valid_name(&name) {
            return Err(bad(
                "a manifest secret is named like a variable (letters, digits, '_')",
            ));
        }
        return Ok(Reference::Manifest(name));
    }
    let service = decode(service).map_err(|why| bad(&why))?;
    let key = decode(key).map_err(|why| bad(&why))?;
    let entry = validate_entry(&service, &key).map_err(|e| bad(&e.message))?;
    Ok(Reference::Entry(entry))
}

/// `%XX` escapes decoded; the result must be UTF-8.
fn decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("'%' at byte {i} is not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the %-escapes do not spell UTF-8".to_owned())
}

/// Where a resolved value came from.
#[derive(Debug, Clone)]
pub enum Origin {
    Store(Source),
    Manifest(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Store(s) => match &s.location {
                Some(l) => write!(f, "{} ({l})", s.backend),
                None => f.write_str(&s.backend),
            },
            Origin::Manifest(m) => write!(f, "manifest {m}"),
        }
    }
}

/// Why one reference did not resolve.
#[derive(Debug, Clone)]
pub struct Unresolved {
    pub reference: Reference,
    pub why: String,
    pub hints: Vec<String>,
}

/// Resolves references against the store (and the project's manifest);
/// every miss is kept, so a caller can name all of them at once. A value
/// is never resolved again: one that is itself `ov://…` is passed on as
/// it is, so references cannot loop.
pub struct Resolver<'a> {
    store: &'a Store,
    paths: &'a crate::paths::Paths,
    /// The manifest found from the current directory, read on first use.
    manifest: std::cell::OnceCell<std::result::Result<crate::manifest::Manifest, OvError>>,
}

impl fmt::Debug for Resolver<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}

impl<'a> Resolver<'a> {
    pub fn new(store: &'a Store, paths: &'a crate::paths::Paths) -> Self {
        Resolver {
            store,
            paths,
            manifest: std::cell::OnceCell::new(),
        }
    }

    /// One reference: the value and where it came from, or why not.
    pub fn resolve(
        &self,
        r: &Reference,
    ) -> Result<std::result::Result<(Secret, Origin), Unresolved>> {
        match r {
            Reference::Entry(entry) => Ok(match self.store.get(entry)? {
                Ok((value, source)) => Ok((value, Origin::Store(source))),
                Err(miss) => Err(unresolved(r, entry, &miss)),
            }),
            Reference::Manifest(name) => {
                let miss = |e: &OvError| Unresolved {
                    reference: r.clone(),
                    why: e.message.clone(),
                    hints: e.hints.clone(),
                };
                let manifest = match self.manifest.get_or_init(|| crate::manifest::load(None)) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(miss(e))),
                };
                let decl = match manifest.get(name) {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(miss(&e))),
                };
                // A required secret is generated once, on first use.
                match crate::manifest::resolve::get_or_generate(self.paths, self.store, decl) {
                    Ok((value, _)) => Ok(Ok((
                        value,
                        Origin::Manifest(format!("{} in {}", decl.entry, manifest.path.display())),
                    ))),
                    Err(e) => Ok(Err(miss(&e))),
                }
            }
        }
    }
}

fn unresolved(r: &Reference, entry: &EntryRef, miss: &Miss) -> Unresolved {
    let reasons = miss.reasons();
    let why = if reasons.is_empty() {
        "no such secret in the store".to_owned()
    } else {
        format!("not found ({})", reasons.join("; "))
    };
    let mut hints = miss.hints();
    hints.push(format!(
        "ov secrets set {} {}",
        shell_word(&entry.service),
        shell_word(&entry.key)
    ));
    Unresolved {
        reference: r.clone(),
        why,
        hints,
    }
}

/// A name as one shell word.
pub fn shell_word(s: &str) -> String {
    ov_plugin_support::shell_quote(std::path::Path::new(s))
}

/// The error for references that did not resolve: each one named, with
/// where it was written (`what(i)`), and the hints of every miss once.
pub fn unresolved_error(misses: &[(String, Unresolved)], doing: &str) -> OvError {
    let lines: Vec<String> = misses
        .iter()
        .map(|(at, u)| format!("{at}: {}: {}", u.reference, u.why))
        .collect();
    let mut e = OvError::new(format!(
        "{} reference{} did not resolve, so {doing}:\n  {}",
        misses.len(),
        if misses.len() == 1 { "" } else { "s" },
        lines.join("\n  ")
    ));
    let mut seen = Vec::new();
    for h in misses.iter().flat_map(|(_, u)| &u.hints) {
        if !seen.contains(h) {
            seen.push(h.clone());
            e = e.hint(h.clone());
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str, k: &str) -> Reference {
        Reference::Entry(EntryRef::new(s, k))
    }

    #[test]
    fn the_last_slash_splits_service_from_key() {
        assert_eq!(
            parse("ov://ov/api-key/openrouter").unwrap(),
            entry("ov/api-key", "openrouter")
        );
        assert_eq!(
            parse("ov://myapp/prod/DB").unwrap(),
            entry("myapp/prod", "DB")
        );
        assert_eq!(parse("ov://svc/a%2Fb").unwrap(), entry("svc", "a/b"));
        assert_eq!(parse("ov://svc/100%25").unwrap(), entry("svc", "100%"));
        assert_eq!(
            parse("ov://manifest/DB_PASSWORD").unwrap(),
            Reference::Manifest("DB_PASSWORD".into())
        );
        assert_eq!(parse("ov://%6Danifest/k").unwrap(), entry("manifest", "k"));
    }

    #[test]
    fn a_reference_prints_as_it_parses() {
        for r in [
            entry("ov/api-key", "openrouter"),
            entry("svc", "a/b%"),
            entry("manifest", "k"),
            Reference::Manifest("X".into()),
        ] {
            assert_eq!(parse(&r.to_string()).unwrap(), r, "{r}");
        }
    }

    #[test]
    fn malformed_references_are_errors_that_say_why() {
        for (text, why) in [
            ("ov:/x", "must start with ov://"),
            ("ov://", "nothing follows"),
            ("ov://svc", "no key"),
            ("ov://svc/", "key name is empty"),
            ("ov:///k", "service name is empty"),
            ("ov://a/../k", "'..' segment"),
            ("ov://svc/%zz", "two hex digits"),
            ("ov://svc/%ff", "UTF-8"),
            ("ov://svc/a%0Ab", "control character"),
            ("ov://manifest/not-a-name", "named like a variable"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(why), "{text}: {}", e.message);
            assert_eq!(e.hints.len(), 1);
        }
        assert!(looks_like("ov:/x") && !looks_like("ov-not") && !looks_like("https://x"));
    }
}
