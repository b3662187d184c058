//! `ov secrets get S K [--raw] [--wait-unlock]`

use clap::Args;

use ov_plugin_api::{EntryRef, Secret};

use crate::cli::Engine;
use crate::error::Result;
use crate::store::Miss;

use super::*;

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    entry: EntryArgs,
    /// Print the stored bytes exactly, with no newline added: for values
    /// that are not UTF-8 text, or to write a key file (`> key.bin`)
    #[arg(long)]
    raw: bool,
    /// If the keyring is locked or its provider is not running yet, wait
    /// until someone unlocks or starts it
    #[arg(long)]
    wait_unlock: bool,
    /// How long --wait-unlock waits, in seconds
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300,
        requires = "wait_unlock"
    )]
    wait_timeout: u64,
}

pub(super) fn get(engine: &Engine, a: &GetArgs) -> Result<i32> {
    let entry = entry_of(&a.entry)?;
    let found = if a.raw {
        engine
            .store
            .get_bytes(&entry)?
            .map(|(bytes, _)| print_raw(bytes.expose()))
    } else {
        engine
            .store
            .get(&entry)?
            .map(|(value, _)| print_value(&value))
    };
    let miss = match found {
        Ok(printed) => {
            printed?;
            return Ok(0);
        }
        Err(miss) => miss,
    };
    if a.wait_unlock {
        return wait_and_get(engine, a, &entry, miss);
    }
    Err(not_found(&entry, &miss))
}

/// `get --wait-unlock` after a miss: wait on each backend that can wait
/// (locked ones first, then ones whose service is not up yet, such as a
/// keyring provider that is starting), and print the value once one has it.
fn wait_and_get(engine: &Engine, a: &GetArgs, entry: &EntryRef, mut miss: Miss) -> Result<i32> {
    let wait = engine.store.waits_for(&miss);
    if !wait.locked.is_empty() {
        eprintln!(
            "waiting up to {} s for {} to be unlocked…",
            a.wait_timeout,
            wait.locked.join(", ")
        );
    }
    for (name, why) in &wait.starting {
        eprintln!(
            "waiting up to {} s for {name} to come up ({why})…",
            a.wait_timeout
        );
    }
    let ms = a.wait_timeout.saturating_mul(1000);
    match engine
        .store
        .get_waiting(entry, &wait, ms, a.raw, &mut miss)?
    {
        Some(bytes) if a.raw => print_raw(bytes.expose())?,
        Some(bytes) => match std::str::from_utf8(bytes.expose()) {
            Ok(text) => print_value(&Secret::from(text))?,
            Err(_) => print_raw(bytes.expose())?,
        },
        None => return Err(not_found(entry, &miss)),
    }
    Ok(0)
}
