//! `ov manifest validate` and `ov manifest list`: what the store holds for
//! each declared secret, never the values.

use clap::Args;
use serde::Serialize;

use crate::cli::{Engine, out, outln, print_json};
use crate::error::{EXIT_ERROR, OvError, Result};
use crate::manifest::resolve::{Status, status};
use crate::manifest::{Decl, Manifest, SHARED};

use super::{Tag, say};

#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The value's length in characters, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    chars: Option<usize>,
    required: bool,
    stacks: &'a [String],
    shared: bool,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
}

fn rows<'a>(engine: &Engine, decls: &[&'a Decl]) -> Result<Vec<(Row<'a>, Status)>> {
    decls
        .iter()
        .map(|d| {
            let (st, value) = status(&engine.store, d)?;
            let reason = match &st {
                Status::Invalid(why) | Status::Unknown(why, _) => Some(why.clone()),
                _ => None,
            };
            Ok((
                Row {
                    name: &d.name,
                    kind: d.kind.to_string(),
                    status: st.label(),
                    reason,
                    chars: value.map(|v| v.expose().chars().count()),
                    required: d.required,
                    stacks: &d.stacks,
                    shared: d.shared(),
                    key: d.entry.to_string(),
                    purpose: d.purpose.as_deref(),
                },
                st,
            ))
        })
        .collect()
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    valid: usize,
    missing: usize,
    placeholders: usize,
    manual: usize,
    invalid: usize,
    unknown: usize,
}

pub(super) fn validate(engine: &Engine, m: &Manifest, json: bool) -> Result<i32> {
    let decls: Vec<&Decl> = m.secrets.iter().collect();
    if !json {
        say(Tag::Info, "Validating secrets configuration...")?;
        outln!();
    }
    let rows = rows(engine, &decls)?;
    let mut counts = Counts::default();
    let mut failed = false;
    for ((row, st), d) in rows.iter().zip(&decls) {
        failed |= st.fails(d);
        match st {
            Status::Valid => counts.valid += 1,
            Status::Missing => counts.missing += 1,
            Status::Placeholder => counts.placeholders += 1,
            Status::Manual => counts.manual += 1,
            Status::Invalid(_) => counts.invalid += 1,
            Status::Unknown(..) => counts.unknown += 1,
        }
        if json {
            continue;
        }
        let optional = if d.required { "" } else { " (optional)" };
        let name = row.name;
        match st {
            Status::Valid => say(
                Tag::Success,
                &format!("{name}: Valid ({} chars)", row.chars.unwrap_or(0)),
            )?,
            Status::Missing if d.required => say(Tag::Error, &format!("{name}: Missing"))?,
            Status::Missing => say(Tag::Warning, &format!("{name}: Missing{optional}"))?,
            Status::Placeholder => say(
                if d.required { Tag::Error } else { Tag::Warning },
                &format!("{name}: Placeholder value{optional}"),
            )?,
            Status::Invalid(why) => say(
                if d.required { Tag::Error } else { Tag::Warning },
                &format!("{name}: Invalid, {why}{optional}"),
            )?,
            Status::Manual => say(
                Tag::Warning,
                &format!("{name}: Manual configuration required (empty){optional}"),
            )?,
            Status::Unknown(why, hints) => {
                say(Tag::Warning, &format!("{name}: Unknown, {why}"))?;
                for h in hints {
                    eprintln!("hint: {h}");
                }
            }
        }
    }
    if json {
        #[derive(Serialize)]
        struct Report<'a> {
            manifest: String,
            service: &'a str,
            ok: bool,
            summary: &'a Counts,
            secrets: Vec<&'a Row<'a>>,
        }
        print_json(&Report {
            manifest: m.path.display().to_string(),
            service: &m.service,
            ok: !failed,
            summary: &counts,
            secrets: rows.iter().map(|(r, _)| r).collect(),
        })?;
    } else {
        outln!();
        out!(
            "Summary: {} valid, {} missing, {} placeholders, {} manual",
            counts.valid,
            counts.missing,
            counts.placeholders,
            counts.manual
        );
        if counts.invalid > 0 {
            out!(", {} invalid", counts.invalid);
        }
        if counts.unknown > 0 {
            out!(", {} unknown", counts.unknown);
        }
        outln!();
        if failed {
            eprintln!(
                "hint: ov manifest generate   # the missing and placeholder ones that ov generates"
            );
        }
    }
    Ok(if failed { EXIT_ERROR } else { 0 })
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this stack's secrets (its own and the shared ones it uses), or `shared`
    #[arg(value_name = "STACK|shared")]
    stack: Option<String>,
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
}

const BANNER: &str = "\
╔════════════════════════════════════════════════════════════╗
║                    Secrets Overview                        ║
╚════════════════════════════════════════════════════════════╝";

pub(super) fn list(engine: &Engine, m: &Manifest, a: &ListArgs) -> Result<i32> {
    let stacks = m.stacks();
    if let Some(s) = &a.stack
        && s != SHARED
        && !stacks.contains(&s.as_str())
    {
        return Err(OvError::usage(format!(
            "no secret of {} is used by a stack {s:?}",
            m.path.display()
        ))
        .hint(format!(
            "ov manifest list {}   # the stacks are: {}",
            stacks.first().copied().unwrap_or(SHARED),
            stacks.join(", ")
        )));
    }
    let wanted = |d: &Decl| match a.stack.as_deref() {
        None => true,
        Some(SHARED) => d.shared(),
        Some(s) => d.stacks.iter().any(|x| x == s),
    };
    let decls: Vec<&Decl> = m.secrets.iter().filter(|d| wanted(d)).collect();
    let rows = rows(engine, &decls)?;
    if a.json {
        return print_json(&rows.iter().map(|(r, _)| r).collect::<Vec<_>>()).map(|()| 0);
    }
    // Shared secrets first, then each stack's own in the order stacks
    // first appear, then any that name no stack.
    let mut groups: Vec<(String, Vec<&Row>)> = Vec::new();
    let mut push = |title: String, row| match groups.iter_mut().find(|(t, _)| *t == title) {
        Some((_, rows)) => rows.push(row),
        None => groups.push((title, vec![row])),
    };
    let mut ordered: Vec<&(Row, Status)> = rows.iter().filter(|(r, _)| r.shared).collect();
    for s in &stacks {
        ordered.extend(
            rows.iter()
                .filter(|(r, _)| !r.shared && r.stacks.first().map(String::as_str) == Some(s)),
        );
    }
    ordered.extend(rows.iter().filter(|(r, _)| r.stacks.is_empty()));
    for (row, _) in ordered {
        let title = match row.stacks {
            [] => "━━━ NO STACK ━━━".to_owned(),
            [one] => format!("━━━ {} Stack ━━━", one.to_uppercase()),
            _ => "━━━ SHARED Secrets ━━━".to_owned(),
        };
        push(title, row);
    }
    outln!("{BANNER}");
    for (title, rows) in groups {
        outln!();
        outln!("{title}");
        for r in rows {
            let label = format!("[{}]", r.status.to_uppercase());
            outln!("  {:<40} {label}  ({})", r.name, r.kind);
        }
    }
    Ok(0)
}
