//! The outer header of a KDBX 4 file: signatures, version, the typed
//! fields up to the end marker, and the KDF parameters inside them.

use super::{ReadError, corrupt};

const SIG1: u32 = 0x9AA2_D903;
const SIG2: u32 = 0xB54B_FB67;

/// Payload ciphers, by the UUIDs KeePass gives them.
const AES256_UUID: [u8; 16] = hex_literal(b"31c1f2e6bf714350be5805216afc5aff");
const CHACHA20_UUID: [u8; 16] = hex_literal(b"d6038a2b8b6f4cb5a524339a31dbb59a");
/// Key derivations: AES-KDF (under both of its UUIDs), Argon2d, Argon2id.
const AES_KDF_UUID: [u8; 16] = hex_literal(b"c9d9f39a628a4460bf740d08c18a4fea");
const AES_KDF4_UUID: [u8; 16] = hex_literal(b"7c02bb8279a74ac0927d114a00648238");
const ARGON2D_UUID: [u8; 16] = hex_literal(b"ef636ddf8c29444b91f7a9a403e30a0c");
const ARGON2ID_UUID: [u8; 16] = hex_literal(b"9e298b1956db4773b23dfc3ec6f0a1e6");

/// A 32-digit hex literal as 16 bytes, at compile time.
const fn hex_literal(s: &[u8; 32]) -> [u8; 16] {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lower-case hex digit"),
        }
    }
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = digit(s[2 * i]) << 4 | digit(s[2 * i + 1]);
        i += 1;
    }
    out
}

/// The most Argon2 memory a header may ask for. Beyond it the file is
/// refused rather than letting a hostile header make ov allocate without
/// bound; KeePassXC's own settings stop well below it.
pub const MAX_ARGON2_MEMORY: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes256Cbc,
    ChaCha20,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argon2Variant {
    D,
    Id,
}

/// The key derivation and its parameters, salt included.
#[derive(Clone, PartialEq, Eq)]
pub enum Kdf {
    Aes {
        rounds: u64,
        seed: [u8; 32],
    },
    Argon2 {
        variant: Argon2Variant,
        version: u32,
        memory: u64,
        iterations: u64,
        parallelism: u32,
        salt: Vec<u8>,
    },
}

impl std::fmt::Debug for Kdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kdf::Aes { rounds, .. } => write!(f, "AES-KDF({rounds})"),
            Kdf::Argon2 {
                variant,
                memory,
                iterations,
                parallelism,
                ..
            } => write!(
                f,
                "Argon2{variant:?}({memory}, {iterations}, {parallelism})"
            ),
        }
    }
}

/// What the outer header says; `end` is where the header's SHA-256 starts.
#[derive(Debug, Clone)]
pub struct Header {
    pub minor: u16,
    pub cipher: Cipher,
    pub compressed: bool,
    pub master_seed: [u8; 32],
    pub iv: Vec<u8>,
    pub kdf: Kdf,
    /// The raw KDF parameter block: what a cached key is bound to.
    pub kdf_params: Vec<u8>,
    pub end: usize,
}

/// The file's format version, `(major, minor)`, from its first 12 bytes.
pub fn version(data: &[u8]) -> Result<(u16, u16), ReadError> {
    let head = data
        .get(..12)
        .ok_or_else(|| corrupt("shorter than a KeePass header"))?;
    let (sig1, sig2) = (le_u32(&head[0..4]), le_u32(&head[4..8]));
    if sig1 != SIG1 || sig2 != SIG2 {
        return Err(corrupt("not a KeePass database (wrong signature)"));
    }
    Ok((le_u16(&head[10..12]), le_u16(&head[8..10])))
}

pub fn le_u16(b: &[u8]) -> u16 {
    b.iter().rev().fold(0, |n, &x| n << 8 | u16::from(x))
}
pub fn le_u32(b: &[u8]) -> u32 {
    b.iter().rev().fold(0, |n, &x| n << 8 | u32::from(x))
}
pub fn le_u64(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |n, &x| n << 8 | u64::from(x))
}

/// `len` bytes at `pos`, or an error naming what was cut short.
pub fn take<'a>(data: &'a [u8], pos: usize, len: usize, what: &str) -> Result<&'a [u8], ReadError> {
    pos.checked_add(len)
        .and_then(|end| data.get(pos..end))
        .ok_or_else(|| corrupt(format!("truncated: {what} runs past the end")))
}

/// The typed field at `pos` (a type byte, a 32-bit length, the value) and
/// where the next one starts: the layout of both KDBX 4 headers.
pub fn field<'a>(
    data: &'a [u8],
    pos: usize,
    what: &str,
) -> Result<(u8, &'a [u8], usize), ReadError> {
    let kind = take(data, pos, 1, what)?[0];
    let len = le_u32(take(data, pos + 1, 4, what)?) as usize;
    let value = take(data, pos + 5, len, what)?;
    Ok((kind, value, pos + 5 + len))
}

/// Parse the outer header of a KDBX 4 file.
pub fn parse(data: &[u8]) -> Result<Header, ReadError> {
    let (major, minor) = version(data)?;
    if major != 4 {
        return Err(ReadError::Unsupported(format!("KDBX {major}.{minor}")));
    }
    let mut pos = 12;
    let (mut cipher, mut compressed, mut seed, mut iv, mut kdf_params) =
        (None, None, None, None, None);
    loop {
        let (kind, value, next) = field(data, pos, "a header field")?;
        pos = next;
        match kind {
            0 => break,
            2 => {
                cipher = Some(match value {
                    v if v == AES256_UUID => Cipher::Aes256Cbc,
                    v if v == CHACHA20_UUID => Cipher::ChaCha20,
                    _ => {
                        return Err(ReadError::Unsupported(
                            "a payload cipher other than AES-256 and ChaCha20".into(),
                        ));
                    }
                });
            }
            3 => {
                compressed = Some(match (value.len(), le_u32(value)) {
                    (4, 0) => false,
                    (4, 1) => true,
                    _ => return Err(corrupt("an unknown compression flag")),
                });
            }
            4 => {
                seed = Some(
                    <[u8; 32]>::try_from(value)
                        .map_err(|_| corrupt("a master seed that is not 32 bytes"))?,
                );
            }
            7 => iv = Some(value.to_vec()),
            11 => kdf_params = Some(value.to_vec()),
            // Comment, public custom data: nothing a read needs.
            1 | 12 => {}
            other => return Err(corrupt(format!("an unknown header field {other}"))),
        }
    }
    let missing = |what: &str| corrupt(format!("the header has no {what}"));
    let cipher = cipher.ok_or_else(|| missing("payload cipher"))?;
    let iv = iv.ok_or_else(|| missing("encryption IV"))?;
    let want_iv = match cipher {
        Cipher::Aes256Cbc => 16,
        Cipher::ChaCha20 => 12,
    };
    if iv.len() != want_iv {
        return Err(corrupt("an encryption IV of the wrong length"));
    }
    let kdf_params = kdf_params.ok_or_else(|| missing("key derivation parameters"))?;
    Ok(Header {
        minor,
        cipher,
        compressed: compressed.ok_or_else(|| missing("compression flag"))?,
        master_seed: seed.ok_or_else(|| missing("master seed"))?,
        iv,
        kdf: parse_kdf(&kdf_params)?,
        kdf_params,
        end: pos,
    })
}

/// A value of the KDF's variant dictionary.
enum Variant<'a> {
    U32(u32),
    U64(u64),
    Bytes(&'a [u8]),
    Other,
}

fn variant_dictionary(data: &[u8]) -> Result<Vec<(&[u8], Variant<'_>)>, ReadError> {
    let version = le_u16(take(data, 0, 2, "the KDF parameters")?);
    if version >> 8 != 1 {
        return Err(corrupt("KDF parameters of an unknown version"));
    }
    let mut pos = 2;
    let mut out = Vec::new();
    loop {
        let kind = take(data, pos, 1, "the KDF parameters")?[0];
        if kind == 0 {
            return Ok(out);
        }
        let name_len = le_u32(take(data, pos + 1, 4, "a KDF parameter")?) as usize;
        let name = take(data, pos + 5, name_len, "a KDF parameter name")?;
        pos += 5 + name_len;
        let len = le_u32(take(data, pos, 4, "a KDF parameter")?) as usize;
        let value = take(data, pos + 4, len, "a KDF parameter value")?;
        pos += 4 + len;
        let v = match (kind, len) {
            (0x04, 4) => Variant::U32(le_u32(value)),
            (0x05, 8) => Variant::U64(le_u64(value)),
            (0x42, _) => Variant::Bytes(value),
            (0x04 | 0x05, _) => return Err(corrupt("a KDF number of the wrong size")),
            _ => Variant::Other,
        };
        out.push((name, v));
    }
}

fn parse_kdf(data: &[u8]) -> Result<Kdf, ReadError> {
    let dict = variant_dictionary(data)?;
    let get = |name: &[u8]| dict.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
    let bytes = |name: &[u8]| match get(name) {
        Some(Variant::Bytes(b)) => Ok(*b),
        _ => Err(corrupt(format!(
            "the KDF parameters lack {}",
            String::from_utf8_lossy(name)
        ))),
    };
    let u64_of = |name: &[u8]| match get(name) {
        Some(Variant::U64(n)) => Ok(*n),
        _ => Err(corrupt(format!(
            "the KDF parameters lack {}",
            String::from_utf8_lossy(name)
        ))),
    };
    let uuid = bytes(b"$UUID")?;
    if uuid == AES_KDF_UUID || uuid == AES_KDF4_UUID {
        let seed = <[u8; 32]>::try_from(bytes(b"S")?)
            .map_err(|_| corrupt("an AES-KDF seed that is not 32 bytes"))?;
        return Ok(Kdf::Aes {
            rounds: u64_of(b"R")?,
            seed,
        });
    }
    let variant = if uuid == ARGON2D_UUID {
        Argon2Variant::D
    } else if uuid == ARGON2ID_UUID {
        Argon2Variant::Id
    } else {
        return Err(ReadError::Unsupported("an unknown key derivation".into()));
    };
    // A secret key or associated data: KeePassXC never writes them.
    for extra in [b"K".as_slice(), b"A".as_slice()] {
        if matches!(get(extra), Some(Variant::Bytes(b)) if !b.is_empty()) {
            return Err(ReadError::Unsupported(
                "Argon2 with a secret or associated data".into(),
            ));
        }
    }
    let memory = u64_of(b"M")?;
    if memory > MAX_ARGON2_MEMORY {
        return Err(corrupt(format!(
            "the header asks for {} MiB of Argon2 memory (ov allows at most {} MiB)",
            memory / (1024 * 1024),
            MAX_ARGON2_MEMORY / (1024 * 1024)
        )));
    }
    let u32_of = |name: &[u8]| match get(name) {
        Some(Variant::U32(n)) => Ok(*n),
        _ => Err(corrupt(format!(
            "the KDF parameters lack {}",
            String::from_utf8_lossy(name)
        ))),
    };
    Ok(Kdf::Argon2 {
        variant,
        version: u32_of(b"V")?,
        memory,
        iterations: u64_of(b"I")?,
        parallelism: u32_of(b"P")?,
        salt: bytes(b"S")?.to_vec(),
    })
}
