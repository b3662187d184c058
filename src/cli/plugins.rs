//! `ov plugins list`

use crate::cli::outln;
use clap::Subcommand;
use serde::Serialize;

use crate::error::{EXIT_ERROR, Result};
use crate::host::{Host, State};
use crate::paths::Paths;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum PluginsCommand {
    /// Name, version, ABI, origin and status of every plugin; exits 1 if one failed to load
    List(crate::cli::JsonArgs),
}

#[derive(Serialize)]
struct Row {
    name: String,
    version: String,
    abi: Option<u32>,
    origin: String,
    status: &'static str,
    detail: Option<String>,
    fix: Option<String>,
}

pub fn run(cmd: PluginsCommand) -> Result<i32> {
    let PluginsCommand::List(args) = cmd;
    let host = Host::load(&Paths::plugin_search_path());
    let rows: Vec<Row> = host
        .plugins
        .iter()
        .map(|p| {
            let (status, detail, fix) = match &p.state {
                State::Loaded => ("loaded", None, None),
                State::Shadowed { by } => ("shadowed", Some(format!("replaced by {by}")), None),
                State::Failed { error, fix } => ("failed", Some(error.clone()), Some(fix.clone())),
            };
            Row {
                name: p.name.clone(),
                version: p.version.clone(),
                abi: p.abi,
                origin: p.origin.to_string(),
                status,
                detail,
                fix,
            }
        })
        .collect();
    let failed = rows.iter().any(|r| r.status == "failed");
    if args.json {
        crate::cli::print_json(&rows)?;
    } else {
        let w_name = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        let w_ver = rows
            .iter()
            .map(|r| r.version.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let w_origin = rows
            .iter()
            .map(|r| r.origin.len())
            .max()
            .unwrap_or(6)
            .max(6);
        outln!(
            "{:<w_name$}  {:<w_ver$}  ABI  {:<w_origin$}  STATUS",
            "NAME",
            "VERSION",
            "ORIGIN"
        );
        for r in &rows {
            let abi = r.abi.map_or_else(|| "-".to_owned(), |a| a.to_string());
            let status = match &r.detail {
                Some(d) if r.status == "shadowed" => format!("{} ({d})", r.status),
                _ => r.status.to_owned(),
            };
            outln!(
                "{:<w_name$}  {:<w_ver$}  {abi:<3}  {:<w_origin$}  {status}",
                r.name,
                r.version,
                r.origin
            );
        }
        for r in rows.iter().filter(|r| r.status == "failed") {
            eprintln!(
                "ov: error: {}",
                r.detail.as_deref().unwrap_or("plugin failed to load")
            );
            if let Some(fix) = &r.fix {
                eprintln!("hint: {fix}");
            }
        }
    }
    Ok(if failed { EXIT_ERROR } else { 0 })
}
