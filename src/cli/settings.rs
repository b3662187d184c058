//! `ov settings get|set|unset|list`

use crate::cli::outln;
use clap::Subcommand;
use serde::Serialize;

use crate::error::Result;
use crate::paths::Paths;
use crate::settings::{self, Origin, Settings, Specs};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SettingsCommand {
    /// Print a setting's effective value
    Get {
        #[arg(add = crate::cli::complete::setting())]
        key: String,
    },
    /// Change a setting in your config.toml (comments in the file are kept)
    Set {
        #[arg(add = crate::cli::complete::setting())]
        key: String,
        #[arg(allow_hyphen_values = true, add = crate::cli::complete::setting_value())]
        value: String,
    },
    /// Remove a setting from your config.toml, so the default applies again
    Unset {
        #[arg(add = crate::cli::complete::setting())]
        key: String,
    },
    /// Every setting with its value and where it comes from
    List(crate::cli::JsonArgs),
}

#[derive(Serialize)]
struct Row<'a> {
    key: &'a str,
    value: Option<&'a settings::Value>,
    origin: Option<&'a Origin>,
    about: &'a str,
}

pub fn run(cmd: SettingsCommand) -> Result<i32> {
    let paths = Paths::from_env()?;
    // The backends own most settings: they say which there are.
    let specs = Specs::of_host(&crate::cli::load_host());
    match cmd {
        SettingsCommand::Get { key } => {
            specs.get(&key).ok_or_else(|| specs.unknown_key(&key))?;
            let s = Settings::load(&paths, &specs)?;
            match s.get(&key) {
                Some(v) => outln!("{v}"),
                None => outln!(),
            }
        }
        SettingsCommand::Set { key, value } => {
            let v = settings::set_user(&paths, &specs, &key, &value)?;
            crate::cli::info(&format!(
                "{key} = {v}  ({})",
                paths.tilde(&paths.user_config())
            ));
            for u in Settings::load(&paths, &specs)?.unbound(&paths) {
                crate::cli::notes(&[format!(
                    "{} {} belongs to {}, so it is not used while {} names another",
                    u.name,
                    paths.tilde(&u.value),
                    paths.tilde(&u.belongs_to),
                    u.to
                )]);
                crate::cli::info(&format!(
                    "hint: ov settings set {} {}   # if this one uses it too",
                    u.name,
                    ov_plugin_support::shell_quote(&u.value)
                ));
            }
        }
        SettingsCommand::Unset { key } => {
            if settings::unset_user(&paths, &specs, &key)? {
                crate::cli::info(&format!(
                    "removed {key} from {}",
                    paths.tilde(&paths.user_config())
                ));
            } else {
                eprintln!("{key} was not set in {}", paths.tilde(&paths.user_config()));
            }
        }
        SettingsCommand::List(args) => {
            let s = Settings::load(&paths, &specs)?;
            let entries = s.entries();
            if args.json {
                let rows: Vec<Row> = entries
                    .iter()
                    .map(|(spec, value, origin)| Row {
                        key: &spec.name,
                        value: *value,
                        origin: *origin,
                        about: &spec.about,
                    })
                    .collect();
                crate::cli::print_json(&rows)?;
            } else {
                let width = entries
                    .iter()
                    .map(|(k, _, _)| k.name.len())
                    .max()
                    .unwrap_or(0);
                for (spec, value, origin) in entries {
                    let value = match value {
                        Some(settings::Value::Text(t)) if t.is_empty() => "\"\"".to_owned(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    };
                    let origin = origin.map(|o| match o {
                        Origin::Default => "default".to_owned(),
                        Origin::System(p) | Origin::User(p) => paths.tilde(p),
                    });
                    outln!(
                        "{:<width$} = {value}  # {}",
                        spec.name,
                        origin.unwrap_or_else(|| "unset".into())
                    );
                }
            }
        }
    }
    Ok(0)
}
