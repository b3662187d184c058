//! The read path's own connection: one socket, on the calling thread.
//!
//! A read is what a service does at start-up, so it has to be quick. A
//! zbus connection costs three threads (a worker to leave a hung provider
//! behind, zbus's reader, the async-io reactor), a hand-off between them
//! for every reply, and a round trip for each step of the handshake. Here
//! ov dials the socket itself and sends the authentication, `BEGIN`,
//! `Hello` and the first call in one write; the bus answers them in order.
//! Every wait is bounded by the socket's own timeouts, so no thread is
//! needed to give up on a provider that never answers.
//!
//! zbus and zvariant still build and parse every message; this module moves
//! bytes and matches replies to calls. Addresses other than `unix:path=` and
//! `unix:abstract=` are left to zbus.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use zbus::zvariant::serialized::{Context, Data};
use zbus::zvariant::{DynamicType, Endian, OwnedValue, Type, Value};

/// The most the D-Bus specification allows in one message (128 MiB).
const MAX_MESSAGE: usize = 1 << 27;
const DBUS_NAME: &str = "org.freedesktop.DBus";

/// Whether the bus itself answers within `limit`: the handshake and one
/// call to the bus daemon (`GetId`), with no Secret Service involved. A
/// socket that accepts and never answers is a hung bus, not a hung
/// provider.
pub fn bus_answers(limit: Duration) -> Result<(), Error> {
    // An address ov does not dial itself is zbus's; nothing to tell here.
    let Some(addrs) = session_addresses() else {
        return Ok(());
    };
    let mut wire = Wire::open(&addrs, Instant::now() + limit)?;
    let get_id = Method {
        dest: DBUS_NAME,
        path: DBUS_PATH,
        iface: DBUS_NAME,
        member: "GetId",
    };
    wire.call::<_, String>(get_id, &()).map(|_| ())
}
const DBUS_PATH: &str = "/org/freedesktop/DBus";

/// The process that owns `name` on the session bus, asked of the bus
/// daemon itself (so a hung owner does not stop the answer).
pub fn name_owner_pid(name: &str, limit: Duration) -> Option<u32> {
    let addrs = session_addresses()?;
    let mut wire = Wire::open(&addrs, Instant::now() + limit).ok()?;
    let m = Method {
        dest: DBUS_NAME,
        path: DBUS_PATH,
        iface: DBUS_NAME,
        member: "GetConnectionUnixProcessID",
    };
    wire.call::<_, u32>(m, &(name,)).ok()
}

/// A session bus socket ov can dial itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// The session bus addresses, in the order to try them; `None` when any is
/// of a kind ov does not dial (zbus then does). Without an address, the
/// socket in the runtime directory, as zbus and libsystemd look for it.
pub fn session_addresses() -> Option<Vec<Addr>> {
    match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => parse_addresses(&a),
        _ => Some(vec![Addr::Path(
            match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
                Some(dir) => PathBuf::from(dir).join("bus"),
                None => fallback_socket(),
            },
        )]),
    }
}

/// `/run/user/UID/bus`: where the session bus is when nothing says.
pub fn fallback_socket() -> PathBuf {
    PathBuf::from(format!("/run/user/{}/bus", nix::unistd::geteuid()))
}

/// `unix:path=…` and `unix:abstract=…` entries of a D-Bus address list.
pub fn parse_addresses(list: &str) -> Option<Vec<Addr>> {
    use std::os::unix::ffi::OsStringExt;
    list.split(';')
        .filter(|a| !a.is_empty())
        .map(|a| {
            let rest = a.strip_prefix("unix:")?;
            rest.split(',').find_map(|kv| match kv.split_once('=')? {
                ("path", v) => Some(Addr::Path(
                    std::ffi::OsString::from_vec(unescape(v)?).into(),
                )),
                ("abstract", v) => Some(Addr::Abstract(unescape(v)?)),
                _ => None,
            })
        })
        .collect()
}

/// A D-Bus address value, its `%xx` escapes decoded.
fn unescape(v: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Debug)]
pub enum Error {
    /// The socket: connecting, reading, writing; a missed deadline is
    /// `io::ErrorKind::TimedOut`.
    Io(io::Error),
    /// The bus would not take ov's `EXTERNAL` authentication.
    Auth(String),
    /// An error reply: its D-Bus name and message.
    Dbus(String, Option<String>),
    /// A reply ov cannot make sense of.
    Protocol(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        Error::Protocol(e.to_string())
    }
}

impl From<zbus::zvariant::Error> for Error {
    fn from(e: zbus::zvariant::Error) -> Self {
        Error::Protocol(e.to_string())
    }
}

/// A method to call: destination, object, interface, member.
#[derive(Debug, Clone, Copy)]
pub struct Method<'a> {
    pub dest: &'a str,
    pub path: &'a str,
    pub iface: &'a str,
    pub member: &'a str,
}

/// One connection to the session bus.
pub struct Wire {
    stream: UnixStream,
    deadline: Instant,
    /// Queued for the next [`Wire::flush`].
    out: Vec<u8>,
    /// Received and not yet consumed.
    input: Vec<u8>,
    authenticated: bool,
    hello: u32,
    /// Replies read while waiting for another one (several calls can be
    /// in flight), until asked for.
    early: Vec<Incoming>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").finish_non_exhaustive()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the deadline passed")
}

/// Connect to one socket, waiting no longer than `limit` (a listener whose
/// queue is full would otherwise block `connect`).
fn dial(addr: &Addr, limit: Duration) -> io::Result<UnixStream> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, UnixAddr, connect, setsockopt, socket, sockopt,
    };
    use nix::sys::time::{TimeVal, TimeValLike};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let micros = i64::try_from(limit.as_micros()).unwrap_or(i64::MAX).max(1);
    setsockopt(&fd, sockopt::SendTimeout, &TimeVal::microseconds(micros))?;
    let sa = match addr {
        Addr::Path(p) => UnixAddr::new(p.as_path())?,
        Addr::Abstract(name) => UnixAddr::new_abstract(name)?,
    };
    connect(fd.as_raw_fd(), &sa).map_err(|e| match e {
        nix::errno::Errno::EAGAIN => timed_out(),
        e => e.into(),
    })?;
    Ok(UnixStream::from(fd))
}

/// The first of `addrs` that accepts a connection before `deadline`; the
/// last error when none does.
pub fn connect_first(addrs: &[Addr], deadline: Instant) -> io::Result<UnixStream> {
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        match dial(addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Wire {
    /// Dial the first address that accepts, and queue the handshake;
    /// nothing is sent before the first [`Wire::flush`].
    pub fn open(addrs: &[Addr], deadline: Instant) -> Result<Self, Error> {
        let stream = connect_first(addrs, deadline)?;
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let mut wire = Wire {
            stream,
            deadline,
            out: format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").into_bytes(),
            input: Vec::with_capacity(4096),
            authenticated: false,
            hello: 0,
            early: Vec::new(),
        };
        let hello = Method {
            dest: DBUS_NAME,
            path: DBUS_PATH,
            iface: DBUS_NAME,
            member: "Hello",
        };
        wire.hello = wire.queue(hello, &())?;
        Ok(wire)
    }

    /// Queue a method call; its serial, for [`Wire::reply`].
    pub fn queue<B>(&mut self, m: Method<'_>, body: &B) -> Result<u32, Error>
    where
        B: serde::Serialize + DynamicType,
    {
        let msg = zbus::Message::method_call(m.path, m.member)?
            .destination(m.dest)?
            .interface(m.iface)?
            .build(body)?;
        self.out.extend_from_slice(msg.data());
        Ok(msg.primary_header().serial_num().get())
    }

    /// Send everything queued.
    pub fn flush(&mut self) -> Result<(), Error> {
        let left = self.left()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream
            .write_all(&self.out)
            .map_err(|e| Error::Io(deadline_error(e)))?;
        self.out.clear();
        Ok(())
    }

    /// Queue a call and send everything queued; its serial.
    pub fn send<B>(&mut self, m: Method<'_>, body: &B) -> Result<u32, Error>
    where
        B: serde::Serialize + DynamicType,
    {
        let serial = self.queue(m, body)?;
        self.flush()?;
        Ok(serial)
    }

    /// Send one call and wait for its reply.
    pub fn call<B, R>(&mut self, m: Method<'_>, body: &B) -> Result<R, Error>
    where
        B: serde::Serialize + DynamicType,
        R: DeserializeOwned + Type,
    {
        let serial = self.send(m, body)?;
        self.reply(serial)
    }

    fn left(&self) -> Result<Duration, Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out().into());
        }
        Ok(left)
    }

    /// Read until at least `n` bytes are waiting.
    fn fill(&mut self, n: usize) -> Result<(), Error> {
        let mut chunk = [0u8; 8192];
        while self.input.len() < n {
            let left = self.left()?;
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the bus closed the connection",
                    )));
                }
                Ok(got) => self.input.extend_from_slice(&chunk[..got]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(deadline_error(e))),
            }
        }
        Ok(())
    }

    /// The bus's answer to the authentication: `OK <guid>`.
    fn authenticate(&mut self) -> Result<(), Error> {
        loop {
            if let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.input[..end]).into_owned();
                self.input.drain(..end + 2);
                if !line.starts_with("OK ") {
                    return Err(Error::Auth(line));
                }
                self.authenticated = true;
                return Ok(());
            }
            if self.input.len() > 512 {
                return Err(Error::Auth("an overlong line".into()));
            }
            let want = self.input.len() + 1;
            self.fill(want)?;
        }
    }

    /// The reply to call `serial`, whatever order the replies come in;
    /// signals are skipped. An error reply to it, or to `Hello`, is
    /// [`Error::Dbus`].
    pub fn reply<R>(&mut self, serial: u32) -> Result<R, Error>
    where
        R: DeserializeOwned + Type,
    {
        if !self.authenticated {
            self.authenticate()?;
        }
        let msg = match self
            .early
            .iter()
            .position(|m| m.reply_serial == Some(serial))
        {
            Some(i) => self.early.swap_remove(i),
            None => loop {
                let msg = self.next_message()?;
                match (msg.kind, msg.reply_serial) {
                    (METHOD_RETURN | ERROR, Some(to)) if to == serial => break msg,
                    (ERROR, Some(to)) if to == self.hello => return Err(msg.error()),
                    (METHOD_RETURN | ERROR, Some(to)) if to != self.hello => self.early.push(msg),
                    _ => {}
                }
            },
        };
        if msg.kind == ERROR {
            return Err(msg.error());
        }
        msg.body::<R>()
    }

    /// Take the next whole message off the input.
    fn next_message(&mut self) -> Result<Incoming, Error> {
        self.fill(16)?;
        let endian = match self.input[0] {
            b'l' => Endian::Little,
            b'B' => Endian::Big,
            other => {
                return Err(Error::Protocol(format!(
                    "a message in byte order {other:#04x}"
                )));
            }
        };
        let u32_at = |at: usize| {
            let b: [u8; 4] = self.input[at..at + 4].try_into().unwrap_or_default();
            match endian {
                Endian::Little => u32::from_le_bytes(b),
                Endian::Big => u32::from_be_bytes(b),
            }
        };
        let (body_len, fields_len) = (u32_at(4) as usize, u32_at(12) as usize);
        let header_len = 16 + fields_len;
        let body_at = header_len.next_multiple_of(8);
        let total = body_at.saturating_add(body_len);
        if total > MAX_MESSAGE {
            return Err(Error::Protocol(format!("a message of {total} bytes")));
        }
        self.fill(total)?;
        let bytes: Vec<u8> = self.input.drain(..total).collect();
        let ctxt = Context::new_dbus(endian, 0);
        type Header = (u8, u8, u8, u8, u32, u32, Vec<(u8, OwnedValue)>);
        let ((_, kind, _, _, _, _, fields), _): (Header, _) =
            Data::new(&bytes[..header_len], ctxt).deserialize()?;
        let mut msg = Incoming {
            kind,
            reply_serial: None,
            error_name: None,
            signature: String::new(),
            bytes,
            body_at,
            endian,
        };
        for (code, value) in fields {
            match (code, &*value) {
                (4, Value::Str(s)) => msg.error_name = Some(s.to_string()),
                (5, Value::U32(n)) => msg.reply_serial = Some(*n),
                (8, Value::Signature(s)) => msg.signature = s.to_string(),
                _ => {}
            }
        }
        Ok(msg)
    }
}

/// A socket timeout reads as "would block"; say what it is.
fn deadline_error(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        timed_out()
    } else {
        e
    }
}

const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

/// A received message: what matching it needs, and its body.
struct Incoming {
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    signature: String,
    bytes: Vec<u8>,
    body_at: usize,
    endian: Endian,
}

impl Incoming {
    /// An error reply as [`Error::Dbus`]: its name, and its message when
    /// it carries one.
    fn error(&self) -> Error {
        let text = self.body::<(String,)>().ok().map(|(t,)| t);
        Error::Dbus(self.error_name.clone().unwrap_or_default(), text)
    }

    /// The body as `R`, when its signature is `R`'s (a reply's arguments
    /// are a struct without the parentheses).
    fn body<R: DeserializeOwned + Type>(&self) -> Result<R, Error> {
        let want = R::SIGNATURE.to_string();
        let sig = &self.signature;
        if want != *sig && want != format!("({sig})") {
            return Err(Error::Protocol(format!(
                "a reply of type \"{sig}\" where \"{want}\" was expected"
            )));
        }
        let body = self.bytes.get(self.body_at..).unwrap_or_default();
        let (value, _) = Data::new(body, Context::new_dbus(self.endian, 0)).deserialize()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_ov_dials_itself() {
        assert_eq!(
            parse_addresses("unix:path=/run/user/1000/bus"),
            Some(vec![Addr::Path("/run/user/1000/bus".into())])
        );
        assert_eq!(
            parse_addresses("unix:abstract=/tmp/dbus-x%2cy,guid=0123;unix:path=/a%20b"),
            Some(vec![
                Addr::Abstract(b"/tmp/dbus-x,y".to_vec()),
                Addr::Path("/a b".into())
            ])
        );
        // Any other kind, or a value that does not decode: zbus's to dial.
        assert_eq!(
            parse_addresses("unix:path=/a;tcp:host=localhost,port=1"),
            None
        );
        assert_eq!(parse_addresses("unix:path=/a%zz"), None);
        assert_eq!(parse_addresses("unix:path=/a%2"), None);
        assert_eq!(parse_addresses("unixexec:path=/bin/x"), None);
    }
}
