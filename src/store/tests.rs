//! `Store`'s chain logic over in-memory backends.

use super::*;

use std::sync::Mutex;

use ov_plugin_api::{Backend, Description, EntryList};

use crate::host::{Loaded, Origin, linked};

/// A backend that keeps its entries in memory and answers as told.
#[derive(Debug)]
struct Mem {
    name: &'static str,
    writable: bool,
    /// What `probe` says.
    avail: Availability,
    /// Every read, write and listing fails with this.
    fails: Option<ErrorKind>,
    data: Mutex<BTreeMap<EntryRef, String>>,
    notices: Vec<String>,
}

fn mem(name: &'static str) -> Mem {
    Mem {
        name,
        writable: true,
        avail: Availability::Available { location: None },
        fails: None,
        data: Mutex::new(BTreeMap::new()),
        notices: Vec::new(),
    }
}

impl Mem {
    fn holding(self, service: &str, key: &str, value: &str) -> Mem {
        self.data
            .lock()
            .expect("lock")
            .insert(EntryRef::new(service, key), value.to_owned());
        self
    }

    fn check(&self) -> std::result::Result<(), BackendError> {
        match self.fails {
            Some(kind) => Err(BackendError::of(kind, format!("{} says no", self.name))),
            None => Ok(()),
        }
    }
}

impl Backend for Mem {
    fn describe(&self) -> Description {
        Description {
            name: self.name.into(),
            version: "0".into(),
            summary: String::new(),
            priority: 0,
            writable: self.writable,
            plaintext: false,
            needs_unlock: false,
            listable: true,
            waits: false,
            ..Description::default()
        }
    }

    fn probe(&self, _ctx: &Context) -> Availability {
        self.avail.clone()
    }

    fn get(
        &self,
        _ctx: &Context,
        entry: &EntryRef,
    ) -> std::result::Result<Option<Secret>, BackendError> {
        self.check()?;
        let data = self.data.lock().expect("lock");
        Ok(data.get(entry).map(|v| Secret::from(v.as_str())))
    }

    fn set(
        &self,
        _ctx: &Context,
        entry: &EntryRef,
        value: &Secret,
    ) -> std::result::Result<(), BackendError> {
        self.check()?;
        let mut data = self.data.lock().expect("lock");
        data.insert(entry.clone(), value.expose().to_owned());
        Ok(())
    }

    fn delete(&self, _ctx: &Context, entry: &EntryRef) -> std::result::Result<bool, BackendError> {
        self.check()?;
        Ok(self.data.lock().expect("lock").remove(entry).is_some())
    }

    fn list(
        &self,
        _ctx: &Context,
        _service: Option<&str>,
    ) -> std::result::Result<EntryList, BackendError> {
        self.check()?;
        Ok(EntryList {
            entries: self.data.lock().expect("lock").keys().cloned().collect(),
            notices: self.notices.clone(),
        })
    }
}

/// A store over `chain` (in read order), with `settings` as the
/// user's config file, in a fresh temporary home.
fn store(chain: Vec<Mem>, settings: &str) -> (Store, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let paths = Paths {
        home: tmp.path().join("home"),
        config_dir: tmp.path().join("config"),
        data_dir: tmp.path().join("data"),
        runtime_dir: None,
        system_config_dir: tmp.path().join("etc"),
    };
    std::fs::create_dir_all(&paths.config_dir).expect("mkdir");
    std::fs::write(paths.user_config(), settings).expect("write settings");
    let host = Host {
        plugins: Vec::new(),
        backends: chain
            .into_iter()
            .map(|m| {
                let backend = linked(m);
                Loaded {
                    desc: backend.describe(),
                    origin: Origin::BuiltIn,
                    backend,
                }
            })
            .collect(),
    };
    let settings =
        Settings::load(&paths, &crate::settings::Specs::of_host(&host)).expect("settings");
    (Store::new(&paths, &settings, host), tmp)
}

fn entry() -> EntryRef {
    EntryRef::new("svc", "k")
}

fn down(reason: &str) -> Availability {
    Availability::unavailable(reason)
}

#[test]
fn first_backend_in_the_chain_that_holds_the_entry_wins() {
    let (store, _tmp) = store(
        vec![
            mem("keyring"),
            mem("kdbx").holding("svc", "k", "from-kdbx"),
            mem("config").holding("svc", "k", "from-config"),
        ],
        "",
    );
    let (value, source) = store.get(&entry()).unwrap().unwrap();
    assert_eq!(value.expose(), "from-kdbx");
    assert_eq!(source.backend, "kdbx");
    assert_eq!(source.location, None);
}

#[test]
fn a_miss_says_which_backends_could_not_be_asked() {
    let mut keyring = mem("keyring");
    keyring.fails = Some(ErrorKind::Unavailable);
    let mut kdbx = mem("kdbx");
    kdbx.fails = Some(ErrorKind::Locked);
    let (store, _tmp) = store(vec![keyring, kdbx, mem("config")], "");
    let miss = store.get(&entry()).unwrap().unwrap_err();
    let names = |v: &[(String, BackendError)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&miss.unavailable), ["keyring"]);
    assert_eq!(names(&miss.locked), ["kdbx"]);
    assert!(miss.waited.is_empty());
}

#[test]
fn another_error_stops_the_chain_instead_of_reading_further_down() {
    let mut kdbx = mem("kdbx");
    kdbx.fails = Some(ErrorKind::Corrupt);
    let (store, _tmp) = store(vec![kdbx, mem("config").holding("svc", "k", "stale")], "");
    let err = store.get(&entry()).unwrap_err();
    assert!(err.message.contains("kdbx says no"), "{}", err.message);
}

#[test]
fn writes_go_to_the_first_available_writable_backend() {
    let mut env = mem("keyring");
    env.writable = false;
    let mut kdbx = mem("kdbx");
    kdbx.avail = Availability::Unavailable {
        reason: "provider starting".into(),
        transient: true,
    };
    let (store, _tmp) = store(vec![env, kdbx, mem("config")], "");
    let written = store.set(&entry(), &Secret::from("v")).unwrap();
    assert_eq!(written.backend, "config");
    // The backend passed over only because it is starting is named.
    assert_eq!(written.notices, ["kdbx not used: provider starting"]);
    let (value, source) = store.get(&entry()).unwrap().unwrap();
    assert_eq!((value.expose(), source.backend.as_str()), ("v", "config"));
}

#[test]
fn a_forced_backend_takes_writes_or_says_why_not() {
    let (forced, _tmp) = store(
        vec![mem("kdbx"), mem("config")],
        "secret_backend = \"config\"\n",
    );
    assert_eq!(forced.write_target().unwrap().desc.name, "config");

    let mut config = mem("config");
    config.avail = down("file gone");
    let (unusable, _tmp) = store(vec![mem("kdbx"), config], "secret_backend = \"config\"\n");
    let err = unusable.set(&entry(), &Secret::from("v")).unwrap_err();
    assert!(
        err.message
            .contains("secret_backend is set to 'config', which cannot be used now: file gone"),
        "{}",
        err.message
    );
    assert_eq!(err.hints[0], "ov doctor config");

    let (missing, _tmp) = store(vec![mem("config")], "secret_backend = \"kdbx\"\n");
    let err = missing.write_target().unwrap_err();
    assert!(
        err.message.contains("no kdbx backend is installed"),
        "{}",
        err.message
    );
}

#[test]
fn no_writable_backend_names_each_reason() {
    let mut kdbx = mem("kdbx");
    kdbx.avail = down("no database");
    let mut config = mem("config");
    config.writable = false;
    let (store, _tmp) = store(vec![kdbx, config], "");
    let err = store.write_target().unwrap_err();
    assert!(
        err.message
            .contains("no writable backend is available (kdbx: no database)"),
        "{}",
        err.message
    );
}

#[test]
fn delete_removes_every_copy_and_listing_credits_the_first_holder() {
    let mut keyring = mem("keyring").holding("svc", "k", "a");
    keyring.notices = vec!["collection Work is locked".into()];
    let (store, _tmp) = store(
        vec![
            keyring,
            mem("kdbx")
                .holding("svc", "k", "b")
                .holding("svc", "only", "c"),
        ],
        "",
    );
    let listing = store.listing(None).unwrap();
    assert_eq!(listing.entries[&entry()], "keyring");
    assert_eq!(listing.entries[&EntryRef::new("svc", "only")], "kdbx");
    // What a backend could not see comes with its listing.
    assert_eq!(listing.unseen, ["collection Work is locked"]);
    assert!(listing.complete("export").is_err());

    let done = store.delete(&entry()).unwrap();
    assert_eq!(done.removed, ["keyring", "kdbx"]);
    assert!(store.get(&entry()).unwrap().is_err());
}

#[test]
fn random_hex_has_the_right_shape() {
    let s = random_hex(16).unwrap();
    assert_eq!(s.len(), 32);
    assert!(s.expose().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(random_hex(16).unwrap().expose(), s.expose());
}

#[test]
fn bad_names_are_refused() {
    assert!(validate_entry("", "k").is_err());
    assert!(validate_entry("s", "").is_err());
    assert!(validate_entry("s\n", "k").is_err());
    assert!(validate_entry("s", "k\0").is_err());
    assert!(validate_entry("/s", "k").is_err());
    assert!(validate_entry("a//b", "k").is_err());
    assert!(validate_entry("ov/vnc", "my-image").is_ok());
    assert!(validate_entry("a/../b", "k").is_err());
    assert!(validate_entry("..", "k").is_err());
    assert!(validate_entry("s", "x\u{202e}gpj.exe").is_err());
    assert!(validate_entry("s\u{200b}", "k").is_err());
    assert!(validate_entry("s", &"k".repeat(10_000)).is_err());
    assert!(validate_entry("ünïcode/ок", "日本").is_ok());
}
