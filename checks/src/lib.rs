//! `ov-checks`: the doctor engine.
//!
//! A [`Task`] is a unit of work with an id (`config.file`, or a group such as
//! `config` when a backend contributes several checks at once), the ids it
//! depends on, and a closure producing [`CheckReport`]s. [`run`] starts every
//! task on its own thread, holds each back until its prerequisites finish,
//! skips it when one failed, and stops waiting for it after a timeout, so one
//! hung D-Bus call or agent cannot hang the whole run.

mod files;
mod render;
mod runner;

pub use files::config_file_mode_check;
pub use ov_plugin_support::{private_file_report as private_file_check, report, with_fix};
pub use render::{
    JSON_SCHEMA_VERSION, ListedCheck, ListedGroup, Summary, catalog, render_human, render_json,
    render_list_human, render_list_json,
};
pub use runner::{Finished, Task, apply_auto_fix, run, select};

pub use ov_plugin_api::{AutoFix, CheckReport, Status};

/// The group of a check id: everything before the first dot.
pub fn group_of(id: &str) -> &str {
    id.split_once('.').map_or(id, |(g, _)| g)
}
