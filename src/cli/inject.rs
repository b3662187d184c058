//! `ov inject` — render a template's `{{ ov://SERVICE/KEY }}` placeholders.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;

use crate::cli::{Engine, output_error};
use crate::error::{OvError, Result};
use crate::inject;
use crate::refs;

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The template (default: stdin)
    #[arg(short = 'i', long = "in-file", value_name = "TEMPLATE")]
    input: Option<PathBuf>,
    /// Write here (mode 0600, atomically) instead of stdout
    #[arg(short = 'o', long = "out-file", value_name = "OUT")]
    output: Option<PathBuf>,
    /// Replace OUT even if ov did not write it (or it changed since)
    #[arg(long, requires = "output")]
    force: bool,
}

pub fn run(a: InjectArgs) -> Result<i32> {
    let (name, text) = match &a.input {
        Some(p) => {
            let bytes = ov_plugin_support::read_regular(p).map_err(|e| {
                OvError::new(format!("cannot read {}: {e}", p.display()))
                    .hint(format!("ls -l {}", ov_plugin_support::shell_quote(p)))
            })?;
            (p.display().to_string(), bytes)
        }
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| OvError::new(format!("cannot read the template from stdin: {e}")))?;
            ("stdin".to_owned(), bytes)
        }
    };
    let text =
        String::from_utf8(text).map_err(|_| OvError::new(format!("{name} is not UTF-8 text")))?;
    let found = inject::scan(&text, &name)?;
    let engine = Engine::load()?;
    if let Some(out) = &a.output {
        let q = |p: &std::path::Path| ov_plugin_support::shell_quote(p);
        let input = a
            .input
            .as_deref()
            .map(|i| format!(" -i {}", q(i)))
            .unwrap_or_default();
        inject::refuse_overwrite(&engine.paths, out, a.force, &format!("ov inject{input}"))?;
    }
    let resolver = refs::Resolver::new(&engine.store, &engine.paths);
    let mut values = Vec::new();
    let mut misses = Vec::new();
    for p in &found {
        match resolver.resolve(&p.reference)? {
            Ok((v, _)) => values.push(v),
            Err(u) => misses.push((format!("{name}:{}", p.line), u)),
        }
    }
    if !misses.is_empty() {
        return Err(refs::unresolved_error(&misses, "nothing was written"));
    }
    let shown: Vec<&str> = values.iter().map(|v| v.expose()).collect();
    let rendered = inject::render(&text, &found, &shown);
    match &a.output {
        Some(out) => {
            inject::write(&engine.paths, out, rendered.as_bytes())?;
            eprintln!(
                "wrote {} ({} reference{})",
                out.display(),
                found.len(),
                if found.len() == 1 { "" } else { "s" }
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(rendered.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(output_error)?;
        }
    }
    Ok(0)
}
