//! A manifest secret's type: how its value is generated and what a value
//! of it must look like.

use std::fmt;

use base64::Engine as _;
use ov_plugin_api::Secret;
use zeroize::Zeroizing;

use crate::error::{OvError, Result};
use crate::store::random_bytes;

/// The longest value a generator makes, in characters (base64: bytes
/// such that the text stays under it). Anything longer is a typo.
pub const MAX_LENGTH: usize = 4096;
/// bcrypt's work factor for htpasswd lines: Apache's own `htpasswd -B`
/// uses 5; 10 costs a web server a few milliseconds per login.
pub const BCRYPT_COST: u32 = 10;
/// The length of the plaintext password behind an htpasswd line.
pub const HTPASSWD_PASSWORD_LEN: usize = 32;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `password:N`: N characters of A-Za-z0-9.
    Password(usize),
    /// `hex:N`: N characters of 0-9a-f.
    Hex(usize),
    /// `base64:BYTES`: BYTES random bytes, standard base64 with padding.
    Base64(usize),
    /// `uuid`: a random (version 4) UUID, lower case.
    Uuid,
    /// `htpasswd:USER`: `USER:HASH` for HTTP basic auth.
    Htpasswd(String),
    /// `skip`: set by hand, never generated.
    Skip,
}

/// How an htpasswd line's password is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashScheme {
    #[default]
    Bcrypt,
    Apr1,
}

impl HashScheme {
    pub fn parse(text: &str) -> Option<HashScheme> {
        match text {
            "bcrypt" => Some(HashScheme::Bcrypt),
            "apr1" | "md5" => Some(HashScheme::Apr1),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Password(n) => write!(f, "password:{n}"),
            Kind::Hex(n) => write!(f, "hex:{n}"),
            Kind::Base64(n) => write!(f, "base64:{n}"),
            Kind::Uuid => f.write_str("uuid"),
            Kind::Htpasswd(user) => write!(f, "htpasswd:{user}"),
            Kind::Skip => f.write_str("skip"),
        }
    }
}

/// The types a manifest may name, for error hints.
pub const KNOWN: &str = "password:N, hex:N, base64:BYTES, uuid, htpasswd:USER, skip";

impl Kind {
    /// `password:32` → `Password(32)`; the error says what is wrong, for
    /// the caller to put a file and line in front of.
    pub fn parse(text: &str) -> std::result::Result<Kind, String> {
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        let length = |what: &str, max: usize| -> std::result::Result<usize, String> {
            let Some(arg) = arg else {
                return Err(format!("type {name} needs a {what}: {name}:N"));
            };
            let n: usize = arg
                .parse()
                .map_err(|_| format!("{text:?}: the {what} {arg:?} is not a whole number"))?;
            if n == 0 {
                return Err(format!("{text:?}: the {what} must be at least 1"));
            }
            if n > max {
                return Err(format!("{text:?}: a {what} over {max} is refused"));
            }
            Ok(n)
        };
        match name {
            "password" => length("length", MAX_LENGTH).map(Kind::Password),
            "hex" => length("length", MAX_LENGTH).map(Kind::Hex),
            "base64" => length("byte count", MAX_LENGTH / 4 * 3).map(Kind::Base64),
            "uuid" | "skip" if arg.is_some() => Err(format!("type {name} takes no argument")),
            "uuid" => Ok(Kind::Uuid),
            "skip" => Ok(Kind::Skip),
            "htpasswd" => match arg {
                None | Some("") => Err("type htpasswd needs a user name: htpasswd:USER".into()),
                Some(user) if !valid_user(user) => Err(format!(
                    "{text:?}: the user name may not hold ':', blanks or control characters"
                )),
                Some(user) => Ok(Kind::Htpasswd(user.to_owned())),
            },
            _ => Err(format!("unknown type {text:?} (known: {KNOWN})")),
        }
    }

    /// Whether ov generates values of this type.
    pub fn generated(&self) -> bool {
        !matches!(self, Kind::Skip)
    }

    /// A fresh value from the OS random number generator; for htpasswd
    /// also the plaintext password the line was made from.
    pub fn generate(&self, scheme: HashScheme) -> Result<Generated> {
        let value = match self {
            Kind::Password(n) => password(*n)?,
            Kind::Hex(n) => {
                let bytes = random_bytes(n.div_ceil(2))?;
                let mut s = Zeroizing::new(String::with_capacity(n + 1));
                for b in bytes.iter() {
                    s.push(char::from(HEX[usize::from(b >> 4)]));
                    s.push(char::from(HEX[usize::from(b & 0xf)]));
                }
                s.truncate(*n);
                Secret::new(s.to_string())
            }
            Kind::Base64(n) => {
                let bytes = random_bytes(*n)?;
                Secret::new(base64::engine::general_purpose::STANDARD.encode(&*bytes))
            }
            Kind::Uuid => {
                let bytes = random_bytes(16)?;
                let mut raw = [0u8; 16];
                raw.copy_from_slice(&bytes);
                let id = uuid::Builder::from_random_bytes(raw).into_uuid();
                raw.fill(0);
                Secret::new(id.hyphenated().to_string())
            }
            Kind::Htpasswd(user) => {
                let pw = password(HTPASSWD_PASSWORD_LEN)?;
                let line = htpasswd_line(user, &pw, scheme)?;
                return Ok(Generated {
                    value: line,
                    password: Some(pw),
                });
            }
            Kind::Skip => {
                return Err(OvError::new(
                    "a manual (skip) secret is never generated; set it by hand",
                ));
            }
        };
        Ok(Generated {
            value,
            password: None,
        })
    }

    /// Why `value` is not a value of this type, if it is not. Lengths are
    /// not enforced (a value set by hand may be longer); formats are.
    pub fn check(&self, value: &str) -> Option<String> {
        match self {
            Kind::Hex(_) if !value.chars().all(|c| c.is_ascii_hexdigit()) => {
                Some("not hexadecimal (0-9, a-f)".into())
            }
            Kind::Base64(_)
                if base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .is_err() =>
            {
                Some("not base64 (A-Z, a-z, 0-9, +, / and = padding)".into())
            }
            Kind::Uuid if uuid::Uuid::try_parse(value).is_err() => {
                Some("not a UUID (like 550e8400-e29b-41d4-a716-446655440000)".into())
            }
            Kind::Htpasswd(user) => {
                let hash = value
                    .strip_prefix(user.as_str())
                    .and_then(|rest| rest.strip_prefix(':'));
                match hash {
                    Some(h) if h.starts_with("$2") || h.starts_with("$apr1$") => None,
                    _ => Some(format!(
                        "not an htpasswd line for {user} ({user}:$2y$… or {user}:$apr1$…)"
                    )),
                }
            }
            _ => None,
        }
    }
}

fn valid_user(user: &str) -> bool {
    !user.contains(':') && !user.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A generated value, and for htpasswd the password it hashes.
#[derive(Debug)]
pub struct Generated {
    pub value: Secret,
    pub password: Option<Secret>,
}

/// `n` characters of A-Za-z0-9, each equally likely: bytes of 248 and
/// over are dropped, so `b % 62` has no bias.
fn password(n: usize) -> Result<Secret> {
    let mut out = Zeroizing::new(String::with_capacity(n));
    while out.len() < n {
        let bytes = random_bytes(n - out.len() + 16)?;
        for &b in bytes.iter() {
            if out.len() == n {
                break;
            }
            if usize::from(b) < ALNUM.len() * 4 {
                out.push(char::from(ALNUM[usize::from(b) % ALNUM.len()]));
            }
        }
    }
    Ok(Secret::new(out.to_string()))
}

/// `user:hash` for `password`, as Apache's `htpasswd` writes it.
pub fn htpasswd_line(user: &str, password: &Secret, scheme: HashScheme) -> Result<Secret> {
    let failed = |e: &dyn fmt::Display| OvError::new(format!("cannot hash the password: {e}"));
    let hash = match scheme {
        // `$2y$`, the variant Apache writes and every reader accepts.
        HashScheme::Bcrypt => bcrypt::hash_with_result(password.expose(), BCRYPT_COST)
            .map_err(|e| failed(&e))?
            .format_for_version(bcrypt::Version::TwoY),
        HashScheme::Apr1 => {
            htauth::hash_password(password.expose(), htauth::HashAlgorithm::Apr1Md5)
                .map_err(|e| failed(&e))?
        }
    };
    Ok(Secret::new(format!("{user}:{hash}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn types_parse_and_print_back() {
        for t in [
            "password:32",
            "hex:105",
            "base64:32",
            "uuid",
            "htpasswd:admin",
            "skip",
        ] {
            assert_eq!(Kind::parse(t).map(|k| k.to_string()), Ok(t.to_owned()));
        }
    }

    #[test]
    fn bad_types_are_refused_with_the_reason() {
        for (t, why) in [
            ("password:0", "at least 1"),
            ("hex:100000000", "over 4096"),
            ("base64:99999", "over 3072"),
            ("password", "needs a length"),
            ("password:x", "not a whole number"),
            ("pasword:32", "unknown type"),
            ("uuid:4", "no argument"),
            ("htpasswd:", "user name"),
            ("htpasswd:a b", "blanks"),
        ] {
            let e = Kind::parse(t).expect_err(t);
            assert!(e.contains(why), "{t}: {e}");
        }
    }

    fn alphabet_and_length(kind: &Kind, alphabet: &str, len: usize) {
        let v = kind.generate(HashScheme::Bcrypt).expect("generate").value;
        assert_eq!(v.len(), len, "{kind}: {}", v.expose().len());
        assert!(
            v.expose().chars().all(|c| alphabet.contains(c)),
            "{kind} made a character outside {alphabet}"
        );
        assert_eq!(kind.check(v.expose()), None, "{kind} fails its own check");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn every_generator_keeps_its_length_and_alphabet(n in 1usize..200) {
            let alnum = std::str::from_utf8(ALNUM).expect("ascii");
            alphabet_and_length(&Kind::Password(n), alnum, n);
            alphabet_and_length(&Kind::Hex(n), "0123456789abcdef", n);
            let b64 = format!("{alnum}+/=");
            alphabet_and_length(&Kind::Base64(n), &b64, n.div_ceil(3) * 4);
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(Kind::Base64(n).generate(HashScheme::Bcrypt).expect("gen").value.expose())
                .expect("decodes");
            prop_assert_eq!(decoded.len(), n);
            let id = Kind::Uuid.generate(HashScheme::Bcrypt).expect("gen").value;
            let parsed = uuid::Uuid::try_parse(id.expose()).expect("uuid");
            prop_assert_eq!(parsed.get_version_num(), 4);
            prop_assert_eq!(id.expose(), parsed.hyphenated().to_string());
        }
    }

    #[test]
    fn passwords_use_the_whole_alphabet() {
        // 62 letters over 20000 draws: a missing one would mean a bias.
        let v = Kind::Password(20000)
            .generate(HashScheme::Bcrypt)
            .expect("gen")
            .value;
        for &c in ALNUM {
            assert!(
                v.expose().contains(char::from(c)),
                "{} never drawn",
                c as char
            );
        }
    }

    #[test]
    fn checks_refuse_values_of_the_wrong_format() {
        assert!(Kind::Hex(4).check("zz").is_some());
        assert!(Kind::Base64(4).check("not base64!").is_some());
        assert!(Kind::Uuid.check("1234").is_some());
        assert!(Kind::Htpasswd("admin".into()).check("root:$2y$x").is_some());
        assert!(
            Kind::Htpasswd("admin".into())
                .check("admin:plain")
                .is_some()
        );
        assert_eq!(
            Kind::Htpasswd("admin".into()).check("admin:$apr1$x$y"),
            None
        );
        assert_eq!(Kind::Password(8).check("anything goes"), None);
    }
}
