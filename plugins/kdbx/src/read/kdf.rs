//! The composite key (password and key file) and its derivation into the
//! transformed key, the one secret a cached unlock keeps.

use aes::Aes256;
use base64::Engine as _;
use cipher::{BlockCipherEncrypt, KeyInit};
use quick_xml::events::Event;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::header::{Argon2Variant, Kdf};
use super::{ReadError, corrupt};

pub type Key32 = Zeroizing<[u8; 32]>;

/// SHA-256 over the SHA-256 of the password and the key file's key, as
/// KeePass composes them.
pub fn composite_key(password: Option<&str>, key_file: Option<&[u8]>) -> Key32 {
    let mut outer = Sha256::new();
    if let Some(pw) = password {
        outer.update(Sha256::digest(pw.as_bytes()));
    }
    if let Some(file) = key_file {
        outer.update(&*key_file_key(file));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&outer.finalize());
    out
}

/// The key a key file contributes: the data of an XML key file (version 1
/// base64, version 2 hex), 32 raw bytes, 64 hex digits, or else the SHA-256
/// of the whole file.
fn key_file_key(file: &[u8]) -> Zeroizing<Vec<u8>> {
    if let Some(key) = xml_key_file(file) {
        return key;
    }
    if file.len() == 32 {
        return Zeroizing::new(file.to_vec());
    }
    if file.len() == 64
        && let Ok(key) = hex::decode(file)
    {
        return Zeroizing::new(key);
    }
    Zeroizing::new(Sha256::digest(file).to_vec())
}

fn xml_key_file(file: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut reader = quick_xml::Reader::from_reader(file);
    let mut path: Vec<String> = Vec::new();
    let (mut version, mut data) = (None::<String>, None::<Zeroizing<String>>);
    loop {
        match reader.read_event().ok()? {
            Event::Eof => break,
            Event::Start(e) => {
                if path.len() > 8 {
                    return None;
                }
                path.push(e.name().as_ref().to_owned());
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                let at = |p: [&str; 3]| path.len() == 3 && path.iter().zip(p).all(|(a, b)| a == b);
                if at(["KeyFile", "Meta", "Version"]) {
                    version = Some(text.into_owned());
                } else if at(["KeyFile", "Key", "Data"]) {
                    data = Some(Zeroizing::new(text.into_owned()));
                }
            }
            _ => {}
        }
    }
    let data = data?;
    if version.as_deref() == Some("2.0") {
        let digits: Zeroizing<String> =
            Zeroizing::new(data.chars().filter(|c| !c.is_whitespace()).collect());
        return Some(Zeroizing::new(
            hex::decode(digits.as_bytes()).unwrap_or_else(|_| data.as_bytes().to_vec()),
        ));
    }
    Some(Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .unwrap_or_else(|_| data.as_bytes().to_vec()),
    ))
}

/// Derive the transformed key from the composite key.
pub fn transform(kdf: &Kdf, composite: &[u8; 32]) -> Result<Key32, ReadError> {
    let mut out = Zeroizing::new([0u8; 32]);
    match kdf {
        Kdf::Aes { rounds, seed } => {
            let aes = Aes256::new(seed.into());
            let mut blocks = Zeroizing::new(*composite);
            let (a, b) = blocks.split_at_mut(16);
            let (a, b): (&mut [u8; 16], &mut [u8; 16]) = (
                a.try_into().map_err(|_| corrupt("AES-KDF block"))?,
                b.try_into().map_err(|_| corrupt("AES-KDF block"))?,
            );
            for _ in 0..*rounds {
                aes.encrypt_block(a.into());
                aes.encrypt_block(b.into());
            }
            out.copy_from_slice(&Sha256::digest(blocks.as_slice()));
        }
        Kdf::Argon2 {
            variant,
            version,
            memory,
            iterations,
            parallelism,
            salt,
        } => {
            let algorithm = match variant {
                Argon2Variant::D => argon2::Algorithm::Argon2d,
                Argon2Variant::Id => argon2::Algorithm::Argon2id,
            };
            let version = match version {
                0x10 => argon2::Version::V0x10,
                0x13 => argon2::Version::V0x13,
                _ => return Err(corrupt("an unknown Argon2 version")),
            };
            let invalid = |e: argon2::Error| corrupt(format!("Argon2 parameters refused: {e}"));
            let params = argon2::Params::new(
                u32::try_from(memory / 1024).map_err(|_| corrupt("Argon2 memory too large"))?,
                u32::try_from(*iterations).map_err(|_| corrupt("too many Argon2 iterations"))?,
                *parallelism,
                Some(32),
            )
            .map_err(invalid)?;
            argon2::Argon2::new(algorithm, version, params)
                .hash_password_into(composite, salt, &mut *out)
                .map_err(invalid)?;
        }
    }
    Ok(out)
}
