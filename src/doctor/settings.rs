//! `settings.parse`: the settings files parse, and name only known keys.

use ov_checks::{Status, report};

use crate::paths::Paths;
use crate::settings::Settings;

pub(super) fn settings_parse(
    paths: &Paths,
    settings: &crate::error::Result<Settings>,
) -> ov_checks::CheckReport {
    let id = "settings.parse";
    let title = "settings files parse";
    match settings {
        Err(e) => {
            let mut r = report(id, title, Status::Fail, e.message.clone());
            r.fix = e.hints.first().cloned();
            r
        }
        Ok(s) if !s.unknown.is_empty() => {
            let (key, file) = &s.unknown[0];
            let mut r = report(
                id,
                title,
                Status::Warn,
                format!(
                    "{}: unknown setting{} {} (ignored)",
                    file.display(),
                    if s.unknown.len() == 1 { "" } else { "s" },
                    s.unknown
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            r.fix = Some(if file == &paths.user_config() {
                format!("ov settings unset {key}")
            } else {
                ov_plugin_support::edit_command(file)
            });
            r
        }
        Ok(_) => {
            let files: Vec<String> = [paths.system_config(), paths.user_config()]
                .into_iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            let finding = if files.is_empty() {
                "no settings files; defaults apply".to_owned()
            } else {
                format!(
                    "{} parse{}",
                    files.join(" and "),
                    if files.len() == 1 { "s" } else { "" }
                )
            };
            report(id, title, Status::Ok, finding)
        }
    }
}
