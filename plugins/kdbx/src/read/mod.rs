//! ov's own reader for KDBX 4, which takes either the composite key or an
//! already derived (transformed) key, so a cached unlock skips the key
//! derivation. It reads what `ov` needs: the group/entry tree with titles
//! and passwords. Writes and KDBX 3.1 go through the `keepass` crate.
//!
//! Order of work: outer header ([`header`]), the header's checksum and
//! HMAC (a wrong key stops here), the HMAC block stream, the payload
//! cipher, gzip, the inner header ([`payload`]), the XML ([`tree`]).
//! Every length read from the file is checked against what is there, the
//! decompressed payload is capped, and the XML depth is bounded.

pub mod header;
pub mod kdf;
pub mod payload;
pub mod tree;

pub use header::Header;
pub use kdf::{Key32, composite_key, transform};
pub use tree::Tree;

#[cfg(test)]
mod tests;

/// Why a read failed. `Unsupported` comes from the outer header only, so
/// a caller can hand such a file to the `keepass` crate before any key is
/// tried.
#[derive(Debug)]
pub enum ReadError {
    /// A file this reader does not handle (KDBX 3.1, Twofish…): the
    /// `keepass` crate reads it instead.
    Unsupported(String),
    /// The key does not open the file (the header HMAC fails).
    WrongKey,
    /// Damaged, truncated or hostile.
    Corrupt(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Unsupported(what) => write!(f, "{what} is not read by ov's own reader"),
            ReadError::WrongKey => f.write_str("the key does not open it"),
            ReadError::Corrupt(what) => f.write_str(what),
        }
    }
}

pub(crate) fn corrupt(what: impl Into<String>) -> ReadError {
    ReadError::Corrupt(what.into())
}

/// Open a parsed KDBX 4 file with its transformed key.
pub fn open(data: &[u8], header: &Header, transformed: &[u8; 32]) -> Result<Tree, ReadError> {
    open_limited(data, header, transformed, payload::MAX_PAYLOAD)
}

pub(crate) fn open_limited(
    data: &[u8],
    header: &Header,
    transformed: &[u8; 32],
    limit: usize,
) -> Result<Tree, ReadError> {
    let keys = payload::Keys::new(header, transformed);
    payload::check_header(data, header, &keys)?;
    let plain = payload::decrypt(data, header, &keys, limit)?;
    let (mut stream, start) = payload::inner_header(&plain)?;
    tree::parse(&plain[start..], &mut stream)
}
