//! `ov doctor keyring`: what the Secret Service looks like from here, with
//! the command that fixes each problem.

use std::collections::BTreeMap;
use std::collections::HashMap;

use ov_plugin_api::{BackendError, CheckDecl, CheckReport, Status};
use ov_plugin_support::{report, with_fix};
use zeroize::Zeroizing;

use crate::collections::{Scan, in_memory, pin_error, pin_fix, scan};
use crate::items::entries_in;
use crate::locked::unlock_hint;
use crate::{APPLICATION, ATTR_APPLICATION, LABEL_SETTING, q};
use ov_secret_service::bus::{self, Bus, Link, START_PROVIDER, TIMEOUT_ENV};
use secret_service::blocking::Item;

const BUS: &str = "keyring.session_bus";
const PROVIDER: &str = "keyring.provider";
const REPLACE_PROVIDER: &str =
    "gnome-keyring-daemon --replace --components=secrets   # or restart your keyring app";

/// The fix for a provider that holds the Secret Service name and does not
/// answer. `--replace` asks the old daemon to quit, and one that answers
/// nothing never does (the pasted command would hang): the process the bus
/// names is killed, then gnome-keyring started afresh, or the app named.
fn restart_hung_provider() -> String {
    let limit = ov_secret_service::bus::timeout();
    let Some(pid) =
        ov_secret_service::wire::name_owner_pid(ov_secret_service::session::DEST, limit)
    else {
        return REPLACE_PROVIDER.into();
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = comm.trim();
    if comm.starts_with("gnome-keyring") {
        format!(
            "kill -KILL {pid} && gnome-keyring-daemon --start --components=secrets   # pid {pid} holds the Secret Service name and does not answer"
        )
    } else {
        let who = if comm.is_empty() {
            "the provider"
        } else {
            comm
        };
        format!(
            "kill -KILL {pid}   # {who} (pid {pid}) holds the Secret Service name and does not answer; start it again"
        )
    }
}

fn after(mut r: CheckReport, dep: &str) -> CheckReport {
    r.depends_on = vec![dep.to_owned()];
    r
}

fn bus_address() -> String {
    std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "the default address ($XDG_RUNTIME_DIR/bus)".into())
}

const DEFAULT_ALIAS: &str = "keyring.default_alias";
const COLLECTION: &str = "keyring.collection";
const PINNED: &str = "keyring.pinned_label";
const DUPLICATES: &str = "keyring.duplicates";

/// The checks `ov doctor keyring` runs, in order: each after the provider.
pub fn declared() -> Vec<CheckDecl> {
    vec![
        CheckDecl::new(BUS, "D-Bus session bus reachable"),
        CheckDecl::new(PROVIDER, "Secret Service provider answers").after(BUS),
        CheckDecl::new(DEFAULT_ALIAS, "default collection alias").after(PROVIDER),
        CheckDecl::new(COLLECTION, "each collection (one line per collection)").after(PROVIDER),
        CheckDecl::new(PINNED, "pinned collection label exists").after(PROVIDER),
        CheckDecl::new(DUPLICATES, "one value per secret across collections").after(PROVIDER),
    ]
}

/// The reports of the declared check `only` (one per collection for
/// `keyring.collection`).
/// Run check `only`. `forced`: `secret_backend` names the keyring, so a
/// machine without a session bus is a problem to fix, not the normal
/// headless case.
pub fn run(bus: &Bus, pin: Option<String>, only: &str, forced: bool) -> Vec<CheckReport> {
    let wanted = only.to_owned();
    let checked = bus.run(move |link| {
        link.provider()?;
        link.ss()?;
        Ok(inspect(link, pin.as_deref(), &wanted))
    });
    let reports = match checked {
        Ok(reports) => reports,
        Err(e) => failed(&e, forced),
    };
    reports
        .into_iter()
        .filter(|r| r.id == only || r.id.strip_prefix(only).is_some_and(|s| s.starts_with('.')))
        .collect()
}

/// The reports when no session could be opened at all.
fn failed(e: &BackendError, forced: bool) -> Vec<CheckReport> {
    let bus_title = "D-Bus session bus reachable";
    let provider_title = "Secret Service provider answers";
    if e.is(bus::NO_BUS) {
        let found = report(
            BUS,
            bus_title,
            if forced { Status::Warn } else { Status::Ok },
            format!("{}; the keyring backend is skipped", e.message),
        );
        return vec![
            if forced {
                // No bus to point at on this machine (a server, ssh): the
                // keyring cannot serve here, a KeePass database can.
                with_fix(
                    found,
                    bus::point_at_own_bus().unwrap_or_else(|| {
                        "ov secrets init && ov settings set secret_backend kdbx   # no session bus on this machine: keep secrets in a KeePass database instead".into()
                    }),
                )
            } else {
                found
            },
            after(
                report(
                    PROVIDER,
                    provider_title,
                    Status::Skip,
                    "skipped: no session bus",
                ),
                BUS,
            ),
        ];
    }
    let limit = ov_secret_service::bus::timeout();
    if e.is(bus::TIMED_OUT)
        && matches!(
            ov_secret_service::wire::bus_answers(limit),
            Err(ov_secret_service::wire::Error::Io(ref io)) if io.kind() == std::io::ErrorKind::TimedOut
        )
    {
        // Not the provider: the bus daemon itself accepts and says nothing.
        return vec![
            with_fix(
                report(
                    BUS,
                    bus_title,
                    Status::Fail,
                    format!(
                        "{} accepts connections but the bus itself does not answer within {} ms: a hung dbus-daemon; ov skips the keyring",
                        bus_address(),
                        limit.as_millis()
                    ),
                ),
                "ov settings set secret_backend kdbx   # meanwhile; a stuck session bus is restarted by logging out and in",
            ),
            after(
                report(
                    PROVIDER,
                    provider_title,
                    Status::Skip,
                    "skipped: the session bus does not answer",
                ),
                BUS,
            ),
        ];
    }
    if e.is(bus::TIMED_OUT) {
        return vec![
            report(
                BUS,
                bus_title,
                Status::Ok,
                format!("{} accepts connections", bus_address()),
            ),
            after(
                with_fix(
                    report(
                        PROVIDER,
                        provider_title,
                        Status::Fail,
                        format!(
                            "{}; ov skips the keyring (set {TIMEOUT_ENV} to wait longer)",
                            e.message
                        ),
                    ),
                    restart_hung_provider(),
                ),
                BUS,
            ),
        ];
    }
    vec![
        report(
            BUS,
            bus_title,
            Status::Ok,
            format!("connected to {}", bus_address()),
        ),
        after(
            with_fix(
                report(
                    PROVIDER,
                    provider_title,
                    Status::Warn,
                    format!("{}; the keyring backend is skipped", e.message),
                ),
                START_PROVIDER,
            ),
            BUS,
        ),
    ]
}

/// Which program owns `org.freedesktop.secrets`, when the bus can tell.
fn provider_program(link: &Link) -> Option<String> {
    let dbus = zbus::blocking::fdo::DBusProxy::new(&link.dbus).ok()?;
    let name = zbus::names::BusName::try_from("org.freedesktop.secrets").ok()?;
    let owner = dbus.get_name_owner(name).ok()?;
    let pid = dbus
        .get_connection_unix_process_id(owner.clone().into())
        .ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .map(|s| s.trim().to_owned())
        })?;
    Some(format!("{exe} (pid {pid}, {owner})"))
}

fn inspect(link: &'static Link, pin: Option<&str>, only: &str) -> Vec<CheckReport> {
    let mut out = vec![report(
        BUS,
        "D-Bus session bus reachable",
        Status::Ok,
        format!("connected to {}", bus_address()),
    )];
    if only == BUS {
        return out;
    }
    let who =
        provider_program(link).unwrap_or_else(|| "a provider that does not say who it is".into());
    let scan = match scan(link) {
        Ok(s) => s,
        Err(e) => {
            out.push(after(
                with_fix(
                    report(
                        PROVIDER,
                        "Secret Service provider answers",
                        Status::Fail,
                        format!("{who} opened a session but then failed: {}", e.message),
                    ),
                    REPLACE_PROVIDER,
                ),
                BUS,
            ));
            return out;
        }
    };
    out.push(after(
        report(
            PROVIDER,
            "Secret Service provider answers",
            Status::Ok,
            format!(
                "{who}; {} collection{}",
                scan.colls.len() + scan.broken.len(),
                if scan.colls.len() + scan.broken.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ),
        ),
        BUS,
    ));
    match only {
        DEFAULT_ALIAS => out.push(after(default_alias(&scan, pin), PROVIDER)),
        COLLECTION => out.extend(collections(&scan).into_iter().map(|r| after(r, PROVIDER))),
        PINNED => out.push(after(pinned(&scan, pin), PROVIDER)),
        DUPLICATES => out.push(after(conflicts(&scan, pin), PROVIDER)),
        _ => {}
    }
    out
}

fn default_alias(scan: &Scan, pin: Option<&str>) -> CheckReport {
    let id = DEFAULT_ALIAS;
    let title = "default collection alias";
    let pinned_note = if pin.is_some() {
        "; ov is pinned to a label, so this only matters to other programs"
    } else {
        ""
    };
    let status = if pin.is_some() {
        Status::Ok
    } else {
        Status::Warn
    };
    match &scan.default {
        Ok(Some(path)) => {
            if let Some(c) = scan.colls.iter().find(|c| &c.path == path) {
                report(
                    id,
                    title,
                    Status::Ok,
                    format!("default → {:?} ({path})", c.label),
                )
            } else {
                let why = scan
                    .broken
                    .iter()
                    .find(|b| &b.path == path)
                    .map(|b| b.reason.clone())
                    .unwrap_or_else(|| "it is not among the listed collections".into());
                with_fix(
                    report(
                        id,
                        title,
                        status,
                        format!(
                            "default → {path}, which cannot be used: {why}; reads skip it{pinned_note}"
                        ),
                    ),
                    pin_fix(scan),
                )
            }
        }
        Ok(None) => with_fix(
            report(
                id,
                title,
                status,
                format!(
                    "no default alias is set, so writes have nowhere to go{}{pinned_note}",
                    if scan.colls.iter().all(in_memory) && !scan.colls.is_empty() {
                        " (only the in-memory session collection exists, which is lost at logout)"
                    } else {
                        ""
                    }
                ),
            ),
            pin_fix(scan),
        ),
        Err(reason) => with_fix(
            report(
                id,
                title,
                status,
                format!("the default alias cannot be read: {reason}{pinned_note}"),
            ),
            pin_fix(scan),
        ),
    }
}

/// The last element of a collection's object path, for a stable check id.
fn short(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

fn collections(scan: &Scan) -> Vec<CheckReport> {
    let mut out = Vec::new();
    for c in &scan.colls {
        let id = format!("keyring.collection.{}", short(&c.path));
        let title = format!("collection {:?}", c.label);
        let items = c.c.get_all_items().map(|v| v.len());
        let ours =
            c.c.search_items(HashMap::from([(ATTR_APPLICATION, APPLICATION)]))
                .map(|v| v.len());
        let r = match (c.locked, items) {
            (true, _) => with_fix(
                report(
                    &id,
                    &title,
                    Status::Warn,
                    format!("{:?}: locked; reads skip it until it is unlocked", c.label),
                ),
                unlock_hint(None),
            ),
            (false, Ok(n)) => report(
                &id,
                &title,
                Status::Ok,
                format!(
                    "{:?}: unlocked, {n} item{}{}{}",
                    c.label,
                    if n == 1 { "" } else { "s" },
                    ours.map(|o| format!(" ({o} from ov)")).unwrap_or_default(),
                    if c.is_default { ", default" } else { "" }
                ),
            ),
            (false, Err(e)) => with_fix(
                report(
                    &id,
                    &title,
                    Status::Warn,
                    format!("{:?}: cannot list items: {e}", c.label),
                ),
                pin_fix(scan),
            ),
        };
        out.push(r);
    }
    for b in &scan.broken {
        out.push(with_fix(
            report(
                &format!("keyring.collection.{}", short(&b.path)),
                &format!("collection {}", short(&b.path)),
                Status::Warn,
                format!(
                    "{}: properties cannot be read ({}); reads skip it",
                    b.path, b.reason
                ),
            ),
            pin_fix(scan),
        ));
    }
    out
}

fn pinned(scan: &Scan, pin: Option<&str>) -> CheckReport {
    let id = PINNED;
    let title = "pinned collection label exists";
    match pin {
        None => report(
            id,
            title,
            Status::Ok,
            format!("{LABEL_SETTING} is not set; reads search every collection, default first"),
        ),
        Some(label) if scan.colls.iter().any(|c| c.label == label) => report(
            id,
            title,
            Status::Ok,
            format!("{LABEL_SETTING} = {label:?} matches a collection"),
        ),
        Some(label) => {
            let e = pin_error(scan, label);
            let mut r = report(id, title, Status::Fail, e.message);
            r.fix = e.hints.first().cloned();
            r
        }
    }
}

/// The same service/key with different values in two collections: which
/// one a read returns depends on the order, and that surprises people.
fn conflicts(scan: &Scan, pin: Option<&str>) -> CheckReport {
    let id = DUPLICATES;
    let title = "one value per secret across collections";
    // Every entry (ov's and other tools'), by the collections holding it;
    // values are fetched only where there are two copies to compare.
    let mut held: BTreeMap<(String, String), Vec<(&str, Item<'_>)>> = BTreeMap::new();
    for c in scan.colls.iter().filter(|c| !c.locked) {
        let Ok(entries) = entries_in(c) else { continue };
        for (e, item) in entries {
            held.entry((e.service, e.key))
                .or_default()
                .push((c.label.as_str(), item));
        }
    }
    let differing: Vec<_> = held
        .iter()
        .filter(|(_, items)| items.len() > 1)
        .map(|(entry, items)| {
            let copies: Vec<(&str, Zeroizing<Vec<u8>>)> = items
                .iter()
                .filter_map(|(label, item)| Some((*label, Zeroizing::new(item.get_secret().ok()?))))
                .collect();
            (entry, copies)
        })
        .filter(|(_, copies)| copies.iter().any(|(_, v)| *v != copies[0].1))
        .collect();
    let Some(((service, key), copies)) = differing.first() else {
        return report(
            id,
            title,
            Status::Ok,
            format!(
                "{} entr{} with no conflicting copies",
                held.len(),
                if held.len() == 1 { "y" } else { "ies" }
            ),
        );
    };
    let labels: Vec<_> = copies.iter().map(|(l, _)| format!("{l:?}")).collect();
    let more = if differing.len() > 1 {
        format!(" (and {} more)", differing.len() - 1)
    } else {
        String::new()
    };
    let reader = match pin {
        Some(p) => format!("ov reads the one in {p:?}"),
        None => "ov reads the one in the default collection first".to_owned(),
    };
    with_fix(
        report(
            id,
            title,
            Status::Warn,
            format!(
                "{service} {key} has different values in the collections {}{more}; {reader}",
                labels.join(", ")
            ),
        ),
        format!(
            "ov secrets delete {0} {1} && ov secrets set {0} {1}   # keep one copy",
            q(service),
            q(key)
        ),
    )
}
