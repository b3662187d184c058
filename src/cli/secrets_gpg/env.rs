//! `ov secrets gpg env`: `export KEY='value'` lines for eval and direnv.

use std::path::Path;

use ov_gpg::Gpg;
use zeroize::Zeroizing;

use super::load;
use crate::dotenv;
use crate::error::Result;

pub(super) fn env(gpg: &Gpg, file: &Path) -> Result<i32> {
    let entries = load(gpg, file)?;
    let mut out = String::new();
    for (k, v) in &entries {
        out.push_str(&dotenv::export_line(k, v));
        out.push('\n');
    }
    let out = Zeroizing::new(out);
    crate::cli::out_bytes(out.as_bytes())?;
    Ok(0)
}
