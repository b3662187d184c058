//! Command-line parsing and printing. Only this module talks to the user.

mod agent;
mod auth;
mod complete;
mod doctor;
mod init;
mod inject;
mod man;
mod manifest;
mod plugins;
mod podman;
mod run;
pub(crate) mod secrets;
mod secrets_gpg;
mod settings;
mod systemd;

use std::io::{IsTerminal, Write};

use clap::{Parser, Subcommand};

use crate::error::{EXIT_ERROR, EXIT_USAGE, OvError, Result};
use crate::host::Host;
use crate::paths::Paths;
use crate::settings::{Settings, Specs};
use crate::store::Store;

/// `println!` for command output: a write that fails (a full disk,
/// `> /dev/full`) is an `ov: error:`, not a panic. A closed pipe ends ov
/// quietly through SIGPIPE, as it does any Unix filter.
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))?
    };
}
/// `print!` with the same rule as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))?
    };
}
pub(crate) use {out, outln};

/// Write command output to stdout, checking the write.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) -> Result<()> {
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(output_error)
}

/// Write bytes to stdout as they are, checking the write.
pub(crate) fn out_bytes(bytes: &[u8]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(bytes)
        .and_then(|()| o.flush())
        .map_err(output_error)
}

/// `writing output: No space left on device`.
pub(crate) fn output_error(e: std::io::Error) -> OvError {
    let why = e
        .raw_os_error()
        .map(|n| nix::errno::Errno::from_raw(n).desc().to_owned())
        .unwrap_or_else(|| e.to_string());
    OvError::new(format!("writing output: {why}"))
        .hint("df -h .   # is the disk that output goes to full?")
}

const ABOUT: &str = "Store, serve and troubleshoot secrets on Linux";

const LONG_ABOUT: &str = "\
ov stores and serves secrets through pluggable backends (environment, Secret \
Service keyring, KeePass .kdbx, GPG, plaintext config) and, first of all, tells \
you why a secret setup is broken and which command fixes it.

Start with `ov doctor`.";

#[derive(Debug, Parser)]
#[command(
    name = "ov",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    /// No notes or progress lines on stderr, and no warning for a value given on the command line (also: OV_QUIET=1)
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// `--quiet` (or `OV_QUIET=1`): notes and progress lines are not printed.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// A progress line for the person watching (`stored …`, `sealed …`);
/// nothing with `--quiet`.
pub(crate) fn info(line: &str) {
    if !quiet() {
        eprintln!("{line}");
    }
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    /// Diagnose the secret setup; every problem comes with the command that fixes it
    Doctor(doctor::DoctorArgs),
    /// Set ov up on this machine: propose a backend, create or unlock it, move plaintext entries in
    Init(init::InitArgs),
    /// Read and write secrets (also: ov secret)
    #[command(alias = "secret", subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Read and change ov's settings (config.toml)
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Show the backend plugins ov found
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Machine keys for services that start unattended
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// A project's secrets manifest (ov-secrets.toml): generate, validate, rotate, back up (also: ov m)
    #[command(alias = "m")]
    Manifest(manifest::ManifestArgs),
    /// Run a command with an app's secrets in its environment (or as files)
    Run(run::RunArgs),
    /// Render a template's {{ ov://SERVICE/KEY }} placeholders with the values
    Inject(inject::InjectArgs),
    /// podman secrets from the store, and the quadlet lines that inject them
    #[command(subcommand)]
    Podman(podman::PodmanCommand),
    /// Encrypted systemd credentials from the store, for units that run without ov
    #[command(subcommand)]
    Systemd(systemd::SystemdCommand),
    /// A local daemon that runs commands with secrets, unlocked once
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (ov.1 and one per command group) into DIR
    #[command(hide = true)]
    GenerateMan { dir: std::path::PathBuf },
}

/// Entry point for `main`: run and return the exit status.
pub fn main() -> i32 {
    // A shell asking for completions (`COMPLETE=bash ov -- …`): answered
    // and exited here; otherwise this returns at once.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    // `ov --version` alone is what scripts and packagers run to see that
    // ov is there: answered without building the whole command tree.
    let mut args = std::env::args_os().skip(1);
    if let (Some(a), None) = (args.next(), args.next())
        && (a == "--version" || a == "-V")
    {
        return match writeln!(std::io::stdout(), "ov {}", env!("CARGO_PKG_VERSION")) {
            Ok(()) => 0,
            Err(e) => {
                eprint!("{}", output_error(e).render());
                EXIT_ERROR
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    // Output is line-buffered: the last, unterminated piece is written
    // here, and its failure is an error too.
    match run(cli).and_then(|code| {
        std::io::stdout().flush().map_err(output_error)?;
        Ok(code)
    }) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprint!("{}", e.render());
            e.exit_code
        }
    }
}

fn clap_exit(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            EXIT_USAGE
        }
        _ => {
            let text = e.render().to_string();
            let text = text
                .strip_prefix("error: ")
                .map_or(text.clone(), |t| format!("ov: error: {t}"));
            eprint!("{text}");
            EXIT_USAGE
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let from_env = std::env::var_os("OV_QUIET").is_some_and(|v| !v.is_empty() && v != "0");
    QUIET.store(cli.quiet || from_env, std::sync::atomic::Ordering::Relaxed);
    match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Init(args) => init::run(args),
        Command::Secrets(cmd) => secrets::run(cmd),
        Command::Settings(cmd) => settings::run(cmd),
        Command::Plugins(cmd) => plugins::run(cmd),
        Command::Auth(cmd) => auth::run(cmd),
        Command::Manifest(args) => manifest::run(args),
        Command::Run(args) => run::run(args),
        Command::Inject(args) => inject::run(args),
        Command::Podman(cmd) => podman::run(cmd),
        Command::Systemd(cmd) => systemd::run(cmd),
        Command::Agent(cmd) => agent::run(cmd),
        Command::Completions { shell } => {
            // The registration calls `ov` at each TAB (`COMPLETE=SHELL ov`),
            // so completions know this machine's store.
            let name = shell.to_string();
            let shells = clap_complete::env::Shells::builtins();
            let completer = shells.completer(&name).ok_or_else(|| {
                OvError::usage(format!("ov cannot complete in {name}"))
                    .hint("ov completions bash   # or zsh, fish")
            })?;
            let mut script = Vec::new();
            completer
                .write_registration("COMPLETE", "ov", "ov", "ov", &mut script)
                .map_err(|e| OvError::new(format!("cannot write the {name} script: {e}")))?;
            out_bytes(&script)?;
            Ok(0)
        }
        Command::GenerateMan { dir } => generate_man(&dir),
    }
}

/// `ov.1` and `ov-<group>.1` for each visible command, from the clap
/// definitions, so the pages never drift from `--help`.
fn generate_man(dir: &std::path::Path) -> Result<i32> {
    man::generate(<Cli as clap::CommandFactory>::command(), dir)
}

/// Everything a store command needs, set up once.
pub(crate) struct Engine {
    pub paths: Paths,
    /// Every setting: the engine's and the loaded backends'.
    pub specs: Specs,
    pub store: Store,
}

impl Engine {
    pub fn load() -> Result<Engine> {
        let paths = Paths::from_env()?;
        let host = load_host();
        let specs = Specs::of_host(&host);
        let settings = Settings::load(&paths, &specs)?;
        let store = Store::new(&paths, &settings, host);
        Ok(Engine {
            paths,
            specs,
            store,
        })
    }
}

/// The backends, built in and from the plugin directories, saying which
/// plugins were skipped and why.
pub(crate) fn load_host() -> Host {
    let host = Host::load(&Paths::plugin_search_path());
    for failed in host.failures() {
        if let crate::host::State::Failed { error, fix } = &failed.state {
            warn(&format!("skipping a plugin: {error}"));
            eprintln!("hint: {fix}");
        }
    }
    host
}

// `--json`, for commands whose output scripts parse (a plain comment, as
// for `AppFlags`).
#[derive(Debug, clap::Args)]
pub(crate) struct JsonArgs {
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// A doctor report for a person, coloured and wrapped as stdout allows.
pub(crate) fn print_report(results: &[ov_checks::Finished]) -> Result<()> {
    out!(
        "{}",
        ov_checks::render_human(results, color_stdout(), stdout_width())
    );
    Ok(())
}

/// Colour on stdout: only on a terminal, never with NO_COLOR.
pub(crate) fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The narrowest width output is wrapped to, whatever `COLUMNS` says.
const MIN_WIDTH: usize = 20;

/// The width to wrap stdout to: `COLUMNS` when it is set to a number,
/// else the terminal's; none for a pipe or a file, so their text does not
/// depend on the window it was run from. A `COLUMNS` that is not a number
/// is ignored, as other tools do.
pub(crate) fn stdout_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    columns
        .or_else(|| {
            console::Term::stdout()
                .size_checked()
                .map(|(_rows, cols)| usize::from(cols))
        })
        .map(|w| w.max(MIN_WIDTH))
}

fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `ov: note: …` on stderr, one line per note the engine returned.
pub(crate) fn notes<S: AsRef<str>>(notes: &[S]) {
    if quiet() {
        return;
    }
    for n in notes {
        eprintln!("ov: note: {}", n.as_ref());
    }
}

/// A machine key, after saying when it could not be locked in memory.
pub(crate) fn key_in_memory(key: crate::machine_key::MachineKey) -> crate::machine_key::MachineKey {
    if let Some(w) = key.memory_warning() {
        warn(&w);
    }
    key
}

/// `ov: warning: …` on stderr.
pub(crate) fn warn(message: &str) {
    let label = console::Style::new()
        .force_styling(color_stderr())
        .yellow()
        .apply_to("warning:");
    eprintln!("ov: {label} {message}");
}

/// Print JSON for scripts.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| OvError::new(format!("cannot encode JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}
