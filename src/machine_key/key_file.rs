//! The key file: 32 bytes in locked memory, loaded and created the way
//! spec 001 says, and the age identity it derives for an app/env.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bech32::ToBase32;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::{HKDF_SALT, KEY_LEN, derive_command};
use crate::error::{Kind, OvError, Result};

/// 32 key bytes, locked in RAM, kept out of core dumps, zeroed on drop.
pub struct MachineKey {
    bytes: Box<[u8; KEY_LEN]>,
    locked: bool,
    /// Why the bytes could not be locked in RAM, when they could not.
    unlocked_because: Option<&'static str>,
}

impl std::fmt::Debug for MachineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MachineKey(..)")
    }
}

impl MachineKey {
    fn new() -> MachineKey {
        // Not dumpable: no core file, and no ptrace or /proc/<pid>/mem by
        // other processes of the same user. execve resets it for the child.
        let _ = nix::sys::prctl::set_dumpable(false);
        let mut bytes = Box::new([0u8; KEY_LEN]);
        let ptr = std::ptr::NonNull::from(&mut *bytes).cast();
        // SAFETY: the range is one live heap allocation of KEY_LEN bytes,
        // unlocked again in Drop before it is freed.
        let (locked, unlocked_because) = match unsafe { nix::sys::mman::mlock(ptr, KEY_LEN) } {
            Ok(()) => (true, None),
            // Still safe to use, but the page could reach swap.
            Err(e) => (false, Some(e.desc())),
        };
        MachineKey {
            bytes,
            locked,
            unlocked_because,
        }
    }

    /// The warning to show where the service's log will have it, when the
    /// key could not be locked in memory and so could be written to swap.
    pub fn memory_warning(&self) -> Option<String> {
        self.unlocked_because.map(|why| {
            format!(
                "cannot lock the machine key in memory ({why}); it could be written to swap. \
                 Raise the limit: LimitMEMLOCK=64K in the unit, or ulimit -l 64"
            )
        })
    }

    fn generate() -> Result<MachineKey> {
        let mut key = MachineKey::new();
        getrandom::fill(&mut key.bytes[..])
            .map_err(|e| OvError::new(format!("the system random number generator failed: {e}")))?;
        Ok(key)
    }

    /// 32 bytes HKDF-SHA256 derives from this key for one purpose (`info`),
    /// under its own `salt`, so no two uses of the key share a secret.
    pub fn derive(&self, salt: &[u8], info: &str) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(salt), &self.bytes[..]);
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(info.as_bytes(), &mut okm[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        okm
    }

    /// The age identity this key has for one app/env.
    pub fn identity(&self, app: &str, env: &str) -> age::x25519::Identity {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), &self.bytes[..]);
        let mut okm = Zeroizing::new([0u8; 32]);
        let info = format!("ov bundle x25519 {app}/{env}");
        hk.expand(info.as_bytes(), &mut okm[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut text = Zeroizing::new(
            bech32::encode("age-secret-key-", okm.to_base32(), bech32::Variant::Bech32)
                .expect("the HRP is valid"),
        );
        text.make_ascii_uppercase();
        age::x25519::Identity::from_str(&text).expect("a freshly encoded identity parses")
    }
}

impl Drop for MachineKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
        if self.locked {
            let ptr = std::ptr::NonNull::from(&mut *self.bytes).cast();
            // SAFETY: the same range mlock'd in new(), still allocated.
            let _ = unsafe { nix::sys::mman::munlock(ptr, KEY_LEN) };
        }
    }
}

/// The system's text for an I/O error, lower-cased, without "(os error N)":
/// `too many levels of symbolic links`, as spec 001 quotes it.
pub(super) fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or_default();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// What is wrong with a key file, with the command that fixes it: the
/// same words for `ov run`'s error and the doctor's finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// The path is a symlink (spec 001: refused).
    Symlink { path: PathBuf },
    /// ov may not read it: it belongs to the service account.
    NoAccess { path: PathBuf },
    /// It cannot be opened (it is missing, say): the system's words.
    Open { path: PathBuf, text: String },
    /// Its mode is not exactly 0600.
    Mode { path: PathBuf, mode: u32 },
    /// Another uid owns it.
    Owner { path: PathBuf, owner: u32, uid: u32 },
    /// It is not a regular file of exactly 32 bytes.
    Size { path: PathBuf },
}

impl KeyProblem {
    /// The sentence for people, as spec 001 quotes it.
    pub fn message(&self) -> String {
        match self {
            KeyProblem::Symlink { .. } => {
                "opening machine key: too many levels of symbolic links".to_owned()
            }
            KeyProblem::NoAccess { .. } => "opening machine key: permission denied".to_owned(),
            KeyProblem::Open { text, .. } => format!("opening machine key: {text}"),
            KeyProblem::Mode { mode, .. } => {
                format!("machine key has permissions {mode:04o} — must be 0600")
            }
            KeyProblem::Owner { owner, uid, .. } => {
                format!("machine key is owned by uid {owner} but current uid is {uid}")
            }
            KeyProblem::Size { .. } => "machine key must be exactly 32 bytes".to_owned(),
        }
    }

    /// The command that fixes it, for the key of `app`/`env`.
    pub fn fix(&self, app: &str, env: &str) -> String {
        match self {
            KeyProblem::Symlink { path } => format!(
                "ov run refuses symlinks; pass the real file: --machine-key \"$(readlink -f {})\"",
                ov_plugin_support::shell_quote(path)
            ),
            KeyProblem::NoAccess { path } => ov_plugin_support::as_root(&format!(
                "chown \"$(id -un)\": {}",
                ov_plugin_support::shell_quote(path)
            )),
            KeyProblem::Mode { path, .. } => {
                format!("chmod 600 {}", ov_plugin_support::shell_quote(path))
            }
            KeyProblem::Owner { path, .. } => chown_command(path),
            KeyProblem::Open { path, .. } | KeyProblem::Size { path } => {
                derive_command(path, app, env)
            }
        }
    }

    /// Whose move it is: a key another account may rightly own is the
    /// machine's business, the rest the user's.
    pub fn kind(&self) -> Kind {
        match self {
            KeyProblem::NoAccess { .. } | KeyProblem::Owner { .. } => Kind::Environment,
            _ => Kind::User,
        }
    }

    /// The error `ov run` and `ov auth` stop with.
    pub fn error(&self, app: &str, env: &str) -> OvError {
        OvError::new(self.message())
            .kind(self.kind())
            .hint(self.fix(app, env))
    }
}

/// Open and check a key file the way spec 001 says: O_NOFOLLOW, then
/// fstat on the open descriptor (no race with a separate stat), mode
/// exactly 0600, owned by the current uid, exactly 32 bytes.
pub fn load(path: &Path, app: &str, env: &str) -> Result<MachineKey> {
    check(path).map_err(|p| p.error(app, env))
}

/// [`load`], with what is wrong as a [`KeyProblem`].
pub fn check(path: &Path) -> std::result::Result<MachineKey, KeyProblem> {
    let path_buf = || path.to_path_buf();
    let file = ov_plugin_support::open_regular(path, nix::libc::O_NOFOLLOW).map_err(|e| {
        match nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
            nix::errno::Errno::ELOOP => KeyProblem::Symlink { path: path_buf() },
            nix::errno::Errno::EACCES => KeyProblem::NoAccess { path: path_buf() },
            _ => KeyProblem::Open {
                path: path_buf(),
                text: io_text(&e),
            },
        }
    })?;
    let meta = file.metadata().map_err(|e| KeyProblem::Open {
        path: path_buf(),
        text: io_text(&e),
    })?;
    let mode = meta.mode() & 0o7777;
    if mode != 0o600 {
        return Err(KeyProblem::Mode {
            path: path_buf(),
            mode,
        });
    }
    let uid = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != uid {
        return Err(KeyProblem::Owner {
            path: path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    if meta.len() != KEY_LEN as u64 || !meta.is_file() {
        return Err(KeyProblem::Size { path: path_buf() });
    }
    let mut key = MachineKey::new();
    let mut file = file;
    file.read_exact(&mut key.bytes[..])
        .map_err(|_| KeyProblem::Size { path: path_buf() })?;
    Ok(key)
}

fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits()
}

/// `chown USER:GROUP PATH` for the current user.
pub fn chown_command(path: &Path) -> String {
    let user = ov_plugin_support::user_name(nix::unistd::Uid::effective().as_raw());
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::effective())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::Gid::effective().to_string(), |g| g.name);
    format!(
        "chown {user}:{group} {}",
        ov_plugin_support::shell_quote(path)
    )
}

/// Why a key file cannot be created at `path`, with the command that
/// makes its directory (missing) or hands it to the user (not writable).
fn out_dir_problem(path: &Path, e: &std::io::Error) -> OvError {
    let err = OvError::new(format!("cannot create {}: {}", path.display(), io_text(e)));
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return err;
    };
    let user = ov_plugin_support::user_name(nix::unistd::Uid::effective().as_raw());
    let dir_q = ov_plugin_support::shell_quote(dir);
    let writable = |d: &Path| nix::unistd::access(d, nix::unistd::AccessFlags::W_OK).is_ok();
    if ov_plugin_support::is_missing(e) && !dir.exists() {
        // The nearest directory that is there says whether root must make it.
        let ancestor = dir.ancestors().find(|d| d.exists());
        if ancestor.is_some_and(writable) {
            err.hint(format!("mkdir -p -m 700 {dir_q}"))
        } else {
            err.hint(format!("install -d -m 700 -o {user} {dir_q}   # as root"))
        }
    } else if e.kind() == std::io::ErrorKind::PermissionDenied
        && dir.is_dir()
        && !writable(dir)
        // Only a directory that is someone's or empty (made for the key,
        // such as /etc/ov) is handed over; /etc is not.
        && (std::fs::metadata(dir).is_ok_and(|m| m.uid() != 0)
            || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()))
    {
        err.hint(format!("chown {user} {dir_q}   # as root"))
    } else {
        err
    }
}

/// Write a fresh key for `app`/`env`: O_EXCL unless `force`, mode 0600,
/// never through a symlink.
pub fn create(path: &Path, force: bool, app: &str, env: &str) -> Result<MachineKey> {
    let key = MachineKey::generate()?;
    if force {
        ov_plugin_support::write_atomic(path, &key.bytes[..], Some(0o600))
            .map_err(|e| out_dir_problem(path, &e))?;
        return Ok(key);
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                OvError::new(format!("{} already exists", path.display()))
                    .hint(format!(
                        "ov auth derive-machine-key --out {} --app {app} --env {env} --force   # rotate it",
                        ov_plugin_support::shell_quote(path)
                    ))
                    .hint(format!(
                        "ov auth machine-key add {} --app {app} --env {env}   # use this key for {app}/{env} as well",
                        ov_plugin_support::shell_quote(path)
                    ))
            } else {
                out_dir_problem(path, &e)
            }
        })?;
    f.write_all(&key.bytes[..])?;
    f.sync_all()?;
    Ok(key)
}
