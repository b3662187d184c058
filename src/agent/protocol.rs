//! The agent's wire protocol: versioned, length-prefixed frames, each
//! signed with HMAC-SHA256 under a key HKDF derives from the machine key
//! (or the session token), each carrying a timestamp and a nonce the agent
//! remembers for as long as the timestamp would be accepted.
//!
//! A frame is `"ov"`, the protocol version (u16, big-endian), the payload
//! length (u32, big-endian), then the payload: the 32-byte tag and the JSON
//! it signs. The tag covers the magic and version, a direction byte (so an
//! answer cannot be sent back as a request) and the JSON.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

pub const MAGIC: [u8; 2] = *b"ov";
/// The one protocol version this `ov` speaks.
/// 2: strings on the wire as JSON strings (1 sent serde's arrays of numbers).
pub const VERSION: u16 = 2;
const HEADER_LEN: usize = 8;
/// No frame is larger: a request is a command line, an environment and
/// some names.
pub const MAX_FRAME: usize = 1 << 20;
const TAG_LEN: usize = 32;
/// How far a request's timestamp may be from the agent's clock.
pub const WINDOW_MS: i64 = 30_000;
/// The standard descriptors a run request passes: stdin, stdout, stderr.
pub const PASSED_FDS: usize = 3;
const SALT: &[u8] = b"ov agent v1";
const INFO: &str = "ov agent request hmac-sha256";

/// The key every frame is signed with, zeroed on drop.
#[derive(Clone)]
pub struct AuthKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

impl AuthKey {
    pub fn from_machine_key(key: &crate::machine_key::MachineKey) -> AuthKey {
        AuthKey(key.derive(SALT, INFO))
    }

    /// The key for an interactive agent's session token.
    pub fn from_token(token: &[u8]) -> AuthKey {
        let hk = Hkdf::<Sha256>::new(Some(SALT), token);
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(INFO.as_bytes(), &mut okm[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        AuthKey(okm)
    }

    fn mac(&self, dir: u8, json: &[u8]) -> Hmac<Sha256> {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        m.update(&MAGIC);
        m.update(&VERSION.to_be_bytes());
        m.update(&[dir]);
        m.update(json);
        m
    }

    fn seal(&self, dir: u8, json: &[u8]) -> Vec<u8> {
        let tag = self.mac(dir, json).finalize().into_bytes();
        let len = u32::try_from(TAG_LEN + json.len()).unwrap_or(u32::MAX);
        let mut frame = Vec::with_capacity(HEADER_LEN + TAG_LEN + json.len());
        frame.extend_from_slice(&MAGIC);
        frame.extend_from_slice(&VERSION.to_be_bytes());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&tag);
        frame.extend_from_slice(json);
        frame
    }

    /// The JSON of a payload whose tag is right (compared in constant time).
    fn open<'a>(&self, dir: u8, payload: &'a [u8]) -> Option<&'a [u8]> {
        let (tag, json) = payload.split_at_checked(TAG_LEN)?;
        self.mac(dir, json).verify_slice(tag).ok()?;
        Some(json)
    }
}

const REQUEST: u8 = b'Q';
const ANSWER: u8 = b'A';

/// What a client asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Status,
    Run(RunRequest),
    /// Pass a signal the client received to the command it runs.
    Signal {
        signal: i32,
    },
    /// A request of a newer client.
    #[serde(other)]
    Unknown,
}

/// A command to start: no secret value is in it, only names.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRequest {
    pub app: Option<String>,
    pub env: Option<String>,
    /// Every secret of the app/env, or only `names`.
    pub all: bool,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(with = "wire::list")]
    pub argv: Vec<OsString>,
    #[serde(with = "wire::path")]
    pub cwd: PathBuf,
    /// The client's environment, which the command starts with.
    #[serde(default, with = "wire::pairs")]
    pub environ: Vec<(OsString, OsString)>,
}

/// How the command line, directory and environment go on the wire: each
/// string as a JSON string when it is UTF-8 (nearly always), else as
/// `{"hex": "…"}` of its bytes, so any byte string crosses unchanged.
/// (serde's own form for an `OsString` is an array of numbers: three times
/// the size, and slow to read.)
mod wire {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use serde::de::{self, Deserializer, MapAccess, Visitor};
    use serde::ser::{SerializeMap, Serializer};
    use serde::{Deserialize, Serialize};

    struct Out<'a>(&'a OsStr);

    impl Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
            match self.0.to_str() {
                Some(text) => ser.serialize_str(text),
                None => {
                    let hex: String = self
                        .0
                        .as_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    let mut map = ser.serialize_map(Some(1))?;
                    map.serialize_entry("hex", &hex)?;
                    map.end()
                }
            }
        }
    }

    struct In(OsString);

    impl<'de> Deserialize<'de> for In {
        fn deserialize<D: Deserializer<'de>>(de: D) -> Result<In, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = In;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(r#"a string, or {"hex": "…"}"#)
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<In, E> {
                    Ok(In(OsString::from(v)))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<In, A::Error> {
                    let (key, hex): (String, String) = map
                        .next_entry()?
                        .ok_or_else(|| de::Error::missing_field("hex"))?;
                    if key != "hex" || hex.len() % 2 != 0 {
                        return Err(de::Error::custom("not a hex byte string"));
                    }
                    let bytes = (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16))
                        .collect::<Result<Vec<u8>, _>>()
                        .map_err(|_| de::Error::custom("not a hex byte string"))?;
                    Ok(In(OsString::from_vec(bytes)))
                }
            }
            de.deserialize_any(V)
        }
    }

    pub mod list {
        use super::*;
        pub fn serialize<S: Serializer>(v: &[OsString], ser: S) -> Result<S::Ok, S::Error> {
            ser.collect_seq(v.iter().map(|s| Out(s)))
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<OsString>, D::Error> {
            Ok(Vec::<In>::deserialize(de)?
                .into_iter()
                .map(|s| s.0)
                .collect())
        }
    }

    pub mod pairs {
        use super::*;
        pub fn serialize<S: Serializer>(
            v: &[(OsString, OsString)],
            ser: S,
        ) -> Result<S::Ok, S::Error> {
            ser.collect_seq(v.iter().map(|(k, v)| (Out(k), Out(v))))
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            de: D,
        ) -> Result<Vec<(OsString, OsString)>, D::Error> {
            Ok(Vec::<(In, In)>::deserialize(de)?
                .into_iter()
                .map(|(k, v)| (k.0, v.0))
                .collect())
        }
    }

    pub mod path {
        use super::*;
        pub fn serialize<S: Serializer>(p: &std::path::Path, ser: S) -> Result<S::Ok, S::Error> {
            Out(p.as_os_str()).serialize(ser)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            de: D,
        ) -> Result<std::path::PathBuf, D::Error> {
            Ok(In::deserialize(de)?.0.into())
        }
    }
}

/// What the agent answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Pong {
        version: String,
    },
    Status(StatusInfo),
    /// How the command ended: its exit code, or the signal that killed it.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// The request failed; the client prints this as its own error.
    Error {
        message: String,
        #[serde(default)]
        hints: Vec<String>,
        exit_code: i32,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusInfo {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub requests_served: u64,
    /// `machine-key` or `interactive`.
    pub mode: String,
    pub app: Option<String>,
    pub env: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SignedRequest {
    ts_ms: i64,
    nonce: String,
    body: Request,
}

#[derive(Serialize, Deserialize)]
struct SignedAnswer {
    /// The nonce of the request this answers.
    re: String,
    body: Answer,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A signed request frame and its nonce, for [`open_answer`].
pub fn seal_request(key: &AuthKey, body: Request) -> std::io::Result<(Vec<u8>, String)> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let nonce: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let json = serde_json::to_vec(&SignedRequest {
        ts_ms: now_ms(),
        nonce: nonce.clone(),
        body,
    })
    .map_err(std::io::Error::other)?;
    Ok((key.seal(REQUEST, &json), nonce))
}

/// Why the agent refused a request. Each maps to the text the client shows.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    BadSignature,
    Malformed,
    Stale { skew_ms: i64 },
    Future { skew_ms: i64 },
    Replayed,
    Busy,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::BadSignature => {
                "the agent refused the request: its signature is wrong (the client holds another key than the agent)".to_owned()
            }
            Refusal::Malformed => "the agent refused a request it cannot read".to_owned(),
            Refusal::Stale { skew_ms } => format!(
                "the agent refused the request: its timestamp is {}s old, more than the {}s allowed",
                skew_ms / 1000,
                WINDOW_MS / 1000
            ),
            Refusal::Future { skew_ms } => format!(
                "the agent refused the request: its timestamp is {}s in the future, more than the {}s allowed",
                skew_ms / 1000,
                WINDOW_MS / 1000
            ),
            Refusal::Replayed => {
                "the agent refused the request: it was sent before (a replayed request)".to_owned()
            }
            Refusal::Busy => "the agent is busy: too many requests in the last 30 s".to_owned(),
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            Refusal::BadSignature => {
                "ov agent status --machine-key PATH   # pass the key file the agent was started with"
            }
            Refusal::Stale { .. } | Refusal::Future { .. } => {
                "timedatectl status   # are the clocks of client and agent right?"
            }
            _ => "ov agent status",
        }
    }
}

/// Nonces of accepted requests, each kept until its timestamp leaves the
/// window, so a captured request is refused however soon it is replayed.
#[derive(Debug, Default)]
pub struct NonceStore {
    seen: HashMap<String, i64>,
}

/// More nonces than this inside one window means a flood, not clients.
const MAX_NONCES: usize = 1 << 20;

impl NonceStore {
    fn admit(&mut self, nonce: &str, ts_ms: i64, now: i64) -> Result<(), Refusal> {
        if self.seen.len() >= MAX_NONCES / 2 {
            self.seen.retain(|_, expiry| *expiry >= now);
        }
        if self.seen.contains_key(nonce) {
            return Err(Refusal::Replayed);
        }
        if self.seen.len() >= MAX_NONCES {
            return Err(Refusal::Busy);
        }
        self.seen.insert(nonce.to_owned(), ts_ms + WINDOW_MS);
        Ok(())
    }
}

/// Check a request payload: tag, timestamp, nonce; then decode it.
pub fn open_request(
    key: &AuthKey,
    payload: &[u8],
    now: i64,
    nonces: &std::sync::Mutex<NonceStore>,
) -> Result<(Request, String), Refusal> {
    let json = key.open(REQUEST, payload).ok_or(Refusal::BadSignature)?;
    let signed: SignedRequest = serde_json::from_slice(json).map_err(|_| Refusal::Malformed)?;
    let skew = now - signed.ts_ms;
    if skew > WINDOW_MS {
        return Err(Refusal::Stale { skew_ms: skew });
    }
    if -skew > WINDOW_MS {
        return Err(Refusal::Future { skew_ms: -skew });
    }
    if signed.nonce.len() != 32 || !signed.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refusal::Malformed);
    }
    nonces
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(&signed.nonce, signed.ts_ms, now)?;
    Ok((signed.body, signed.nonce))
}

pub fn seal_answer(key: &AuthKey, re: &str, body: Answer) -> Vec<u8> {
    let json = serde_json::to_vec(&SignedAnswer {
        re: re.to_owned(),
        body,
    })
    .unwrap_or_default();
    key.seal(ANSWER, &json)
}

/// An answer, if it is signed with `key` for the request `re`; an error
/// answer is shown even unsigned (it can only make the client fail).
pub fn open_answer(key: &AuthKey, payload: &[u8], re: &str) -> Option<Answer> {
    if let Some(json) = key.open(ANSWER, payload) {
        let signed: SignedAnswer = serde_json::from_slice(json).ok()?;
        // A refusal before the request was read answers no nonce.
        let refusal = matches!(signed.body, Answer::Error { .. });
        return (signed.re == re || refusal).then_some(signed.body);
    }
    let json = payload.get(TAG_LEN..)?;
    match serde_json::from_slice::<SignedAnswer>(json).ok()?.body {
        e @ Answer::Error { .. } => Some(e),
        _ => None,
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection before a frame began.
    Closed,
    TimedOut,
    TooLarge(usize),
    NotOv,
    Version(u16),
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => f.write_str("the connection was closed"),
            FrameError::TimedOut => f.write_str("the peer was too slow sending its frame"),
            FrameError::TooLarge(n) => write!(
                f,
                "a frame of {n} bytes is larger than the {MAX_FRAME} allowed"
            ),
            FrameError::NotOv => f.write_str("the peer does not speak the ov agent protocol"),
            FrameError::Version(v) => write!(
                f,
                "the peer speaks agent protocol version {v}; this ov speaks version {VERSION}"
            ),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Read one frame: its payload, and any descriptors that came with it
/// (at most [`PASSED_FDS`]; more are closed). With a deadline, the whole
/// frame must arrive by then, so a client sending a byte a second cannot
/// hold its connection.
pub fn read_frame(
    sock: &UnixStream,
    deadline: Option<Instant>,
    fds: &mut Vec<OwnedFd>,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    read_full(sock, &mut header, deadline, fds, true)?;
    if header[..2] != MAGIC {
        return Err(FrameError::NotOv);
    }
    let version = u16::from_be_bytes([header[2], header[3]]);
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut payload = vec![0u8; len];
    read_full(sock, &mut payload, deadline, fds, false)?;
    Ok(payload)
}

fn read_full(
    sock: &UnixStream,
    buf: &mut [u8],
    deadline: Option<Instant>,
    fds: &mut Vec<OwnedFd>,
    first: bool,
) -> Result<(), FrameError> {
    let mut got = 0;
    while got < buf.len() {
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(FrameError::TimedOut);
                }
                Some(left)
            }
            None => None,
        };
        sock.set_read_timeout(timeout).map_err(FrameError::Io)?;
        let mut space = nix::cmsg_space!([RawFd; PASSED_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf[got..])];
        let n = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            for fd in raw {
                                // SAFETY: the kernel just installed this
                                // descriptor for us; nothing else owns it.
                                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                                if fds.len() < PASSED_FDS {
                                    fds.push(owned);
                                }
                            }
                        }
                    }
                }
                msg.bytes
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                if deadline.is_some() {
                    return Err(FrameError::TimedOut);
                }
                continue;
            }
            Err(e) => return Err(FrameError::Io(e.into())),
        };
        if n == 0 {
            return Err(if first && got == 0 {
                FrameError::Closed
            } else {
                FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        got += n;
    }
    Ok(())
}

/// Write a whole frame, with `fds` passed alongside its first byte. Never
/// raises SIGPIPE: a peer that went away is an error.
pub fn write_frame(sock: &UnixStream, frame: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    sock.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut sent = 0;
    while sent < frame.len() {
        let iov = [IoSlice::new(&frame[sent..])];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if sent == 0 && !fds.is_empty() {
            &rights
        } else {
            &[]
        };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn key(b: u8) -> AuthKey {
        AuthKey::from_token(&[b; 32])
    }

    fn payload(frame: &[u8]) -> &[u8] {
        &frame[HEADER_LEN..]
    }

    #[test]
    fn a_request_opens_once_with_its_key_only() {
        let nonces = Mutex::new(NonceStore::default());
        let (frame, nonce) = seal_request(&key(1), Request::Ping).unwrap();
        assert_eq!(
            open_request(&key(2), payload(&frame), now_ms(), &nonces).unwrap_err(),
            Refusal::BadSignature
        );
        let (req, n) = open_request(&key(1), payload(&frame), now_ms(), &nonces).unwrap();
        assert!(matches!(req, Request::Ping));
        assert_eq!(n, nonce);
        assert_eq!(
            open_request(&key(1), payload(&frame), now_ms(), &nonces).unwrap_err(),
            Refusal::Replayed
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let nonces = Mutex::new(NonceStore::default());
        let (frame, _) = seal_request(&key(1), Request::Ping).unwrap();
        let later = now_ms() + WINDOW_MS + 2000;
        assert!(matches!(
            open_request(&key(1), payload(&frame), later, &nonces),
            Err(Refusal::Stale { .. })
        ));
        let earlier = now_ms() - WINDOW_MS - 2000;
        assert!(matches!(
            open_request(&key(1), payload(&frame), earlier, &nonces),
            Err(Refusal::Future { .. })
        ));
    }

    #[test]
    fn a_flipped_byte_breaks_the_tag() {
        let nonces = Mutex::new(NonceStore::default());
        let (mut frame, _) = seal_request(&key(1), Request::Status).unwrap();
        let last = frame.len() - 2;
        frame[last] ^= 1;
        assert_eq!(
            open_request(&key(1), payload(&frame), now_ms(), &nonces).unwrap_err(),
            Refusal::BadSignature
        );
    }

    #[test]
    fn an_answer_is_not_a_request() {
        let nonces = Mutex::new(NonceStore::default());
        let frame = seal_answer(&key(1), "x", Answer::Unknown);
        assert_eq!(
            open_request(&key(1), payload(&frame), now_ms(), &nonces).unwrap_err(),
            Refusal::BadSignature
        );
        let frame = seal_answer(
            &key(1),
            "abc",
            Answer::Pong {
                version: "1".into(),
            },
        );
        assert!(open_answer(&key(1), payload(&frame), "abc").is_some());
        assert!(open_answer(&key(1), payload(&frame), "abd").is_none());
        assert!(open_answer(&key(2), payload(&frame), "abc").is_none());
    }
}
