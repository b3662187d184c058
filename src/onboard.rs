//! `ov init`: what this machine has, and the backend a careful admin would
//! pick for it. The survey reads only descriptions and probes (no backend
//! is named here), and proposes steps as the commands a user would type.

use ov_plugin_api::Availability;

use crate::error::{OvError, Result};
use crate::store::Store;

/// One backend, as the survey saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub name: String,
    pub summary: String,
    pub plaintext: bool,
    /// Can be chosen for writes: writable, listable, encrypted.
    pub candidate: bool,
    pub creates: bool,
    pub state: Availability,
    /// Entries it holds, when it is plaintext and could be listed.
    pub entries: Option<usize>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The chosen backend is ready and nothing is left in plaintext.
    Done { backend: String },
    /// Steps to run, in order, each a command line.
    Steps { backend: String, steps: Vec<String> },
    /// No encrypted backend can be used or made here.
    Stuck { why: String },
}

#[derive(Debug)]
pub struct Survey {
    pub backends: Vec<Seen>,
    /// The key GnuPG would sign and decrypt `.secrets` with, if any.
    pub gpg_key: Option<String>,
    pub plan: Plan,
}

/// Look at the machine and propose a plan; `wanted` is `--backend`.
pub fn survey(store: &Store, wanted: Option<&str>) -> Result<Survey> {
    let mut backends = Vec::new();
    for b in store.chain() {
        let state = store.probe(b);
        let entries = if b.desc.plaintext && b.desc.listable && state.is_available() {
            Some(store.list_in(b)?.len())
        } else {
            None
        };
        backends.push(Seen {
            name: b.desc.name.clone(),
            summary: b.desc.summary.clone(),
            plaintext: b.desc.plaintext,
            candidate: b.desc.writable && b.desc.listable && !b.desc.plaintext,
            creates: b.desc.creates,
            state,
            entries,
        });
    }
    let gpg_key = ov_gpg::Gpg::find()
        .ok()
        .and_then(|g| g.secret_keys().ok())
        .and_then(|keys| keys.into_iter().next())
        .map(|k| format!("{} {}", k.keyid, k.uid));
    let plan = plan(&backends, store.forced(), wanted)?;
    Ok(Survey {
        backends,
        gpg_key,
        plan,
    })
}

fn plan(backends: &[Seen], forced: Option<&str>, wanted: Option<&str>) -> Result<Plan> {
    let chosen = match wanted {
        Some(name) => {
            let b = backends.iter().find(|b| b.name == name).ok_or_else(|| {
                OvError::usage(format!("there is no backend named '{name}'"))
                    .hint("ov plugins list   # the backends ov found")
            })?;
            if !b.candidate {
                return Err(OvError::usage(format!(
                    "the {name} backend cannot hold secrets safely (it is plaintext, read-only or cannot list)"
                ))
                .hint("ov init   # ov proposes one"));
            }
            Some(b)
        }
        // Ready first (a desktop keyring), else one that can be made (a
        // KeePass database on a server), else one that is locked.
        None => backends
            .iter()
            .filter(|b| b.candidate)
            .find(|b| b.state.is_available())
            .or_else(|| {
                backends.iter().find(|b| {
                    b.candidate && b.creates && matches!(b.state, Availability::Unavailable { .. })
                })
            })
            .or_else(|| {
                backends
                    .iter()
                    .find(|b| b.candidate && matches!(b.state, Availability::Locked { .. }))
            }),
    };
    let Some(b) = chosen else {
        let why = backends
            .iter()
            .filter(|b| b.candidate)
            .map(|b| format!("{}: {}", b.name, state_text(&b.state)))
            .collect::<Vec<_>>()
            .join("; ");
        return Ok(Plan::Stuck {
            why: if why.is_empty() {
                "no encrypted backend is installed".to_owned()
            } else {
                why
            },
        });
    };
    let mut steps = Vec::new();
    match &b.state {
        Availability::Available { .. } => {}
        Availability::Locked { .. } => steps.push("ov secrets unlock".to_owned()),
        Availability::Unavailable { reason, .. } => {
            if b.creates {
                steps.push("ov secrets init".to_owned());
            } else {
                return Ok(Plan::Stuck {
                    why: format!("{} cannot be used here: {reason}", b.name),
                });
            }
        }
    }
    // Writes go where auto would send them unless another backend comes
    // first, or a setting names another one.
    let auto_pick = backends
        .iter()
        .find(|x| x.candidate && x.state.is_available())
        .map(|x| x.name.as_str());
    let needs_setting = match forced {
        Some(f) => f != b.name,
        None => wanted.is_some() && auto_pick.is_some_and(|a| a != b.name),
    };
    if needs_setting {
        steps.push(format!("ov settings set secret_backend {}", b.name));
    }
    for p in backends
        .iter()
        .filter(|p| p.plaintext && p.entries.unwrap_or(0) > 0)
    {
        steps.push(format!("ov secrets import --from {} --move", p.name));
    }
    Ok(if steps.is_empty() {
        Plan::Done {
            backend: b.name.clone(),
        }
    } else {
        Plan::Steps {
            backend: b.name.clone(),
            steps,
        }
    })
}

/// A probe's state in a few words.
pub fn state_text(a: &Availability) -> String {
    match a {
        Availability::Available { .. } => "ready".to_owned(),
        Availability::Locked { reason } => format!("locked ({reason})"),
        Availability::Unavailable { reason, .. } => format!("not usable ({reason})"),
    }
}
