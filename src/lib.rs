//! `ov`: the engine behind the command line. `main.rs` only calls
//! [`cli::main`]; everything testable lives here.

// `src/doctor.rs` still says `ov_plugin_gpg` (the crate's name before it
// became `ov-gpg`); the alias goes when that file says `ov_gpg`.
extern crate ov_gpg as ov_plugin_gpg;

pub mod cli;
pub mod cmdline;
pub mod doctor;
pub mod dotenv;
pub mod env_backend;
pub mod error;
pub mod held;
pub mod host;
pub mod import;
pub mod keycache;
pub mod machine_key;
pub mod paths;
pub mod prompt;
pub mod run;
pub mod settings;
pub mod store;
pub mod trust;
pub mod unlock;
