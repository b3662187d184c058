//! Man pages, from the same clap definitions as `--help`: clap's sections
//! for every command, and ov's own sections (the resolution order,
//! ENVIRONMENT, FILES, EXIT STATUS, EXAMPLES, SEE ALSO) kept here, so the
//! pages and the CLI cannot drift apart.

use std::path::Path;

use roff::{Roff, bold, italic, roman};

use crate::error::{OvError, Result};

/// A block of an extra section.
enum Block {
    /// A paragraph.
    P(&'static str),
    /// A term and what it means (`.TP`).
    Item(&'static str, &'static str),
    /// Commands shown as typed, one per line, after a sentence.
    Example(&'static str, &'static [&'static str]),
}

use Block::{Example, Item, P};

type Section = (&'static str, &'static [Block]);

const OV_SECTIONS: &[Section] = &[
    (
        "RESOLUTION ORDER",
        &[
            P("A read asks the sources in order, and the first that holds the entry answers:"),
            Item(
                "environment",
                "OV_SERVICE_KEY: OV_ followed by the service and the key, upper-cased, every character other than A-Z and 0-9 turned into _ (ov/vnc password reads OV_VNC_PASSWORD). An empty variable counts as unset.",
            ),
            Item(
                "keyring",
                "the Secret Service (GNOME Keyring, KeePassXC), on the session bus.",
            ),
            Item(
                "kdbx",
                "a KeePass database (KDBX 4), unlocked through OV_KDBX_PASSWORD, the kernel-keyring cache, or a prompt on a terminal.",
            ),
            Item("config", "credentials.toml, plaintext, mode 0600."),
            P(
                "Plugins take their place by the priority they declare (ov plugins list shows it). A backend that is locked or cannot be reached is named in the error, never taken as holding nothing. Writes go to the backend secret_backend names, else to the first encrypted backend that can be used, else to config with a warning.",
            ),
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            Item(
                "OV_SERVICE_KEY",
                "a value that overrides the store for one entry (see RESOLUTION ORDER).",
            ),
            Item(
                "OV_KDBX_PASSWORD",
                "the KeePass database password, for scripts, CI and systemd units; an empty one is an error.",
            ),
            Item(
                "OV_SYSCONFDIR",
                "the system configuration directory instead of /etc/ov.",
            ),
            Item(
                "OV_PLUGIN_PATH",
                "directories searched for backend plugins before the system one (colon-separated).",
            ),
            Item(
                "OV_SYSTEM_PLUGIN_DIR",
                "the system plugin directory instead of /usr/lib/ov/plugins; empty for none.",
            ),
            Item(
                "XDG_CONFIG_HOME, XDG_DATA_HOME",
                "where ov keeps its settings and data (default ~/.config and ~/.local/share).",
            ),
            Item(
                "XDG_RUNTIME_DIR",
                "the private tmpfs for ov run --secrets-dir and locks.",
            ),
            Item(
                "DBUS_SESSION_BUS_ADDRESS",
                "the session bus of the Secret Service.",
            ),
            Item("GNUPGHOME", "the GnuPG home of ov secrets gpg."),
            Item(
                "NO_COLOR",
                "no colour in ov's output, whatever the terminal.",
            ),
        ],
    ),
    (
        "FILES",
        &[
            Item(
                "~/.config/ov/config.toml",
                "the user's settings (ov settings).",
            ),
            Item(
                "/etc/ov/config.toml",
                "the system's settings, read before the user's.",
            ),
            Item(
                "~/.config/ov/credentials.toml",
                "the plaintext backend's entries (mode 0600).",
            ),
            Item(
                "~/.config/ov/secrets.kdbx",
                "the KeePass database, unless secrets.kdbx_path names another.",
            ),
            Item(
                "~/.config/ov/machine-keys.json",
                "the machine keys registered for apps.",
            ),
            Item(
                "~/.local/share/ov/bundles/APP/ENV.age",
                "an app's sealed bundle, opened with its machine key.",
            ),
            Item(
                "/usr/lib/ov/plugins",
                "the backend plugins of the ov package.",
            ),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            Item("0", "success (ov doctor: no check failed)."),
            Item(
                "1",
                "an error, said on stderr with a hint that fixes it (ov doctor: a check failed).",
            ),
            Item("2", "the command was called wrongly."),
            Item(
                "126, 127",
                "ov run: the command is not executable, or not found.",
            ),
            P(
                "ov run otherwise exits with the command's status, and dies of the signal that killed it.",
            ),
        ],
    ),
    (
        "EXAMPLES",
        &[
            Example(
                "Find out what is wrong with this machine's secret setup, with the fix for each problem:",
                &["ov doctor"],
            ),
            Example(
                "Create an encrypted store, move plaintext entries into it, and use it:",
                &[
                    "ov secrets init",
                    "ov secrets import --from config --move",
                    "ov secrets set myapp/prod DATABASE_URL",
                    "ov secrets get myapp/prod DATABASE_URL",
                ],
            ),
            Example(
                "Start a service with its secrets, and none on disk:",
                &[
                    "ov auth derive-machine-key --out /etc/ov/myapp.key --app myapp --env prod",
                    "ov run --machine-key /etc/ov/myapp.key --app myapp --env prod --all -- ./server",
                ],
            ),
        ],
    ),
];

const GROUP_EXAMPLES: &[(&str, &[Block])] = &[
    (
        "ov-init",
        &[Example(
            "See what ov proposes for this machine, then do it:",
            &["ov init", "ov init --yes"],
        )],
    ),
    (
        "ov-doctor",
        &[
            Example(
                "Every check, then one group, then one check as JSON:",
                &[
                    "ov doctor",
                    "ov doctor gpg",
                    "ov doctor config.credentials_mode --json",
                ],
            ),
            Example(
                "List the checks without running any:",
                &["ov doctor --list"],
            ),
        ],
    ),
    (
        "ov-secrets",
        &[
            Example(
                "Store a value from a prompt, read it, and see which backend answered:",
                &[
                    "ov secrets set ov/api-key openrouter",
                    "ov secrets get ov/api-key openrouter",
                    "ov secrets which ov/api-key openrouter",
                ],
            ),
            Example(
                "Back up every entry, and restore it:",
                &[
                    "ov secrets export > backup.yaml",
                    "ov secrets import --file backup.yaml",
                ],
            ),
        ],
    ),
    (
        "ov-secrets-gpg",
        &[Example(
            "Set up gpg-agent and a key, then encrypt a .env file:",
            &[
                "ov secrets gpg setup",
                "ov secrets gpg encrypt -r KEY_ID -i .env -o .secrets",
                "ov secrets gpg edit",
            ],
        )],
    ),
    (
        "ov-settings",
        &[Example(
            "Force writes into the KeePass database:",
            &["ov settings set secret_backend kdbx", "ov settings list"],
        )],
    ),
    (
        "ov-plugins",
        &[Example(
            "Which backends ov found, and where:",
            &["ov plugins list"],
        )],
    ),
    (
        "ov-auth",
        &[Example(
            "A machine key for a service, and a new seal after a change:",
            &[
                "ov auth derive-machine-key --out /etc/ov/myapp.key --app myapp --env prod",
                "ov auth machine-key seal --app myapp --env prod",
            ],
        )],
    ),
    (
        "ov-run",
        &[
            Example(
                "A command with two of an app's secrets:",
                &["ov run --app myapp --env prod --secrets DB,API_KEY -- ./server"],
            ),
            Example(
                "A committed env file of references, resolved at start:",
                &[
                    "ov run --env-file app.env --dry-run -- ./server",
                    "ov run --env-file app.env -- ./server",
                ],
            ),
        ],
    ),
    (
        "ov-inject",
        &[Example(
            "Render a template into a private file:",
            &["ov inject -i config.yml.tpl -o config.yml"],
        )],
    ),
    (
        "ov-podman",
        &[Example(
            "podman secrets for a container, and the quadlet lines:",
            &[
                "ov podman provision --env-file app.env",
                "ov podman provision --env-file app.env --rotate",
            ],
        )],
    ),
    (
        "ov-systemd",
        &[Example(
            "Encrypted credentials for a unit:",
            &[
                "ov systemd credentials --env-file app.env --unit myapp",
                "systemctl daemon-reload && systemctl restart myapp.service",
            ],
        )],
    ),
];

fn render_blocks(roff: &mut Roff, blocks: &[Block]) {
    for b in blocks {
        match b {
            P(text) => {
                roff.control("PP", []);
                roff.text([roman(*text)]);
            }
            Item(term, text) => {
                roff.control("TP", []);
                roff.text([bold(*term)]);
                roff.text([roman(*text)]);
            }
            Example(what, commands) => {
                roff.control("PP", []);
                roff.text([roman(*what)]);
                roff.control("PP", []);
                roff.control("RS", ["4"]);
                roff.control("nf", []);
                for c in *commands {
                    roff.text([roman(format!("$ {c}"))]);
                }
                roff.control("fi", []);
                roff.control("RE", []);
            }
        }
    }
}

/// One page: clap's sections, then this page's own, then SEE ALSO naming
/// the pages `related` (its parent's and its commands').
fn page(name: &str, cmd: clap::Command, related: &[&str]) -> Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name)
        .source(format!("ov {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    let io = |e: std::io::Error| OvError::new(format!("cannot render {name}.1: {e}"));
    man.render_title(&mut out).map_err(io)?;
    man.render_name_section(&mut out).map_err(io)?;
    man.render_synopsis_section(&mut out).map_err(io)?;
    man.render_description_section(&mut out).map_err(io)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).map_err(io)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out).map_err(io)?;
    }
    let mut roff = Roff::default();
    let own: &[Section] = if name == "ov" { OV_SECTIONS } else { &[] };
    for (title, blocks) in own {
        roff.control("SH", [*title]);
        render_blocks(&mut roff, blocks);
    }
    if let Some((_, blocks)) = GROUP_EXAMPLES.iter().find(|(p, _)| *p == name) {
        roff.control("SH", ["EXAMPLES"]);
        render_blocks(&mut roff, blocks);
    }
    if !related.is_empty() {
        roff.control("SH", ["SEE ALSO"]);
        let mut line = Vec::new();
        for (i, p) in related.iter().enumerate() {
            if i > 0 {
                line.push(roman(", "));
            }
            line.push(bold(*p));
            line.push(roman("(1)"));
        }
        roff.text(line);
    }
    roff.control("SH", ["VERSION"]);
    roff.text([italic(format!("ov {}", env!("CARGO_PKG_VERSION")))]);
    roff.to_writer(&mut out).map_err(io)?;
    Ok(out)
}

/// Write `ov.1` and a page per visible command into `dir`.
pub fn generate(root: clap::Command, dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir)
        .map_err(|e| OvError::new(format!("cannot create {}: {e}", dir.display())))?;
    // No `help` subcommand in the pages: there is no ov-help(1).
    let mut root = root.disable_help_subcommand(true);
    root.build();
    // (page, its command, its parent's page)
    let mut all: Vec<(String, clap::Command, Option<String>)> =
        vec![("ov".to_owned(), root.clone(), None)];
    fn walk(
        cmd: &clap::Command,
        prefix: &str,
        all: &mut Vec<(String, clap::Command, Option<String>)>,
    ) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix}-{}", sub.get_name());
            let page = sub
                .clone()
                .disable_help_subcommand(true)
                .name(name.clone())
                .display_name(name.clone());
            all.push((name.clone(), page, Some(prefix.to_owned())));
            walk(sub, &name, all);
        }
    }
    walk(&root, "ov", &mut all);
    for (name, cmd, parent) in &all {
        let related: Vec<&str> = parent
            .iter()
            .map(String::as_str)
            .chain(
                all.iter()
                    .filter(|(_, _, p)| p.as_deref() == Some(name.as_str()))
                    .map(|(n, _, _)| n.as_str()),
            )
            .collect();
        let text = page(name, cmd.clone(), &related)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, text)
            .map_err(|e| OvError::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(0)
}
