//! Telling systemd how the agent is doing, for a unit of `Type=notify`:
//! `READY=1` once the socket accepts connections, so `systemctl start`
//! (and `ov agent install --enable`) returns only when clients can connect,
//! and units ordered after the agent start after that point.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Send `state` to the manager named by `$NOTIFY_SOCKET`; nothing when the
/// agent does not run under one. A failure is reported, not fatal: the
/// agent serves either way.
pub fn send(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(&target)?,
        };
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(state.as_bytes(), &addr).map(drop)
    })();
    if let Err(e) = sent {
        eprintln!(
            "ov agent: cannot notify systemd at {}: {e}",
            target.to_string_lossy()
        );
    }
}
