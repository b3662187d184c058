//! The trait every backend implements, built in or loaded.

use crate::{
    Availability, BackendError, CheckDecl, CheckReport, Context, CreateRequest, Created,
    Description, EntryList, EntryRef, PROTOCOL, Request, Response, Secret, SecretBytes,
};

/// A secret store. Backends never print and never read the terminal: they
/// return values, typed errors and check results.
pub trait Backend: Send + Sync {
    fn describe(&self) -> Description;

    /// Can this backend serve requests here and now? Cheap: no prompts.
    fn probe(&self, ctx: &Context) -> Availability;

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError>;

    /// [`Backend::get`] as the bytes the store holds. Stores of text need
    /// not override it; stores that may hold other bytes (the keyring) do.
    fn get_bytes(
        &self,
        ctx: &Context,
        entry: &EntryRef,
    ) -> Result<Option<SecretBytes>, BackendError> {
        self.get(ctx, entry).map(|v| v.map(SecretBytes::from))
    }

    fn set(&self, _ctx: &Context, _entry: &EntryRef, _value: &Secret) -> Result<(), BackendError> {
        Err(BackendError::unsupported(format!(
            "writing to the {} backend",
            self.describe().name
        )))
    }

    /// Remove an entry; `Ok(false)` when there was nothing to remove.
    fn delete(&self, _ctx: &Context, _entry: &EntryRef) -> Result<bool, BackendError> {
        Err(BackendError::unsupported(format!(
            "deleting from the {} backend",
            self.describe().name
        )))
    }

    /// Entries whose service is `service` or lies below it (`ov` matches
    /// `ov/vnc`), with notices saying what the listing could not see.
    fn list(&self, _ctx: &Context, _service: Option<&str>) -> Result<EntryList, BackendError> {
        Ok(EntryList::default())
    }

    /// Wait, without polling, until `entry` can be read from a store that
    /// was locked, and return it. `Ok(None)`: unlocked, and the entry is not
    /// there. A store still locked when `timeout_ms` runs out answers
    /// `locked`. Backends that cannot be unlocked by someone else say
    /// `unsupported`.
    fn get_when_unlocked(
        &self,
        _ctx: &Context,
        _entry: &EntryRef,
        _timeout_ms: u64,
    ) -> Result<Option<Secret>, BackendError> {
        Err(BackendError::unsupported(format!(
            "waiting for the {} backend to be unlocked",
            self.describe().name
        )))
    }

    /// Things the user should know before a write, such as a file format
    /// upgrade the write will make. Cheap, and never prompts.
    fn write_notices(&self, _ctx: &Context) -> Vec<String> {
        Vec::new()
    }

    /// The doctor checks this backend can run. A fixed list: no I/O, no
    /// look at the machine (`ov doctor --list` shows it as it is).
    fn declare_checks(&self) -> Vec<CheckDecl> {
        Vec::new()
    }

    /// Run the declared check `id`: its report, or several for a check
    /// that reports one line per thing it finds, or none when it does not
    /// apply here (a key file check with no key file set).
    fn run_check(&self, _ctx: &Context, _id: &str) -> Vec<CheckReport> {
        Vec::new()
    }

    /// What the unlock secret opens here, such as a database path: the
    /// engine caches the secret under it and names it in the prompt.
    /// `None` when there is nothing to unlock.
    fn unlock_target(&self, _ctx: &Context) -> Option<String> {
        None
    }

    /// Open the store with `ctx.unlock` and close it: `wrong_password`
    /// when the secret does not open it, `locked` when one is needed.
    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        self.list(ctx, None).map(|_| ())
    }

    /// Make a new store (`ov secrets init`), for backends that say
    /// [`Description::creates`].
    fn create(&self, _ctx: &Context, _request: &CreateRequest) -> Result<Created, BackendError> {
        Err(BackendError::unsupported(format!(
            "creating a {} store",
            self.describe().name
        )))
    }

    /// Forget what the backend keeps to open its store without the secret
    /// (`ov secrets lock`); what it forgot, as sentences.
    fn lock(&self, _ctx: &Context) -> Vec<String> {
        Vec::new()
    }
}

/// Does `service` equal `prefix` or lie below it in the `/` hierarchy?
pub fn service_matches(service: &str, prefix: Option<&str>) -> bool {
    match prefix.map(|p| p.trim_end_matches('/')) {
        None | Some("") => true,
        Some(p) => {
            service == p
                || (service.starts_with(p) && service.as_bytes().get(p.len()) == Some(&b'/'))
        }
    }
}

/// Answer one request with a backend: the plugin side of the protocol.
pub fn dispatch(backend: &dyn Backend, request: Request<'_>) -> Response {
    fn answer<T>(result: Result<T, BackendError>, ok: impl FnOnce(T) -> Response) -> Response {
        match result {
            Ok(v) => ok(v),
            Err(e) => Response::Error(e),
        }
    }
    match request {
        Request::Hello { .. } => Response::Hello(PROTOCOL),
        Request::Describe => Response::Description(Box::new(backend.describe())),
        Request::Probe { ctx } => Response::Availability(backend.probe(&ctx)),
        Request::Get { ctx, entry } => answer(backend.get(&ctx, &entry), Response::Value),
        Request::GetBytes { ctx, entry } => {
            answer(backend.get_bytes(&ctx, &entry), Response::Bytes)
        }
        Request::Set { ctx, entry, value } => {
            answer(backend.set(&ctx, &entry, &value), |()| Response::Done)
        }
        Request::Delete { ctx, entry } => answer(backend.delete(&ctx, &entry), Response::Deleted),
        Request::List { ctx, service } => {
            answer(backend.list(&ctx, service.as_deref()), Response::Entries)
        }
        Request::DeclareChecks => Response::CheckList(backend.declare_checks()),
        Request::RunCheck { ctx, id } => Response::Checks(backend.run_check(&ctx, &id)),
        Request::WriteNotices { ctx } => Response::Notices(backend.write_notices(&ctx)),
        Request::GetWhenUnlocked {
            ctx,
            entry,
            timeout_ms,
        } => answer(
            backend.get_when_unlocked(&ctx, &entry, timeout_ms),
            Response::Value,
        ),
        Request::UnlockTarget { ctx } => Response::Target(backend.unlock_target(&ctx)),
        Request::VerifyUnlock { ctx } => answer(backend.verify_unlock(&ctx), |()| Response::Done),
        Request::Create { ctx, request } => answer(backend.create(&ctx, &request), |c| {
            Response::Created(Box::new(c))
        }),
        Request::Lock { ctx } => Response::Notices(backend.lock(&ctx)),
        Request::Unsupported => Response::Error(BackendError::unsupported("this request kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::service_matches;

    #[test]
    fn service_prefix_follows_path_segments() {
        assert!(service_matches("ov/vnc", None));
        assert!(service_matches("ov/vnc", Some("ov")));
        assert!(service_matches("ov/vnc", Some("ov/")));
        assert!(service_matches("ov/vnc", Some("ov/vnc")));
        assert!(!service_matches("ovx/vnc", Some("ov")));
        assert!(!service_matches("ov", Some("ov/vnc")));
    }
}
