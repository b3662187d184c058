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
//! key exchange), `OpenSession`, and the item's `GetSecret`; [`crate::wire`]
//! carries them. This module is the arithmetic and the cipher, with no
//! transport of its own. Writes, lists and the doctor keep using the crate.

use crypto_bigint::modular::ConstMontyParams;
use crypto_bigint::{U256, U1024, const_monty_form, const_monty_params};
use zbus::zvariant::OwnedObjectPath;
use zeroize::Zeroizing;

pub const ALGORITHM: &str = "dh-ietf1024-sha256-aes128-cbc-pkcs7";
pub const DEST: &str = "org.freedesktop.secrets";
pub const SERVICE_PATH: &str = "/org/freedesktop/secrets";
pub const SERVICE: &str = "org.freedesktop.Secret.Service";
pub const ITEM: &str = "org.freedesktop.Secret.Item";
pub const COLLECTION: &str = "org.freedesktop.Secret.Collection";

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

/// A provider whose answers do not make sense: what was wrong.
pub type Misbehaved = String;

/// `GetSecret`'s answer: session, IV, encrypted value, content type.
pub type SecretReply = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

/// Our half of a key exchange, before the provider has answered.
pub struct KeyPair {
    x: Zeroizing<U256>,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair").finish_non_exhaustive()
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

/// A private exponent: 256 random bits, never zero.
fn private_exponent() -> Result<Zeroizing<U256>, Misbehaved> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    loop {
        getrandom::fill(bytes.as_mut())
            .map_err(|e| format!("the system's random source failed: {e}"))?;
        let x = Zeroizing::new(U256::from_be_slice(bytes.as_ref()));
        if *x != U256::ZERO {
            return Ok(x);
        }
    }
}

impl KeyPair {
    /// A fresh private exponent and the public key `OpenSession` sends.
    pub fn new() -> Result<Self, Misbehaved> {
        let x = private_exponent()?;
        let public = Residue::new(&U1024::from_u8(2))
            .pow(&*x)
            .retrieve()
            .to_be_bytes()
            .to_vec();
        Ok(KeyPair { x, public })
    }

    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The session, from the provider's public key and session path.
    pub fn agree(self, theirs: &PeerKey, path: OwnedObjectPath) -> Result<Session, Misbehaved> {
        // The shared secret in each form it takes here (Montgomery form,
        // integer, bytes) is wiped when dropped.
        let monty = Zeroizing::new(Residue::new(&theirs.0).pow(&*self.x));
        let shared = Zeroizing::new(monty.retrieve());
        let bytes = Zeroizing::new(shared.to_be_bytes());
        let mut key = Zeroizing::new([0u8; 16]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, bytes.as_ref())
            .expand(&[], key.as_mut())
            .map_err(|_| "HKDF refused a 16-byte key".to_owned())?;
        Ok(Session { path, key })
    }
}

/// The provider's public key, checked: cheap to check, so a caller can
/// ask for the secret before spending the exponentiation on the key.
#[derive(Debug)]
pub struct PeerKey(U1024);

impl PeerKey {
    pub fn new(theirs: &[u8]) -> Result<Self, Misbehaved> {
        if theirs.len() > 128 {
            return Err(format!(
                "the provider's public key is {} bytes, more than the group's 128",
                theirs.len()
            ));
        }
        let y = U1024::from_be_slice(&left_pad(theirs));
        // 0, 1 and p-1 (and anything not below p) would make the shared
        // secret guessable: a broken or hostile peer. Only a key that
        // passes here is worth sending the secret under.
        let p = Oakley1024::PARAMS.modulus().get();
        if y <= U1024::ONE || y >= p.wrapping_sub(&U1024::ONE) {
            return Err("the provider sent a degenerate public key".into());
        }
        Ok(PeerKey(y))
    }
}

impl Session {
    /// The value inside a `GetSecret` answer.
    pub fn open(&self, reply: SecretReply) -> Result<Zeroizing<Vec<u8>>, Misbehaved> {
        let (session, iv, value, _content_type) = reply;
        if session != self.path {
            return Err("the provider answered for a different session".into());
        }
        self.decrypt(&iv, Zeroizing::new(value))
    }

    fn decrypt(
        &self,
        iv: &[u8],
        mut buf: Zeroizing<Vec<u8>>,
    ) -> Result<Zeroizing<Vec<u8>>, Misbehaved> {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockModeDecrypt, KeyIvInit};
        let iv: [u8; 16] = iv
            .try_into()
            .map_err(|_| format!("the secret's IV is {} bytes, not 16", iv.len()))?;
        let cipher = cbc::Decryptor::<aes::Aes128>::new(&(*self.key).into(), &iv.into());
        let len = cipher
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map_err(|_| "the secret does not decrypt with the session key".to_owned())?
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

    fn path() -> OwnedObjectPath {
        OwnedObjectPath::try_from("/s").unwrap()
    }

    #[test]
    fn both_sides_derive_the_same_key() {
        let (a, b) = (KeyPair::new().unwrap(), KeyPair::new().unwrap());
        let (pa, pb) = (a.public().to_vec(), b.public().to_vec());
        assert_ne!(pa, pb);
        let (pa, pb) = (PeerKey::new(&pa).unwrap(), PeerKey::new(&pb).unwrap());
        let (sa, sb) = (a.agree(&pb, path()).unwrap(), b.agree(&pa, path()).unwrap());
        assert_eq!(*sa.key, *sb.key);
    }

    #[test]
    fn degenerate_or_oversized_peer_keys_are_refused() {
        let p = Oakley1024::PARAMS.modulus().get();
        let p_minus_1 = p.wrapping_sub(&U1024::ONE).to_be_bytes().to_vec();
        for theirs in [
            vec![],
            vec![1],
            p_minus_1,
            p.to_be_bytes().to_vec(),
            vec![2; 129],
        ] {
            let err = PeerKey::new(&theirs).unwrap_err();
            assert!(err.contains("public key"), "{err}");
        }
    }

    #[test]
    fn a_tampered_secret_does_not_decrypt() {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockModeEncrypt, KeyIvInit};
        let s = Session {
            path: path(),
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
        let other = OwnedObjectPath::try_from("/other").unwrap();
        let err = s
            .open((other, iv.to_vec(), vec![0; 16], String::new()))
            .unwrap_err();
        assert!(err.contains("different session"), "{err}");
    }
}
