//! How a doctor run reads: a table for people, a stable JSON document for scripts.

use std::fmt::Write as _;

use console::Style;
use ov_plugin_api::Status;
use serde::Serialize;

use crate::{Finished, group_of};

/// Bumped only on an incompatible change to the JSON document (see
/// `docs/doctor-json.md`); new fields may appear without a bump.
pub const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

impl Summary {
    pub fn of(results: &[Finished]) -> Self {
        let mut s = Summary::default();
        for f in results {
            match f.report.status {
                Status::Ok => s.ok += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
                Status::Skip => s.skip += 1,
            }
        }
        s
    }

    pub fn passed(&self) -> bool {
        self.fail == 0
    }
}

fn symbol(status: Status) -> &'static str {
    match status {
        Status::Ok => "✓",
        Status::Warn => "!",
        Status::Fail => "✗",
        Status::Skip => "-",
    }
}

fn style(status: Status, color: bool) -> Style {
    let s = Style::new().force_styling(color);
    match status {
        Status::Ok => s.green(),
        Status::Warn => s.yellow(),
        Status::Fail => s.red().bold(),
        Status::Skip => s.dim(),
    }
}

/// The human report: one line per check, a `fix:` line under each warn or
/// fail, and a summary line.
pub fn render_human(results: &[Finished], color: bool) -> String {
    let width = results.iter().map(|f| f.report.id.len()).max().unwrap_or(0);
    let dim = Style::new().force_styling(color).dim();
    let bold = Style::new().force_styling(color).bold();
    let mut out = String::new();
    for f in results {
        let r = &f.report;
        let st = style(r.status, color);
        let _ = writeln!(
            out,
            "{} {:<width$}  {}",
            st.apply_to(symbol(r.status)),
            r.id,
            r.finding
        );
        if matches!(r.status, Status::Warn | Status::Fail)
            && let Some(fix) = &r.fix
        {
            let _ = writeln!(
                out,
                "  {:<width$}  {} {}",
                "",
                dim.apply_to("fix:"),
                bold.apply_to(fix)
            );
        }
    }
    let s = Summary::of(results);
    let _ = writeln!(
        out,
        "\n{} checks: {} ok, {} warning{}, {} failed, {} skipped",
        results.len(),
        s.ok,
        s.warn,
        if s.warn == 1 { "" } else { "s" },
        s.fail,
        s.skip
    );
    out
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    id: &'a str,
    group: &'a str,
    title: &'a str,
    status: Status,
    finding: &'a str,
    fix: Option<&'a str>,
    auto_fix: bool,
    depends_on: &'a [String],
    duration_ms: u64,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    ok: bool,
    summary: Summary,
    checks: Vec<JsonCheck<'a>>,
    fixed: &'a [String],
}

/// The JSON report (schema in `docs/doctor-json.md`). `fixed` lists the
/// fixes `--fix` applied before this run.
pub fn render_json(results: &[Finished], fixed: &[String]) -> String {
    let summary = Summary::of(results);
    let doc = JsonReport {
        schema_version: JSON_SCHEMA_VERSION,
        ok: summary.passed(),
        summary,
        checks: results
            .iter()
            .map(|f| JsonCheck {
                id: &f.report.id,
                group: group_of(&f.report.id),
                title: &f.report.title,
                status: f.report.status,
                finding: &f.report.finding,
                fix: f.report.fix.as_deref(),
                auto_fix: f.report.auto_fix.is_some(),
                depends_on: &f.report.depends_on,
                duration_ms: u64::try_from(f.duration.as_millis()).unwrap_or(u64::MAX),
            })
            .collect(),
        fixed,
    };
    let mut s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}
