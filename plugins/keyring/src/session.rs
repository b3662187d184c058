//! ov's own encrypted Secret Service session, for the read path.
//!
//! A read is what services do at start-up, so it has to be quick. The
//! `secret-service` crate opens its session with a textbook
//! square-and-multiply over a 1024-bit private exponent; that alone was
//! over half of an `ov secrets get` (see docs/decisions.md). Here the same
//! algorithm the crate and libsecret speak, `dh-ietf1024-sha256-aes128-cbc-pkcs7`
//! (the 1024-bit MODP group of RFC 2409, HKDF-SHA256, AES-128-CBC), uses
//! constant-time Montgomery exponentiation and a 256-bit private exponent.
//! The group's prime is safe, so a 256-bit exponent costs an attacker about
//! 2^128 work, more than the group itself offers (~80 bits); libsecret's
//! peers accept any exponent.
//!
//! Reads need three calls: `SearchItems` (no session yet: a miss costs no
//! key exchange), `OpenSession`, and the item's `GetSecret`. Writes, lists
//! and the doctor keep using the crate.

use std::collections::HashMap;

use crypto_bigint::modular::ConstMontyParams;
use crypto_bigint::{U256, U1024, const_monty_form, const_monty_params};
use zbus::blocking::Connection;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zeroize::Zeroizing;

pub const ALGORITHM: &str = "dh-ietf1024-sha256-aes128-cbc-pkcs7";
pub const DEST: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE: &str = "org.freedesktop.Secret.Service";
const ITEM: &str = "org.freedesktop.Secret.Item";

const_monty_params!(
    Oakley1024,
    U1024,
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
     4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
     EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    "The 1024-bit MODP group of RFC 2409 (Oakley group 2), the Secret Service's DH group"
);
const_monty_form!(Residue, Oakley1024);

/// What can go wrong: the bus (mapped by the caller like any other bus
/// error), or a provider whose answers do not make sense.
#[derive(Debug)]
pub enum Error {
    Bus(zbus::Error),
    Protocol(String),
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        Error::Bus(e)
    }
}

impl From<zbus::zvariant::Error> for Error {
    fn from(e: zbus::zvariant::Error) -> Self {
        Error::Bus(e.into())
    }
}

/// An open session: its object path and the AES key both sides derived.
pub struct Session {
    pub path: OwnedObjectPath,
    key: Zeroizing<[u8; 16]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("path", &self.path.as_str())
            .finish_non_exhaustive()
    }
}

fn call<B, R>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> Result<R, Error>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    let reply = conn.call_method(Some(DEST), path, Some(iface), method, body)?;
    Ok(reply.body().deserialize::<R>()?)
}

/// A private exponent: 256 random bits, never zero.
fn private_exponent() -> Result<Zeroizing<U256>, Error> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    loop {
        getrandom::fill(bytes.as_mut())
            .map_err(|e| Error::Protocol(format!("the system's random source failed: {e}")))?;
        let x = Zeroizing::new(U256::from_be_slice(bytes.as_ref()));
        if *x != U256::ZERO {
            return Ok(x);
        }
    }
}

impl Session {
    /// Negotiate a session with the provider.
    pub fn open(conn: &Connection) -> Result<Self, Error> {
        let x = private_exponent()?;
        let ours = Residue::new(&U1024::from_u8(2)).pow(&*x).retrieve();
        let (output, path): (OwnedValue, OwnedObjectPath) = call(
            conn,
            SERVICE_PATH,
            SERVICE,
            "OpenSession",
            &(ALGORITHM, Value::from(ours.to_be_bytes().to_vec())),
        )?;
        let theirs: Vec<u8> = output.try_into().map_err(|_| {
            Error::Protocol("the provider's session reply holds no public key".into())
        })?;
        if theirs.len() > 128 {
            return Err(Error::Protocol(format!(
                "the provider's public key is {} bytes, more than the group's 128",
                theirs.len()
            )));
        }
        let y = U1024::from_be_slice(&left_pad(&theirs));
        // 0, 1 and p-1 (and anything not below p) would make the shared
        // secret guessable: a broken or hostile peer.
        let p = Oakley1024::PARAMS.modulus().get();
        if y <= U1024::ONE || y >= p.wrapping_sub(&U1024::ONE) {
            return Err(Error::Protocol(
                "the provider sent a degenerate public key".into(),
            ));
        }
        let shared = Zeroizing::new(
            Residue::new(&y)
                .pow(&*x)
                .retrieve()
                .to_be_bytes()
                .as_ref()
                .to_vec(),
        );
        let mut key = Zeroizing::new([0u8; 16]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, &shared)
            .expand(&[], key.as_mut())
            .map_err(|_| Error::Protocol("HKDF refused a 16-byte key".into()))?;
        Ok(Session { path, key })
    }

    /// Ask the provider for one item's secret and decrypt it.
    pub fn secret(
        &self,
        conn: &Connection,
        item: &ObjectPath<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (session, iv, value, _content_type): (OwnedObjectPath, Vec<u8>, Vec<u8>, String) =
            call(conn, item.as_str(), ITEM, "GetSecret", &(&self.path,))?;
        if session != self.path {
            return Err(Error::Protocol(
                "the provider answered for a different session".into(),
            ));
        }
        self.decrypt(&iv, Zeroizing::new(value))
    }

    fn decrypt(&self, iv: &[u8], mut buf: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, Error> {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockModeDecrypt, KeyIvInit};
        let iv: [u8; 16] = iv.try_into().map_err(|_| {
            Error::Protocol(format!("the secret's IV is {} bytes, not 16", iv.len()))
        })?;
        let cipher = cbc::Decryptor::<aes::Aes128>::new(&(*self.key).into(), &iv.into());
        let len = cipher
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map_err(|_| {
                Error::Protocol("the secret does not decrypt with the session key".into())
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn left_pad(bytes: &[u8]) -> [u8; 128] {
    let mut out = [0u8; 128];
    out[128 - bytes.len()..].copy_from_slice(bytes);
    out
}

/// `SearchItems` on the service: (unlocked, locked) item paths across every
/// collection.
pub fn search(
    conn: &Connection,
    attrs: &HashMap<&str, &str>,
) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>), Error> {
    call(conn, SERVICE_PATH, SERVICE, "SearchItems", &(attrs,))
}

/// Where an alias points; `None` when it is not set (the provider says `/`).
pub fn read_alias(conn: &Connection, name: &str) -> Result<Option<OwnedObjectPath>, Error> {
    let (path,): (OwnedObjectPath,) = call(conn, SERVICE_PATH, SERVICE, "ReadAlias", &(name,))?;
    Ok((path.as_str() != "/").then_some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_rfc_2409s_second_oakley_group() {
        // p = 2^1024 - 2^960 - 1 + 2^64 * (floor(2^894 pi) + 129093):
        // check the ends and that it is the prime the protocol names.
        let p = Oakley1024::PARAMS.modulus().get();
        assert_eq!(p.bit_width(), 1024);
        let bytes = p.to_be_bytes();
        assert_eq!(&bytes.as_ref()[..8], &[0xFF; 8]);
        assert_eq!(&bytes.as_ref()[120..], &[0xFF; 8]);
        assert_eq!(&bytes.as_ref()[8..12], &[0xC9, 0x0F, 0xDA, 0xA2]);
    }

    #[test]
    fn both_sides_derive_the_same_key() {
        let a = private_exponent().unwrap();
        let b = private_exponent().unwrap();
        let g = Residue::new(&U1024::from_u8(2));
        let (ga, gb) = (g.pow(&*a), g.pow(&*b));
        assert_ne!(ga.retrieve(), gb.retrieve());
        assert_eq!(gb.pow(&*a).retrieve(), ga.pow(&*b).retrieve());
    }

    #[test]
    fn a_tampered_secret_does_not_decrypt() {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockModeEncrypt, KeyIvInit};
        let s = Session {
            path: OwnedObjectPath::try_from("/s").unwrap(),
            key: Zeroizing::new([7; 16]),
        };
        let iv = [9u8; 16];
        let ct = cbc::Encryptor::<aes::Aes128>::new(&[7u8; 16].into(), &iv.into())
            .encrypt_padded_vec::<Pkcs7>(b"hunter2");
        let pt = s.decrypt(&iv, Zeroizing::new(ct.clone())).unwrap();
        assert_eq!(&pt[..], b"hunter2");
        let mut bad = ct;
        *bad.last_mut().unwrap() ^= 1;
        assert!(s.decrypt(&iv, Zeroizing::new(bad)).is_err());
        assert!(s.decrypt(&[0; 8], Zeroizing::new(vec![0; 16])).is_err());
    }
}
