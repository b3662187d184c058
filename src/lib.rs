//! `ov`: the engine behind the command line. `main.rs` only calls
//! [`cli::main`]; everything testable lives here.

pub mod agent;
pub mod cli;
pub mod cmdline;
pub mod doctor;
pub mod dotenv;
pub mod env_backend;
pub mod error;
pub mod harden;
pub mod held;
pub mod host;
pub mod import;
pub mod inject;
pub mod keycache;
pub mod lifecycle;
pub mod machine_key;
pub mod manifest;
pub mod onboard;
pub mod paths;
pub mod podman;
pub mod prompt;
pub mod refs;
pub mod run;
pub mod settings;
pub mod store;
pub mod systemd_creds;
pub mod trust;
pub mod unlock;
