//! A secret value that wipes its memory on drop and never prints itself.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

/// A secret value. `Debug` and `Display` print a placeholder; the bytes are
/// wiped when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// Reveal the value. Call sites are easy to grep for.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut plain = String::deserialize(deserializer)?;
        let secret = Secret::new(std::mem::take(&mut plain));
        plain.zeroize();
        Ok(secret)
    }
}

/// A secret as the bytes its store holds, for values that need not be
/// UTF-8 text (`ov secrets get --raw`). Wiped on drop, never printed; it
/// crosses the plugin boundary as lower-case hex.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }

    /// Reveal the bytes. Call sites are easy to grep for.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Secret> for SecretBytes {
    fn from(value: Secret) -> Self {
        SecretBytes(Zeroizing::new(value.expose().as_bytes().to_vec()))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {} bytes])", self.0.len())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut hex = Zeroizing::new(String::with_capacity(self.0.len() * 2));
        for b in self.0.iter() {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        serializer.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = Zeroizing::new(String::deserialize(deserializer)?);
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(serde::de::Error::custom(
                "secret bytes must be lower-case hex",
            )),
        };
        if hex.len() % 2 != 0 {
            return Err(serde::de::Error::custom("secret bytes: odd hex length"));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
        for pair in hex.as_bytes().chunks(2) {
            out.push(digit(pair[0])? << 4 | digit(pair[1])?);
        }
        Ok(SecretBytes(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_never_show() {
        let b = SecretBytes::new(Zeroizing::new(vec![0, 0xff, b'a', 0x80]));
        assert_eq!(format!("{b:?}"), "SecretBytes([redacted; 4 bytes])");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, r#""00ff6180""#);
        assert_eq!(serde_json::from_str::<SecretBytes>(&json).unwrap(), b);
        assert!(serde_json::from_str::<SecretBytes>(r#""0""#).is_err());
        assert!(serde_json::from_str::<SecretBytes>(r#""zz""#).is_err());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::from("hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("7 bytes"));
    }

    #[test]
    fn round_trips_through_json() {
        let s = Secret::from("a \"quoted\"\nvalue");
        let json = serde_json::to_string(&s).unwrap();
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), s.expose());
    }
}
