//! The client side: connect, sign, send, read the signed answer.

use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::location::Location;
use super::protocol::{self, Answer, AuthKey, FrameError, Request};
use crate::error::{Kind, OvError, Result};

/// How long a client waits for the answer to a ping or a status request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What came back: an answer, or the agent's own error.
enum Reply {
    Answer(Answer),
    Refused(OvError),
}

#[derive(Debug)]
pub struct Client {
    sock: UnixStream,
    key: AuthKey,
    socket: PathBuf,
}

fn quoted(p: &Path) -> String {
    ov_plugin_support::shell_quote(p)
}

/// `no agent is running at …`, for every way of finding none.
pub fn no_agent(socket: &Path, why: &str) -> OvError {
    OvError::new(format!(
        "no agent is running at {}: {why}",
        socket.display()
    ))
    .kind(Kind::Environment)
    .hint(format!(
        "ov agent start --socket {}   # unlocks your store once",
        quoted(socket)
    ))
    .hint(format!(
        "ov agent start --machine-key PATH --app APP --env ENV --socket {}   # for a service",
        quoted(socket)
    ))
}

/// An error when the socket's directory is closed to us: another user's
/// agent, which no key of ours could talk to anyway.
pub fn reachable(socket: &Path) -> Result<()> {
    match std::fs::symlink_metadata(socket) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(OvError::new(format!(
            "cannot reach the agent's socket {}: permission denied (an agent serves its own user)",
            socket.display()
        ))
        .kind(Kind::Environment)
        .hint(format!(
            "ls -ld {}   # whose directory it is",
            quoted(socket.parent().unwrap_or(Path::new("/")))
        ))),
        _ => Ok(()),
    }
}

/// The key to sign with: the machine key given, else the session token an
/// interactive agent left beside its socket (0600, ours).
pub fn key_for(loc: &Location, machine_key: Option<&Path>) -> Result<AuthKey> {
    reachable(&loc.socket)?;
    if let Some(path) = machine_key {
        let key = crate::machine_key::load(path, "APP", crate::machine_key::DEFAULT_ENV)?;
        return Ok(AuthKey::from_machine_key(&key));
    }
    let token = loc.token_file();
    match std::fs::symlink_metadata(&token) {
        Ok(meta) => {
            let me = nix::unistd::Uid::effective().as_raw();
            if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
                return Err(OvError::new(format!(
                    "refusing the agent's token file {}: it must be a 0600 file of yours",
                    token.display()
                ))
                .kind(Kind::Environment)
                .hint("ov agent stop; ov agent start   # a fresh session")
                .hint(format!("ls -l {}", quoted(&token))));
            }
            let bytes = zeroize::Zeroizing::new(std::fs::read(&token).map_err(|e| {
                OvError::new(format!("cannot read {}: {e}", token.display()))
            })?);
            Ok(AuthKey::from_token(&bytes))
        }
        Err(_) if std::fs::symlink_metadata(&loc.socket).is_ok() => Err(OvError::new(format!(
            "the agent at {} signs with a machine key: pass it",
            loc.socket.display()
        ))
        .hint(format!(
            "ov agent status --socket {} --machine-key {}   # the key file the agent was started with; pass it to ov run --agent too",
            quoted(&loc.socket),
            super::location::started_with_key(&loc.socket)
                .map_or_else(|| "PATH".to_owned(), |key| quoted(&key))
        ))),
        Err(_) => Err(no_agent(&loc.socket, "its socket does not exist")),
    }
}

impl Client {
    pub fn connect(socket: &Path, key: AuthKey) -> Result<Client> {
        super::location::check_dir(socket, false)?;
        let sock = UnixStream::connect(socket).map_err(|e| {
            use std::io::ErrorKind as K;
            match e.kind() {
                K::NotFound => no_agent(socket, "its socket does not exist"),
                K::ConnectionRefused => no_agent(
                    socket,
                    "nothing answers on its socket (the agent that made it is gone)",
                ),
                K::PermissionDenied => OvError::new(format!(
                    "cannot connect to the agent at {}: permission denied",
                    socket.display()
                ))
                .kind(Kind::Environment)
                .hint(format!(
                    "ls -ld {} {}   # the agent serves its own user",
                    quoted(socket.parent().unwrap_or(Path::new("/"))),
                    quoted(socket)
                )),
                _ => OvError::new(format!(
                    "cannot connect to the agent at {}: {e}",
                    socket.display()
                ))
                .kind(Kind::Environment),
            }
        })?;
        // The agent must be us or root: a socket another user put there
        // would learn the command line and environment.
        let me = nix::unistd::Uid::effective().as_raw();
        let peer = nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::PeerCredentials)
            .map_err(|e| {
                OvError::new(format!("cannot check who serves {}: {e}", socket.display()))
            })?;
        if peer.uid() != me && peer.uid() != 0 {
            return Err(OvError::new(format!(
                "refusing the agent at {}: it runs as uid {}, not as you (uid {me}) or root",
                socket.display(),
                peer.uid()
            ))
            .kind(Kind::Environment)
            .hint(format!("ls -l {}", quoted(socket))));
        }
        Ok(Client {
            sock,
            key,
            socket: socket.to_path_buf(),
        })
    }

    /// Send `req` with `fds` beside it; return its nonce.
    pub fn send(&self, req: Request, fds: &[RawFd]) -> Result<String> {
        let (frame, nonce) = protocol::seal_request(&self.key, req)
            .map_err(|e| OvError::new(format!("cannot sign the request: {e}")))?;
        if let Err(e) = protocol::write_frame(&self.sock, &frame, fds) {
            // The agent may have refused us and hung up before we wrote:
            // its refusal is still there to read.
            if let Ok(Reply::Refused(refused)) =
                self.reply("", Some(Instant::now() + Duration::from_secs(1)))
            {
                return Err(refused);
            }
            return Err(self.gone(&e.to_string()));
        }
        Ok(nonce)
    }

    /// Send a request that needs no descriptors and wait for its answer.
    pub fn ask(&self, req: Request) -> Result<Answer> {
        let nonce = self.send(req, &[])?;
        self.answer(&nonce, Some(Instant::now() + ANSWER_TIMEOUT))
    }

    fn gone(&self, why: &str) -> OvError {
        OvError::new(format!(
            "the agent at {} went away before it answered ({why})",
            self.socket.display()
        ))
        .kind(Kind::Environment)
        .hint(format!("ov agent status --socket {}", quoted(&self.socket)))
    }

    /// The answer to the request `nonce`; an error answer becomes the error.
    pub fn answer(&self, nonce: &str, deadline: Option<Instant>) -> Result<Answer> {
        match self.reply(nonce, deadline)? {
            Reply::Answer(a) => Ok(a),
            Reply::Refused(e) => Err(e),
        }
    }

    /// The agent's answer or refusal; `Err` when none could be read.
    fn reply(&self, nonce: &str, deadline: Option<Instant>) -> Result<Reply> {
        let mut fds = Vec::new();
        let payload =
            protocol::read_frame(&self.sock, deadline, &mut fds).map_err(|e| match e {
                FrameError::Closed => self.gone("it closed the connection"),
                FrameError::TimedOut => OvError::new(format!(
                    "the agent at {} did not answer within {}s",
                    self.socket.display(),
                    ANSWER_TIMEOUT.as_secs()
                ))
                .kind(Kind::Environment)
                .hint(format!(
                    "ov agent stop --socket {}   # then start it again",
                    quoted(&self.socket)
                )),
                e => self.gone(&e.to_string()),
            })?;
        match protocol::open_answer(&self.key, &payload, nonce) {
            Some(Answer::Error {
                message,
                hints,
                exit_code,
            }) => {
                let mut e = OvError::new(message);
                e.hints = hints;
                e.exit_code = exit_code;
                Ok(Reply::Refused(e))
            }
            Some(a) => Ok(Reply::Answer(a)),
            None => Err(OvError::new(format!(
                "the answer from {} is not signed with this key, or not for this request",
                self.socket.display()
            ))
            .kind(Kind::Environment)
            .hint(format!("ov agent status --socket {}", quoted(&self.socket)))),
        }
    }

    /// A second handle on the connection, to send signal frames from.
    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }

    pub fn key(&self) -> &AuthKey {
        &self.key
    }
}
