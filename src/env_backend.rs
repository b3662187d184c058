//! The environment as a read-only backend, first in the chain.
//!
//! Name rule: `OV_` + service + `_` + key, upper-cased, with every character
//! other than A–Z and 0–9 turned into `_`; a name that already starts with
//! `OV_` gets no second prefix. So `ov/vnc password` reads `OV_VNC_PASSWORD`
//! and `myapp/prod DATABASE_URL` reads `OV_MYAPP_PROD_DATABASE_URL`.
//! An empty variable counts as unset.

use ov_plugin_api::{Availability, Backend, BackendError, Context, Description, EntryRef, Secret};

#[derive(Debug, Default)]
pub struct EnvBackend;

/// The environment variable that overrides `service`/`key`.
pub fn variable_name(entry: &EntryRef) -> String {
    let upper: String = format!("{}_{}", entry.service, entry.key)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if upper.starts_with("OV_") {
        upper
    } else {
        format!("OV_{upper}")
    }
}

impl Backend for EnvBackend {
    fn describe(&self) -> Description {
        Description {
            name: "env".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "environment variables OV_<SERVICE>_<KEY> (read-only)".into(),
            priority: 0,
            writable: false,
            plaintext: false,
            needs_unlock: false,
            listable: false,
            waits: false,
            ..Description::default()
        }
    }

    fn probe(&self, _ctx: &Context) -> Availability {
        Availability::Available { location: None }
    }

    fn get(&self, _ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        Ok(std::env::var_os(variable_name(entry))
            .filter(|v| !v.is_empty())
            .map(|v| Secret::new(v.to_string_lossy().into_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_rule() {
        let n = |s: &str, k: &str| variable_name(&EntryRef::new(s, k));
        assert_eq!(n("ov/vnc", "password"), "OV_VNC_PASSWORD");
        assert_eq!(
            n("ov/secret", "WEBUI_ADMIN_PASSWORD"),
            "OV_SECRET_WEBUI_ADMIN_PASSWORD"
        );
        assert_eq!(
            n("myapp/prod", "DATABASE_URL"),
            "OV_MYAPP_PROD_DATABASE_URL"
        );
        assert_eq!(n("my-app", "api.key"), "OV_MY_APP_API_KEY");
    }
}
