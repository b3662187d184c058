//! `ov secrets gpg doctor`: the GnuPG chain, checked.

use std::path::Path;
use std::time::Duration;

use ov_checks::Summary;

use crate::error::{EXIT_ERROR, Result};

pub(super) fn doctor(file: &Path, json: bool) -> Result<i32> {
    let tasks = ov_gpg::checks::tasks(file.to_path_buf());
    let results = ov_checks::run(tasks, Duration::from_millis(10_000));
    if json {
        crate::cli::out!("{}", ov_checks::render_json(&results, &[]));
    } else {
        crate::cli::print_report(&results)?;
    }
    Ok(if Summary::of(&results).passed() {
        0
    } else {
        EXIT_ERROR
    })
}
