//! What the store accepts: entry names that round-trip through every
//! backend, values up to the size limit, and fresh random values.

use ov_plugin_api::{EntryRef, Secret};

use crate::error::{OvError, Result};

/// The largest value ov stores.
pub use ov_plugin_api::MAX_VALUE_BYTES;

/// Refuse names that cannot round-trip through every backend.
pub fn validate_entry(service: &str, key: &str) -> Result<EntryRef> {
    for (what, name) in [("service", service), ("key", key)] {
        if name.is_empty() {
            return Err(OvError::usage(format!("the {what} name is empty"))
                .hint("ov secrets set ov/vnc password   # a service, then a key"));
        }
        if name.chars().any(char::is_control) {
            return Err(OvError::usage(format!(
                "the {what} name contains a control character (newline, tab, NUL …); \
                 names must be one printable line"
            )));
        }
        if let Some(c) = name.chars().find(|c| invisible(*c)) {
            return Err(OvError::usage(format!(
                "the {what} name contains U+{:04X}, an invisible or direction-changing \
                 character; a name must read as what it is",
                u32::from(c)
            )));
        }
        if name.len() > 256 {
            return Err(OvError::usage(format!(
                "the {what} name is {} bytes long; the limit is 256",
                name.len()
            )));
        }
    }
    if service.starts_with('/') || service.ends_with('/') || service.contains("//") {
        return Err(OvError::usage(format!(
            "service '{service}' has an empty path segment; write it like ov/vnc"
        )));
    }
    if service.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(OvError::usage(format!(
            "service '{service}' has a '.' or '..' segment; write it like ov/vnc"
        )));
    }
    Ok(EntryRef::new(service, key))
}

/// Characters that change how a name looks without showing themselves:
/// zero-width ones, bidirectional overrides and isolates, the BOM. A name
/// holding one can pose as another in every listing.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

pub fn validate_value(value: &Secret) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(OvError::usage(format!(
            "the value is {} bytes; the limit is {MAX_VALUE_BYTES} bytes (1 MiB)",
            value.len()
        ))
        .hint("store a path to the file instead, or keep large files in an encrypted volume"));
    }
    Ok(())
}

/// `n` bytes from the system's random number generator.
pub fn random_bytes(n: usize) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes)
        .map_err(|e| OvError::new(format!("the system random number generator failed: {e}")))?;
    Ok(bytes)
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<Secret> {
    let bytes = random_bytes(n)?;
    let mut s = String::with_capacity(n * 2);
    for b in bytes.iter() {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    Ok(Secret::new(s))
}
