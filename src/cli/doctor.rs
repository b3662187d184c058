//! `ov doctor`

use crate::cli::out;
use std::time::Duration;

use clap::Args;
use ov_checks::{
    Finished, Status, Summary, apply_auto_fix, catalog, render_json, render_list_human,
    render_list_json, select,
};

use crate::doctor::tasks;
use crate::error::{EXIT_ERROR, OvError, Result};
use crate::host::Host;
use crate::paths::Paths;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Checks or groups to run (e.g. `settings`, `config.credentials_mode`); all when empty
    #[arg(value_name = "CHECK|GROUP", add = crate::cli::complete::check())]
    checks: Vec<String>,
    /// Print the report as JSON (schema: docs/doctor-json.md)
    #[arg(long)]
    json: bool,
    /// Apply the fixes that are safe to automate (such as chmod 600), then check again
    #[arg(long)]
    fix: bool,
    /// Give up on a check after this many milliseconds (checks that open
    /// a KeePass database get at least 15 s, those that run gpg 10 s)
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout: u64,
    /// List the checks and groups instead of running them
    #[arg(long, conflicts_with = "fix")]
    list: bool,
}

fn unknown_check(name: &str) -> OvError {
    OvError::usage(format!("no check or group named '{name}'")).hint("ov doctor --list")
}

fn run_once(paths: &Paths, host: &Host, args: &DoctorArgs) -> Result<Vec<Finished>> {
    let (selected, unknown) = select(tasks(paths, host, &args.checks), &args.checks);
    if let Some(name) = unknown.first() {
        return Err(unknown_check(name));
    }
    let results = ov_checks::run(selected, Duration::from_millis(args.timeout));
    // Show what was asked for, plus the prerequisites that explain a skip.
    if args.checks.is_empty() {
        return Ok(results);
    }
    let wanted = |id: &str| {
        args.checks
            .iter()
            .any(|p| id == p || id.starts_with(&format!("{p}.")))
    };
    let mut shown: Vec<String> = results
        .iter()
        .filter(|f| wanted(&f.report.id))
        .flat_map(|f| f.report.depends_on.clone())
        .collect();
    shown.extend(
        results
            .iter()
            .filter(|f| wanted(&f.report.id))
            .map(|f| f.report.id.clone()),
    );
    Ok(results
        .into_iter()
        .filter(|f| shown.contains(&f.report.id))
        .collect())
}

pub fn run(args: DoctorArgs) -> Result<i32> {
    let paths = Paths::from_env()?;
    let host = Host::load(&Paths::plugin_search_path());

    if args.list {
        // What `ov doctor CHECKS…` would run.
        let (selected, unknown) = select(tasks(&paths, &host, &args.checks), &args.checks);
        if let Some(name) = unknown.first() {
            return Err(unknown_check(name));
        }
        let groups = catalog(&selected);
        if args.json {
            out!("{}", render_list_json(&groups));
        } else {
            out!("{}", render_list_human(&groups, crate::cli::stdout_width()));
        }
        return Ok(0);
    }

    let mut results = run_once(&paths, &host, &args)?;
    let mut fixed = Vec::new();
    if args.fix {
        let fixes: Vec<_> = results
            .iter()
            .filter(|f| matches!(f.report.status, Status::Warn | Status::Fail))
            .filter_map(|f| f.report.auto_fix.clone())
            .collect();
        for fix in &fixes {
            match apply_auto_fix(fix) {
                Ok(line) => {
                    if !args.json {
                        eprintln!("fixed: {line}");
                    }
                    fixed.push(line);
                }
                Err(why) => crate::cli::warn(&format!("could not fix: {why}")),
            }
        }
        if !fixes.is_empty() {
            results = run_once(&paths, &host, &args)?;
        } else if !args.json {
            eprintln!("nothing to fix automatically");
        }
    }

    if args.json {
        out!("{}", render_json(&results, &fixed));
    } else {
        crate::cli::print_report(&results)?;
    }
    Ok(if Summary::of(&results).passed() {
        0
    } else {
        EXIT_ERROR
    })
}
