//! `ov init` — look at the machine, propose the backend a careful admin
//! would pick, and on confirmation (or `--yes`) set it up and move
//! plaintext entries into it.

use std::process::Command;

use clap::Args;

use crate::cli::{Engine, outln};
use crate::error::{EXIT_ERROR, OvError, Result};
use crate::onboard::{self, Plan};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Do it without asking (without a terminal, ov init only reports)
    #[arg(long, short = 'y')]
    yes: bool,
    /// The backend to use instead of the one ov proposes
    #[arg(long, value_name = "BACKEND", add = crate::cli::complete::backend())]
    backend: Option<String>,
}

pub fn run(a: InitArgs) -> Result<i32> {
    let engine = Engine::load()?;
    let survey = onboard::survey(&engine.store, a.backend.as_deref())?;
    outln!("This machine:");
    let width = survey
        .backends
        .iter()
        .map(|b| b.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    for b in &survey.backends {
        let mut state = onboard::state_text(&b.state);
        if let Some(n) = b.entries {
            state.push_str(&format!(
                ", {n} entr{} in plaintext",
                if n == 1 { "y" } else { "ies" }
            ));
        }
        outln!(
            "  {:width$}  {}\n  {:width$}  {state}",
            b.name,
            b.summary,
            ""
        );
    }
    match &survey.gpg_key {
        Some(k) => outln!(
            "  {:width$}  GnuPG, for .secrets files\n  {:width$}  secret key {k}",
            "gnupg",
            ""
        ),
        None => outln!(
            "  {:width$}  GnuPG, for .secrets files\n  {:width$}  no secret key (`ov secrets gpg setup` makes one)",
            "gnupg",
            ""
        ),
    }
    let (backend, steps) = match survey.plan {
        Plan::Stuck { why } => {
            return Err(OvError::new(format!(
                "no encrypted backend can be used or made here: {why}"
            ))
            .hint("ov doctor backends   # what each backend needs"));
        }
        Plan::Done { backend } => {
            outln!("\nov is set up: writes go to {backend}, and nothing is left in plaintext.");
            next_steps()?;
            return Ok(0);
        }
        Plan::Steps { backend, steps } => (backend, steps),
    };
    outln!("\nPlan: keep secrets in {backend}.");
    for s in &steps {
        outln!("  {s}");
    }
    if !a.yes {
        if !crate::prompt::stdin_is_tty() {
            let again = match &a.backend {
                Some(b) => format!("ov init --yes --backend {b}"),
                None => "ov init --yes".to_owned(),
            };
            outln!("\nNothing was changed. To do it: {again}   (or run the steps above)");
            return Ok(0);
        }
        if !crate::prompt::ask_yes_no("Do it?")? {
            outln!("Nothing was changed.");
            return Ok(0);
        }
    }
    drop(engine);
    let me = std::env::current_exe()
        .map_err(|e| OvError::new(format!("cannot find ov's own program: {e}")))?;
    for (i, step) in steps.iter().enumerate() {
        outln!("\n==> {step}");
        let args: Vec<&str> = step.split_whitespace().skip(1).collect();
        let mut cmd = Command::new(&me);
        cmd.args(&args);
        crate::harden::give_back_core_limit(&mut cmd);
        let status = cmd
            .status()
            .map_err(|e| OvError::new(format!("cannot run {step}: {e}")))?;
        if !status.success() {
            let left: Vec<&str> = steps[i + 1..].iter().map(String::as_str).collect();
            let mut e = OvError::new(format!("`{step}` failed (see above)"));
            e.exit_code = status.code().unwrap_or(EXIT_ERROR);
            e = e.hint(step.clone());
            for l in left {
                e = e.hint(format!("{l}   # then"));
            }
            return Err(e);
        }
    }
    outln!("\nDone: writes go to {backend}.");
    next_steps()?;
    Ok(0)
}

fn next_steps() -> Result<()> {
    outln!("Next:");
    outln!("  ov doctor                               # check the whole setup");
    outln!("  ov secrets set myapp/prod DATABASE_URL  # store a secret (asks for the value)");
    outln!("  ov run --app myapp --env prod --all -- CMD");
    Ok(())
}
