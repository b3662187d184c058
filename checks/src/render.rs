//! How a doctor run reads: a table for people, a stable JSON document for scripts.

use std::fmt::Write as _;

use console::{Style, measure_text_width};
use ov_plugin_api::Status;
use serde::Serialize;

use crate::{Finished, Task, group_of};

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

/// `1 check`, `2 checks`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Break `text` into lines of at most `width` columns, at spaces where it
/// can and inside a word (a long path) where it must.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let w = measure_text_width(word);
        if used > 0 && used + 1 + w <= width {
            line.push(' ');
            line.push_str(word);
            used += 1 + w;
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut line));
            used = 0;
        }
        for c in word.chars() {
            let cw = measure_text_width(c.encode_utf8(&mut [0; 4]));
            if used > 0 && used + cw > width {
                lines.push(std::mem::take(&mut line));
                used = 0;
            }
            line.push(c);
            used += cw;
        }
    }
    if used > 0 || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The narrowest column a finding is wrapped into beside the id column;
/// below it the finding goes on lines of its own.
const MIN_TEXT_WIDTH: usize = 24;

/// One entry of a table: `head` (already padded to `col` columns, maybe
/// styled) then `text`, wrapped to `width` when there is one, continuation
/// lines indented to the text column.
fn row(out: &mut String, head: &str, col: usize, text: &str, width: Option<usize>) {
    let Some(width) = width else {
        let _ = writeln!(out, "{head}{text}");
        return;
    };
    let (first, indent) = if col == 0 || width >= col + MIN_TEXT_WIDTH {
        (head.to_owned(), col)
    } else {
        // Too narrow for two columns: the head alone, the text below it.
        // A head wider than the window loses its colour to be wrapped too.
        let head = head.trim_end();
        if measure_text_width(head) <= width {
            let _ = writeln!(out, "{head}");
        } else {
            for line in wrap(&console::strip_ansi_codes(head), width) {
                let _ = writeln!(out, "{line}");
            }
        }
        (" ".repeat(4), 4)
    };
    let pad = " ".repeat(indent);
    for (i, line) in wrap(text, width.saturating_sub(indent)).iter().enumerate() {
        let _ = writeln!(out, "{}{line}", if i == 0 { first.as_str() } else { &pad });
    }
}

/// The `fix:` line of a finding. The command is never broken across lines,
/// so it can be copied whole and pasted: at the finding's column when it
/// fits there, else further left, else whole on a line of its own (the
/// terminal folds it softly, and a copy still gets one line). A trailing
/// `# comment` wraps below it as comment lines, harmless when pasted too.
fn fix_lines(
    out: &mut String,
    fix: &str,
    col: usize,
    width: Option<usize>,
    dim: &Style,
    bold: &Style,
) {
    let (command, comment) = match fix.find("   # ") {
        Some(at) => (
            fix[..at].trim_end(),
            Some(fix[at..].trim_start().trim_start_matches('#').trim()),
        ),
        None => (fix, None),
    };
    let head = "fix: ";
    let need = head.len() + measure_text_width(command);
    let indent = match width {
        Some(w) if w < col + MIN_TEXT_WIDTH || col + need > w => 4,
        _ => col,
    };
    let pad = " ".repeat(indent);
    let comment_fits =
        |w: usize| comment.is_some_and(|c| indent + need + 5 + measure_text_width(c) <= w);
    let (inline, below) = match (width, comment) {
        (None, Some(c)) => (Some(c), None),
        (Some(w), Some(c)) if comment_fits(w) => (Some(c), None),
        (_, c) => (None, c),
    };
    let mut line = format!(
        "{pad}{}{}",
        dim.apply_to("fix:"),
        bold.apply_to(format!(" {command}"))
    );
    if let Some(c) = inline {
        line.push_str(&format!("   {}", dim.apply_to(format!("# {c}"))));
    }
    let _ = writeln!(out, "{line}");
    if let Some(c) = below {
        let text_pad = " ".repeat(indent + head.len());
        let w = width.map_or(usize::MAX, |w| w.saturating_sub(indent + head.len() + 2));
        for l in wrap(c, w) {
            let _ = writeln!(out, "{text_pad}{}", dim.apply_to(format!("# {l}")));
        }
    }
}

/// The human report: one line per check, a `fix:` line under each warn or
/// fail, and a summary line. With a `width` (a terminal's, or `COLUMNS`),
/// every line fits in it; without, each finding stays on one line, so
/// pipes and snapshots get the same text whatever the window.
pub fn render_human(results: &[Finished], color: bool, width: Option<usize>) -> String {
    let id_width = results.iter().map(|f| f.report.id.len()).max().unwrap_or(0);
    let col = id_width + 4;
    let dim = Style::new().force_styling(color).dim();
    let bold = Style::new().force_styling(color).bold();
    let mut out = String::new();
    for f in results {
        let r = &f.report;
        let st = style(r.status, color);
        let head = format!("{} {:<id_width$}  ", st.apply_to(symbol(r.status)), r.id);
        row(&mut out, &head, col, &r.finding, width);
        if matches!(r.status, Status::Warn | Status::Fail)
            && let Some(fix) = &r.fix
        {
            fix_lines(&mut out, fix, col, width, &dim, &bold);
        }
    }
    let s = Summary::of(results);
    out.push('\n');
    row(
        &mut out,
        "",
        0,
        &format!(
            "{}: {} ok, {}, {} failed, {} skipped",
            count(results.len(), "check", "checks"),
            s.ok,
            count(s.warn, "warning", "warnings"),
            s.fail,
            s.skip
        ),
        width,
    );
    out
}

/// One group of `ov doctor --list`.
#[derive(Debug, Serialize)]
pub struct ListedGroup {
    pub id: String,
    /// The title of the task that reports the whole group, if one does.
    pub title: Option<String>,
    pub checks: Vec<ListedCheck>,
    /// False when a task in the group names its checks only as it runs.
    pub checks_known: bool,
}

#[derive(Debug, Serialize)]
pub struct ListedCheck {
    pub id: String,
    pub title: String,
    pub depends_on: Vec<String>,
}

/// What `--list` shows: every group, in run order, with the checks known
/// before running. A backend's batch names its checks only when it runs.
pub fn catalog(tasks: &[Task]) -> Vec<ListedGroup> {
    let mut groups: Vec<ListedGroup> = Vec::new();
    for t in tasks {
        let gid = group_of(&t.id);
        let at = match groups.iter().position(|g| g.id == gid) {
            Some(i) => i,
            None => {
                groups.push(ListedGroup {
                    id: gid.to_owned(),
                    title: None,
                    checks: Vec::new(),
                    checks_known: true,
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[at];
        g.checks_known &= t.listed_all;
        if t.id == gid {
            g.title = Some(t.title.clone());
        } else {
            g.checks.push(ListedCheck {
                id: t.id.clone(),
                title: t.title.clone(),
                depends_on: t.waits_for_all(),
            });
        }
        for (id, title) in &t.listed {
            g.checks.push(ListedCheck {
                id: id.clone(),
                title: title.clone(),
                depends_on: t.waits_for_all(),
            });
        }
    }
    groups
}

/// `--list` for people: each group, then its checks indented under it.
pub fn render_list_human(groups: &[ListedGroup], width: Option<usize>) -> String {
    let id_width = groups
        .iter()
        .flat_map(|g| std::iter::once(g.id.len()).chain(g.checks.iter().map(|c| c.id.len() + 2)))
        .max()
        .unwrap_or(0);
    let col = id_width + 2;
    let mut out = String::new();
    for g in groups {
        let head = format!("{:<id_width$}  ", g.id);
        match (&g.title, g.checks_known) {
            (Some(title), false) => row(
                &mut out,
                &head,
                col,
                &format!("{title} (its checks are named when it runs)"),
                width,
            ),
            (Some(title), true) => row(&mut out, &head, col, title, width),
            (None, _) => {
                let _ = writeln!(out, "{}", g.id);
            }
        }
        for c in &g.checks {
            let head = format!("  {:<w$}  ", c.id, w = id_width - 2);
            row(&mut out, &head, col, &c.title, width);
        }
    }
    out
}

#[derive(Serialize)]
struct JsonList<'a> {
    schema_version: u32,
    groups: &'a [ListedGroup],
}

/// `--list --json` (schema in `docs/doctor-json.md`).
pub fn render_list_json(groups: &[ListedGroup]) -> String {
    let doc = JsonList {
        schema_version: JSON_SCHEMA_VERSION,
        groups,
    };
    let mut s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report;
    use std::time::Duration;

    fn finished(id: &str, status: Status, finding: &str, fix: Option<&str>) -> Finished {
        let mut r = report(id, "t", status, finding);
        r.fix = fix.map(str::to_owned);
        Finished {
            report: r,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn one_check_is_not_one_checks() {
        let text = render_human(&[finished("a.b", Status::Ok, "fine", None)], false, None);
        assert!(
            text.ends_with("\n1 check: 1 ok, 0 warnings, 0 failed, 0 skipped\n"),
            "{text}"
        );
        let two = [
            finished("a.b", Status::Warn, "hm", Some("do it")),
            finished("a.c", Status::Ok, "fine", None),
        ];
        let text = render_human(&two, false, None);
        assert!(
            text.ends_with("\n2 checks: 1 ok, 1 warning, 0 failed, 0 skipped\n"),
            "{text}"
        );
    }

    #[test]
    fn with_a_width_every_line_fits_and_no_word_is_lost() {
        let long = "/tmp/.tmpAbCdEf/config/ov/credentials.toml has mode 0644; it holds secrets and must be readable by its owner only (0600)";
        let results = [
            finished(
                "config.credentials_mode",
                Status::Fail,
                long,
                Some("chmod 600 /tmp/.tmpAbCdEf/config/ov/credentials.toml"),
            ),
            finished("x", Status::Ok, "short", None),
        ];
        let fix_line = "fix: chmod 600 /tmp/.tmpAbCdEf/config/ov/credentials.toml";
        for width in [20, 40, 60, 80] {
            let text = render_human(&results, false, Some(width));
            // The fix is one line to copy, whatever the width.
            assert_eq!(
                text.lines().filter(|l| l.trim() == fix_line).count(),
                1,
                "{width}: fix broken in\n{text}"
            );
            for line in text.lines().filter(|l| l.trim() != fix_line) {
                assert!(
                    measure_text_width(line) <= width,
                    "{width}: {line:?} in\n{text}"
                );
            }
            let joined: String = text.split_whitespace().collect();
            let want: String = long.split_whitespace().collect();
            assert!(joined.contains(&want), "{width}: finding lost in\n{text}");
        }
    }

    #[test]
    fn a_fix_comment_wraps_as_comment_lines_below_the_whole_command() {
        let fix =
            "ov secrets gpg setup   # caches the passphrase and stores it in the Secret Service";
        let r = [finished(
            "gpg.keys.cached",
            Status::Warn,
            "not cached",
            Some(fix),
        )];
        let text = render_human(&r, false, Some(40));
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with("fix:"))
            .expect("a fix line");
        assert_eq!(lines[at], "    fix: ov secrets gpg setup", "{text}");
        let rest: Vec<&str> = lines[at + 1..]
            .iter()
            .take_while(|l| !l.is_empty())
            .map(|l| l.trim())
            .collect();
        assert!(rest.iter().all(|l| l.starts_with("# ")), "{text}");
        let joined: Vec<&str> = rest.iter().map(|l| &l[2..]).collect();
        assert_eq!(
            joined.join(" "),
            "caches the passphrase and stores it in the Secret Service"
        );
        assert!(text.lines().all(|l| measure_text_width(l) <= 40), "{text}");
        // Wide enough, or no width at all: command and comment on one line.
        for width in [None, Some(120)] {
            let text = render_human(&r, false, width);
            assert!(text.contains(&format!("fix: {fix}\n")), "{text}");
        }
    }

    #[test]
    fn without_a_width_nothing_wraps() {
        let long = "word ".repeat(40);
        let text = render_human(&[finished("a", Status::Ok, long.trim(), None)], false, None);
        assert_eq!(
            text.lines().next().unwrap(),
            format!("✓ a  {}", long.trim())
        );
    }

    #[test]
    fn wrap_breaks_at_spaces_and_inside_words_only_when_it_must() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn list_groups_checks_and_names_batch_groups() {
        let tasks = vec![
            Task::single("settings.parse", "settings parse", || {
                report("settings.parse", "t", Status::Ok, "")
            }),
            Task::batch("machine-key", "machine keys", Vec::new)
                .listing([("machine-key.a.b.file".to_owned(), "key for a/b".to_owned())]),
            Task::batch("keyring", "keyring backend checks", Vec::new),
        ];
        let groups = catalog(&tasks);
        let ids: Vec<_> = groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["settings", "machine-key", "keyring"]);
        assert_eq!(groups[1].checks[0].id, "machine-key.a.b.file");
        assert!(groups[0].checks_known && groups[1].checks_known && !groups[2].checks_known);
        let text = render_list_human(&groups, None);
        assert!(
            text.contains("\n  machine-key.a.b.file  key for a/b\n"),
            "{text}"
        );
        assert!(
            text.contains("keyring backend checks (its checks are named when it runs)"),
            "{text}"
        );
    }
}
