//! `ov secrets ensure S K`

use crate::cli::Engine;
use crate::error::Result;
use crate::store::random_hex;

use super::*;

pub(super) fn ensure(engine: &Engine, a: &EntryArgs) -> Result<i32> {
    let entry = entry_of(a)?;
    // One lock across read-check-write: concurrent callers all print the
    // value the first one stored.
    let lock = engine.paths.ensure_lock();
    let (value, written) = ov_plugin_support::with_lock(&lock, || -> Result<_> {
        if let Ok((value, _)) = engine.store.get(&entry)? {
            return Ok((value, None));
        }
        let value = random_hex(32)?;
        let written = engine.store.set(&entry, &value)?;
        Ok((value, Some(written)))
    })?;
    if let Some(w) = written {
        report_written(engine, &entry, &w);
        resealed(engine, &entry.service)?;
    }
    print_value(&value)?;
    Ok(0)
}
