//! The plugin host: built-in backends registered statically, and shared
//! libraries loaded at run time with `libloading`.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::Library;
use ov_plugin_api::ffi::{ABI_VERSION, CallFn, EntryFn, FreeFn, entry_symbol_for_stem};
use ov_plugin_api::zeroize::Zeroize;
use ov_plugin_api::{
    Availability, Backend, BackendError, CheckReport, Context, CreateRequest, Created, Description,
    EntryRef, ErrorKind, Request, Response, Secret, SecretBytes,
};
use ov_plugin_support::shell_quote;

use crate::env_backend::EnvBackend;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Path(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Loaded,
    /// A plugin of the same name took its place.
    Shadowed {
        by: Origin,
    },
    Failed {
        error: String,
        fix: String,
    },
}

/// One row of `ov plugins list`.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub abi: Option<u32>,
    pub origin: Origin,
    pub state: State,
}

/// A backend ready for use, with its description cached.
#[derive(Clone)]
pub struct Loaded {
    pub desc: Description,
    pub origin: Origin,
    pub backend: Arc<dyn Backend>,
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.desc.name)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub struct Host {
    pub plugins: Vec<PluginInfo>,
    pub backends: Vec<Loaded>,
}

/// The backends compiled into this binary.
pub fn builtins() -> Vec<Arc<dyn Backend>> {
    #[allow(unused_mut)] // every push below sits behind a feature
    let mut b: Vec<Arc<dyn Backend>> = vec![Arc::new(Guarded(EnvBackend))];
    #[cfg(feature = "builtin-keyring")]
    b.push(Arc::new(Guarded(
        ov_plugin_keyring::KeyringBackend::default(),
    )));
    #[cfg(feature = "builtin-kdbx")]
    b.push(Arc::new(Guarded(ov_plugin_kdbx::KdbxBackend)));
    #[cfg(feature = "builtin-config")]
    b.push(Arc::new(Guarded(ov_plugin_config::ConfigBackend)));
    b
}

/// The backends a complete install has, with the library that provides
/// each, for naming what is missing.
pub const KNOWN_BACKENDS: &[(&str, &str)] = &[
    ("keyring", "libov_plugin_keyring.so"),
    ("kdbx", "libov_plugin_kdbx.so"),
    ("config", "libov_plugin_config.so"),
];

impl Host {
    /// Built-ins, then every `*.so` in `search_path`. A library that fails
    /// to load is recorded, not fatal; one whose backend name matches a
    /// built-in replaces it (a packaged plugin wins over the built-in copy).
    pub fn load(search_path: &[PathBuf]) -> Host {
        let mut host = Host::default();
        for backend in builtins() {
            host.add(backend, Origin::BuiltIn);
        }
        for dir in search_path {
            for file in plugin_files(dir) {
                let opened = crate::trust::check_plugin(&file, Some(dir))
                    .map_err(|u| LoadFailure {
                        error: format!("refused to load plugin {}: {}", file.display(), u.reason),
                        fix: u.fix,
                        abi: None,
                    })
                    .and_then(|_| DynBackend::open(&file));
                match opened {
                    Ok(backend) => host.add(Arc::new(backend), Origin::Path(file)),
                    Err(failure) => host.plugins.push(PluginInfo {
                        name: file
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        version: String::new(),
                        abi: failure.abi,
                        origin: Origin::Path(file),
                        state: State::Failed {
                            error: failure.error,
                            fix: failure.fix,
                        },
                    }),
                }
            }
        }
        host.backends.sort_by_key(|b| b.desc.priority);
        host
    }

    fn add(&mut self, backend: Arc<dyn Backend>, origin: Origin) {
        let desc = backend.describe();
        if let Some(pos) = self.backends.iter().position(|b| b.desc.name == desc.name) {
            let replace = self.backends[pos].origin == Origin::BuiltIn && origin != Origin::BuiltIn;
            let (winner, loser) = if replace {
                (origin.clone(), self.backends[pos].origin.clone())
            } else {
                (self.backends[pos].origin.clone(), origin.clone())
            };
            for p in &mut self.plugins {
                if p.name == desc.name && p.origin == loser {
                    p.state = State::Shadowed { by: winner.clone() };
                }
            }
            if !replace {
                self.plugins
                    .push(info(&desc, origin, State::Shadowed { by: winner }));
                return;
            }
            self.backends.remove(pos);
        }
        self.plugins
            .push(info(&desc, origin.clone(), State::Loaded));
        self.backends.push(Loaded {
            desc,
            origin,
            backend,
        });
    }

    pub fn backend(&self, name: &str) -> Option<&Loaded> {
        self.backends.iter().find(|b| b.desc.name == name)
    }

    pub fn failures(&self) -> impl Iterator<Item = &PluginInfo> {
        self.plugins
            .iter()
            .filter(|p| matches!(p.state, State::Failed { .. }))
    }
}

fn info(desc: &Description, origin: Origin, state: State) -> PluginInfo {
    PluginInfo {
        name: desc.name.clone(),
        version: desc.version.clone(),
        abi: Some(ABI_VERSION),
        origin,
        state,
    }
}

/// `*.so` files in a directory (or the path itself when it names a file).
fn plugin_files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "so") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Why a library could not be used.
#[derive(Debug)]
pub struct LoadFailure {
    pub error: String,
    pub fix: String,
    pub abi: Option<u32>,
}

/// A backend living in a shared library, spoken to through messages.
pub struct DynBackend {
    call: CallFn,
    free: FreeFn,
    desc: Description,
    // Never unloaded: a plugin's thread-local destructors run when each
    // thread that called it exits, which can be after this value is gone;
    // unmapping the code under them would crash the process.
    _lib: std::mem::ManuallyDrop<Library>,
}

impl fmt::Debug for DynBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynBackend")
            .field("name", &self.desc.name)
            .finish_non_exhaustive()
    }
}

impl DynBackend {
    /// A request answered with notices; a plugin too old to know it has
    /// nothing to say.
    fn notices(&self, req: Request) -> Vec<String> {
        self.ask(req, |r| match r {
            Response::Notices(n) => Some(n),
            _ => None,
        })
        .unwrap_or_default()
    }

    pub fn open(path: &Path) -> Result<DynBackend, LoadFailure> {
        let quoted = shell_quote(path);
        let remove = format!("rm {quoted}   # or reinstall the package that provides it");
        let fail = |error: String, abi| LoadFailure {
            error,
            fix: remove.clone(),
            abi,
        };
        // SAFETY: loading a library runs its initialisers. The host calls
        // this only for a file `trust::check_plugin` accepted: it and every
        // directory above it belong to root or the user and nobody else
        // can write them, so its code is as trusted as ov's own.
        let lib = unsafe { Library::new(path) }
            .map_err(|e| fail(format!("cannot load plugin {}: {e}", path.display()), None))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let symbol = entry_symbol_for_stem(&stem);
        // SAFETY: the symbol's type is fixed by the ABI; checked below by version.
        let entry: EntryFn = unsafe { lib.get::<EntryFn>(symbol.as_bytes()) }
            .map(|s| *s)
            .map_err(|_| {
                fail(
                    format!(
                        "{} is not an ov plugin: it has no symbol '{symbol}' \
                         (a plugin keeps the file name it was built with)",
                        path.display()
                    ),
                    None,
                )
            })?;
        // SAFETY: `entry` takes no arguments and returns a pointer to a
        // static declaration whose first field is always the ABI version.
        let decl = unsafe { entry() };
        if decl.is_null() {
            return Err(fail(
                format!("{} returned no plugin declaration", path.display()),
                None,
            ));
        }
        // SAFETY: non-null and static; only the first field is read before
        // the version is known.
        let abi = unsafe { std::ptr::addr_of!((*decl).abi_version).read() };
        if abi != ABI_VERSION {
            return Err(LoadFailure {
                error: format!(
                    "{} speaks plugin ABI v{abi}, but this ov (v{}) speaks v{ABI_VERSION}",
                    path.display(),
                    env!("CARGO_PKG_VERSION")
                ),
                fix: format!("rm {quoted}   # then install the plugin built for this ov version"),
                abi: Some(abi),
            });
        }
        // SAFETY: the version matches, so the layout is ours.
        let (call, free) = unsafe { ((*decl).call, (*decl).free) };
        let mut backend = DynBackend {
            call,
            free,
            desc: Description {
                name: stem.clone(),
                version: String::new(),
                summary: String::new(),
                priority: u32::MAX,
                ..Description::default()
            },
            _lib: std::mem::ManuallyDrop::new(lib),
        };
        match backend.request(&Request::Describe) {
            Ok(Response::Description(d)) => backend.desc = d,
            Ok(Response::Error(e)) => {
                return Err(fail(
                    format!("{}: describe failed: {}", path.display(), e.message),
                    Some(abi),
                ));
            }
            Ok(other) => {
                return Err(fail(
                    format!(
                        "{}: unexpected answer to describe: {other:?}",
                        path.display()
                    ),
                    Some(abi),
                ));
            }
            Err(e) => {
                return Err(fail(
                    format!("{}: {}", path.display(), e.message),
                    Some(abi),
                ));
            }
        }
        Ok(backend)
    }

    fn request(&self, request: &Request) -> Result<Response, BackendError> {
        let mut bytes = serde_json::to_vec(request).map_err(|e| {
            BackendError::new(ErrorKind::Internal, format!("cannot encode request: {e}"))
        })?;
        let mut out_len = 0usize;
        // SAFETY: `bytes` is a live buffer of the given length; `out_len` is writable.
        let ptr = unsafe { (self.call)(bytes.as_ptr(), bytes.len(), &mut out_len) };
        bytes.zeroize();
        if ptr.is_null() {
            return Err(BackendError::new(
                ErrorKind::Internal,
                format!("plugin {} returned no answer", self.desc.name),
            ));
        }
        // SAFETY: the plugin hands back `out_len` bytes at `ptr`, valid until `free`.
        let answer = unsafe { std::slice::from_raw_parts(ptr, out_len) };
        let decoded = serde_json::from_slice::<Response>(answer);
        // SAFETY: returned exactly as received.
        unsafe { (self.free)(ptr, out_len) };
        decoded.map_err(|e| {
            BackendError::new(
                ErrorKind::Internal,
                format!(
                    "plugin {} sent an answer this ov cannot read: {e}",
                    self.desc.name
                ),
            )
        })
    }

    fn ask<T>(
        &self,
        request: Request,
        pick: impl FnOnce(Response) -> Option<T>,
    ) -> Result<T, BackendError> {
        match self.request(&request)? {
            Response::Error(e) => Err(e),
            other => {
                let shown = format!("{other:?}");
                pick(other).ok_or_else(|| {
                    BackendError::new(
                        ErrorKind::Internal,
                        format!(
                            "plugin {} gave an unexpected answer: {shown}",
                            self.desc.name
                        ),
                    )
                })
            }
        }
    }
}

impl Backend for DynBackend {
    fn describe(&self) -> Description {
        self.desc.clone()
    }

    fn probe(&self, ctx: &Context) -> Availability {
        self.ask(Request::Probe { ctx: ctx.clone() }, |r| match r {
            Response::Availability(a) => Some(a),
            _ => None,
        })
        .unwrap_or_else(|e| Availability::Unavailable {
            reason: e.message,
            transient: e.transient,
        })
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        let req = Request::Get {
            ctx: ctx.clone(),
            entry: entry.clone(),
        };
        self.ask(req, |r| match r {
            Response::Value(v) => Some(v),
            _ => None,
        })
    }

    fn get_bytes(
        &self,
        ctx: &Context,
        entry: &EntryRef,
    ) -> Result<Option<SecretBytes>, BackendError> {
        let req = Request::GetBytes {
            ctx: ctx.clone(),
            entry: entry.clone(),
        };
        match self.ask(req, |r| match r {
            Response::Bytes(v) => Some(v),
            _ => None,
        }) {
            // A plugin older than the request: its values are text.
            Err(e) if e.kind == ErrorKind::Unsupported => {
                self.get(ctx, entry).map(|v| v.map(SecretBytes::from))
            }
            other => other,
        }
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        let req = Request::Set {
            ctx: ctx.clone(),
            entry: entry.clone(),
            value: value.clone(),
        };
        self.ask(req, |r| matches!(r, Response::Done).then_some(()))
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        let req = Request::Delete {
            ctx: ctx.clone(),
            entry: entry.clone(),
        };
        self.ask(req, |r| match r {
            Response::Deleted(d) => Some(d),
            _ => None,
        })
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<Vec<EntryRef>, BackendError> {
        let req = Request::List {
            ctx: ctx.clone(),
            service: service.map(str::to_owned),
        };
        self.ask(req, |r| match r {
            Response::Entries(e) => Some(e),
            _ => None,
        })
    }

    fn get_when_unlocked(
        &self,
        ctx: &Context,
        entry: &EntryRef,
        timeout_ms: u64,
    ) -> Result<Option<Secret>, BackendError> {
        let req = Request::GetWhenUnlocked {
            ctx: ctx.clone(),
            entry: entry.clone(),
            timeout_ms,
        };
        self.ask(req, |r| match r {
            Response::Value(v) => Some(v),
            _ => None,
        })
    }

    fn list_notices(&self, ctx: &Context) -> Vec<String> {
        self.notices(Request::ListNotices { ctx: ctx.clone() })
    }

    fn write_notices(&self, ctx: &Context) -> Vec<String> {
        self.notices(Request::WriteNotices { ctx: ctx.clone() })
    }

    fn checks(&self, ctx: &Context) -> Vec<CheckReport> {
        match self.ask(Request::Checks { ctx: ctx.clone() }, |r| match r {
            Response::Checks(c) => Some(c),
            _ => None,
        }) {
            Ok(c) => c,
            Err(e) => vec![ov_checks::report(
                &format!("{}.checks", self.desc.name),
                "backend checks",
                ov_checks::Status::Fail,
                e.message,
            )],
        }
    }

    fn unlock_target(&self, ctx: &Context) -> Option<String> {
        self.ask(Request::UnlockTarget { ctx: ctx.clone() }, |r| match r {
            Response::Target(t) => Some(t),
            _ => None,
        })
        .ok()
        .flatten()
    }

    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        let req = Request::VerifyUnlock { ctx: ctx.clone() };
        self.ask(req, |r| matches!(r, Response::Done).then_some(()))
    }

    fn create(&self, ctx: &Context, request: &CreateRequest) -> Result<Created, BackendError> {
        let req = Request::Create {
            ctx: ctx.clone(),
            request: request.clone(),
        };
        self.ask(req, |r| match r {
            Response::Created(c) => Some(c),
            _ => None,
        })
    }

    fn lock(&self, ctx: &Context) -> Vec<String> {
        self.notices(Request::Lock { ctx: ctx.clone() })
    }
}

/// A built-in backend with the same panic safety a loaded plugin gets.
#[derive(Debug)]
struct Guarded<B>(B);

fn guard<T>(name: &str, f: impl FnOnce() -> Result<T, BackendError>) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(BackendError::new(
            ErrorKind::Internal,
            format!("the {name} backend panicked (a bug in ov)"),
        ))
    })
}

impl<B: Backend> Backend for Guarded<B> {
    fn describe(&self) -> Description {
        self.0.describe()
    }

    fn probe(&self, ctx: &Context) -> Availability {
        catch_unwind(AssertUnwindSafe(|| self.0.probe(ctx)))
            .unwrap_or_else(|_| Availability::unavailable("the backend panicked (a bug in ov)"))
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        guard(&self.0.describe().name, || self.0.get(ctx, entry))
    }

    fn get_bytes(
        &self,
        ctx: &Context,
        entry: &EntryRef,
    ) -> Result<Option<SecretBytes>, BackendError> {
        guard(&self.0.describe().name, || self.0.get_bytes(ctx, entry))
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        guard(&self.0.describe().name, || self.0.set(ctx, entry, value))
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        guard(&self.0.describe().name, || self.0.delete(ctx, entry))
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<Vec<EntryRef>, BackendError> {
        guard(&self.0.describe().name, || self.0.list(ctx, service))
    }

    fn get_when_unlocked(
        &self,
        ctx: &Context,
        entry: &EntryRef,
        timeout_ms: u64,
    ) -> Result<Option<Secret>, BackendError> {
        guard(&self.0.describe().name, || {
            self.0.get_when_unlocked(ctx, entry, timeout_ms)
        })
    }

    fn write_notices(&self, ctx: &Context) -> Vec<String> {
        catch_unwind(AssertUnwindSafe(|| self.0.write_notices(ctx))).unwrap_or_default()
    }

    fn list_notices(&self, ctx: &Context) -> Vec<String> {
        catch_unwind(AssertUnwindSafe(|| self.0.list_notices(ctx))).unwrap_or_default()
    }

    fn checks(&self, ctx: &Context) -> Vec<CheckReport> {
        self.0.checks(ctx)
    }

    fn unlock_target(&self, ctx: &Context) -> Option<String> {
        catch_unwind(AssertUnwindSafe(|| self.0.unlock_target(ctx))).unwrap_or_default()
    }

    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        guard(&self.0.describe().name, || self.0.verify_unlock(ctx))
    }

    fn create(&self, ctx: &Context, request: &CreateRequest) -> Result<Created, BackendError> {
        guard(&self.0.describe().name, || self.0.create(ctx, request))
    }

    fn lock(&self, ctx: &Context) -> Vec<String> {
        catch_unwind(AssertUnwindSafe(|| self.0.lock(ctx))).unwrap_or_default()
    }
}
