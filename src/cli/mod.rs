//! Command-line parsing and printing. Only this module talks to the user.

mod doctor;
mod kdbx;
mod plugins;
mod secrets;
mod secrets_gpg;
mod settings;

use std::io::{IsTerminal, Write};

use clap::{Parser, Subcommand};

use crate::error::{EXIT_USAGE, OvError, Result};
use crate::host::Host;
use crate::paths::Paths;
use crate::settings::Settings;
use crate::store::Store;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Diagnose the secret setup; every problem comes with the command that fixes it
    Doctor(doctor::DoctorArgs),
    /// Read and write secrets (also: ov secret)
    #[command(alias = "secret", subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Read and change ov's settings (config.toml)
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Show the backend plugins ov found
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
}

/// Entry point for `main`: run and return the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    match run(cli) {
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
    match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Secrets(cmd) => secrets::run(cmd),
        Command::Settings(cmd) => settings::run(cmd),
        Command::Plugins(cmd) => plugins::run(cmd),
    }
}

/// Everything a store command needs, set up once.
pub(crate) struct Engine {
    pub paths: Paths,
    pub store: Store,
}

impl Engine {
    pub fn load() -> Result<Engine> {
        let paths = Paths::from_env()?;
        let settings = Settings::load(&paths)?;
        let host = Host::load(&Paths::plugin_search_path());
        for failed in host.failures() {
            if let crate::host::State::Failed { error, fix } = &failed.state {
                warn(&format!("skipping a plugin: {error}"));
                eprintln!("hint: {fix}");
            }
        }
        let store = Store::new(&paths, &settings, host);
        Ok(Engine { paths, store })
    }
}

/// `--json`, for commands whose output scripts parse.
#[derive(Debug, clap::Args)]
pub(crate) struct JsonArgs {
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Colour on stdout: only on a terminal, never with NO_COLOR.
pub(crate) fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
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
    println!("{text}");
    Ok(())
}
