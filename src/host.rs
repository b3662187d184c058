//! The plugin host: built-in backends registered statically, and shared
//! libraries loaded at run time with `libloading`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ov_plugin_api::client::{Client, Handler, Linked};
use ov_plugin_api::ffi::{
    ABI_VERSION, CallFn, ENTRY_PREFIX, EntryFn, FreeFn, entry_symbol_for_stem,
};
use ov_plugin_api::zeroize::Zeroize;
use ov_plugin_api::{Backend, BackendError, Description, ErrorKind, PROTOCOL, Request, Response};
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

/// A built-in backend, spoken to through the same client a loaded plugin
/// gets (and so behind the same panic guard).
pub(crate) fn linked(backend: impl Backend + 'static) -> Arc<dyn Backend> {
    let desc = backend.describe();
    Arc::new(Client::new(Linked(backend), desc))
}

/// The backends compiled into this binary.
pub fn builtins() -> Vec<Arc<dyn Backend>> {
    #[allow(unused_mut)] // every push below sits behind a feature
    let mut b: Vec<Arc<dyn Backend>> = vec![linked(EnvBackend)];
    #[cfg(feature = "builtin-keyring")]
    b.push(linked(ov_plugin_keyring::KeyringBackend::default()));
    #[cfg(feature = "builtin-kdbx")]
    b.push(linked(ov_plugin_kdbx::KdbxBackend));
    #[cfg(feature = "builtin-config")]
    b.push(linked(ov_plugin_config::ConfigBackend));
    #[cfg(feature = "builtin-openbao")]
    b.push(linked(ov_plugin_openbao::OpenBaoBackend));
    b
}

/// The backends a complete install has, with the library that provides
/// each, for naming what is missing.
pub const KNOWN_BACKENDS: &[(&str, &str)] = &[
    ("keyring", "libov_plugin_keyring.so"),
    ("kdbx", "libov_plugin_kdbx.so"),
    ("config", "libov_plugin_config.so"),
    ("openbao", "libov_plugin_openbao.so"),
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
                    .and_then(|_| Library::open(&file));
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

/// A shared library's `call`, as a protocol [`Handler`]: each request is
/// JSON in, JSON out.
pub struct Library {
    call: CallFn,
    free: FreeFn,
    /// The file name, until the plugin has said its own.
    name: String,
    // Never unloaded: a plugin's thread-local destructors run when each
    // thread that called it exits, which can be after this value is gone;
    // unmapping the code under them would crash the process.
    _lib: std::mem::ManuallyDrop<libloading::Library>,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A loaded plugin: its library behind the protocol client.
pub type DynBackend = Client<Library>;

impl Handler for Library {
    fn handle(&self, request: Request<'_>) -> Response {
        self.exchange(&request).unwrap_or_else(Response::Error)
    }
}

/// The library's entry function: under the name its file name gives (the
/// one it was built with), or else the one exported symbol with the entry
/// prefix. A library with several (plugin crates linked together) must be
/// named after the one to load.
fn find_entry(lib: &libloading::Library, path: &Path) -> Result<EntryFn, String> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let get = |symbol: &str| {
        // SAFETY: the symbol's type is fixed by the ABI; checked by version.
        unsafe { lib.get::<EntryFn>(symbol.as_bytes()) }
            .ok()
            .map(|entry| *entry)
    };
    if let Some(entry) = get(&entry_symbol_for_stem(&stem)) {
        return Ok(entry);
    }
    match exported_entries(path)?.as_slice() {
        [] => Err(format!(
            "{} is not an ov plugin: it exports no {ENTRY_PREFIX}* symbol",
            path.display()
        )),
        [one] => get(one).ok_or_else(|| format!("{}: cannot resolve {one}", path.display())),
        several => Err(format!(
            "{} holds several ov plugins ({}); name the file after the one to load (lib<crate>.so)",
            path.display(),
            several.join(", ")
        )),
    }
}

/// The dynamic symbols of an ELF library that start with the entry prefix.
fn exported_entries(path: &Path) -> Result<Vec<String>, String> {
    use object::{Object, ObjectSymbol};
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cache = object::ReadCache::new(file);
    let Ok(elf) = object::File::parse(&cache) else {
        return Ok(Vec::new());
    };
    Ok(elf
        .dynamic_symbols()
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .filter(|n| n.starts_with(ENTRY_PREFIX))
        .collect())
}

impl Library {
    pub fn open(path: &Path) -> Result<DynBackend, LoadFailure> {
        let quoted = shell_quote(path);
        let remove = format!("rm {quoted}   # or reinstall the package that provides it");
        let rebuild = format!("rm {quoted}   # then install the plugin built for this ov version");
        let fail = |error: String, abi| LoadFailure {
            error,
            fix: remove.clone(),
            abi,
        };
        // SAFETY: loading a library runs its initialisers. The host calls
        // this only for a file `trust::check_plugin` accepted: it and every
        // directory above it belong to root or the user and nobody else
        // can write them, so its code is as trusted as ov's own.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| fail(format!("cannot load plugin {}: {e}", path.display()), None))?;
        let entry = find_entry(&lib, path).map_err(|e| fail(e, None))?;
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
                fix: rebuild,
                abi: Some(abi),
            });
        }
        // SAFETY: the version matches, so the layout is ours.
        let (call, free) = unsafe { ((*decl).call, (*decl).free) };
        let library = Library {
            call,
            free,
            name: path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            _lib: std::mem::ManuallyDrop::new(lib),
        };
        // The versions first: a plugin of another major cannot be trusted
        // to read even the description request the way it is meant.
        let protocol_error = |said: String| LoadFailure {
            error: format!(
                "{} speaks {said}, but this ov (v{}) speaks plugin protocol v{PROTOCOL}",
                path.display(),
                env!("CARGO_PKG_VERSION")
            ),
            fix: rebuild.clone(),
            abi: Some(abi),
        };
        match library.exchange(&Request::Hello { host: PROTOCOL }) {
            Ok(Response::Hello(v)) if v.major == PROTOCOL.major => {}
            Ok(Response::Hello(v)) => return Err(protocol_error(format!("plugin protocol v{v}"))),
            // Plugins from before the versions were exchanged answer in
            // the old shape, or refuse the request.
            Ok(_) | Err(_) => {
                return Err(protocol_error(
                    "an older plugin protocol (it does not say which)".into(),
                ));
            }
        }
        let describe_failed = |why: String| {
            fail(
                format!("{}: describe failed: {why}", path.display()),
                Some(abi),
            )
        };
        let mut library = library;
        match library.exchange(&Request::Describe) {
            Ok(Response::Description(desc)) => {
                let desc = *desc;
                library.name = desc.name.clone();
                Ok(Client::new(library, desc))
            }
            Ok(Response::Error(e)) | Err(e) => Err(describe_failed(e.message)),
            Ok(other) => Err(describe_failed(format!("unexpected answer {other:?}"))),
        }
    }

    /// One request and its answer. An answer of a kind this ov does not
    /// know (from a newer plugin) is an error saying so, not a broken
    /// message.
    fn exchange(&self, request: &Request<'_>) -> Result<Response, BackendError> {
        let mut bytes = serde_json::to_vec(request).map_err(|e| {
            BackendError::of(ErrorKind::Internal, format!("cannot encode request: {e}"))
        })?;
        let mut out_len = 0usize;
        // SAFETY: `bytes` is a live buffer of the given length; `out_len` is writable.
        let ptr = unsafe { (self.call)(bytes.as_ptr(), bytes.len(), &mut out_len) };
        bytes.zeroize();
        if ptr.is_null() {
            return Err(BackendError::of(
                ErrorKind::Internal,
                format!("plugin {} returned no answer", self.name),
            ));
        }
        // SAFETY: the plugin hands back `out_len` bytes at `ptr`, valid until `free`.
        let answer = unsafe { std::slice::from_raw_parts(ptr, out_len) };
        let decoded = Response::from_json(answer);
        let kind = match &decoded {
            Ok(Response::Unknown) => serde_json::from_slice::<serde_json::Value>(answer)
                .ok()
                .and_then(|v| v.get("answer")?.as_str().map(str::to_owned)),
            _ => None,
        };
        // SAFETY: returned exactly as received.
        unsafe { (self.free)(ptr, out_len) };
        match decoded {
            Ok(Response::Unknown) => Err(BackendError::of(
                ErrorKind::Unsupported,
                format!(
                    "plugin {} answered '{}', which this ov does not know: the plugin is newer than ov",
                    self.name,
                    kind.unwrap_or_default()
                ),
            )
            .hint("ov plugins list   # then update ov, or install the plugin built for it")),
            Ok(r) => Ok(r),
            Err(e) => Err(BackendError::of(
                ErrorKind::Internal,
                format!(
                    "plugin {} sent an answer this ov cannot read: {e}",
                    self.name
                ),
            )),
        }
    }
}
