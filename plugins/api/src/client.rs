//! The host side of the protocol: a [`Backend`] made of a [`Handler`], the
//! one `handle(Request) -> Response` interface both kinds of backend offer.
//!
//! A built-in backend is a [`Linked`] handler (the trait called in process,
//! behind a panic guard); a loaded plugin is a handler that sends the same
//! messages through its library. [`Client`] turns typed calls into requests
//! and answers back into values once, for both, so a new request is a
//! [`Request`] variant, a trait method, its [`dispatch`] arm and its
//! [`Client`] method, all in this crate.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::{
    Availability, Backend, BackendError, CheckDecl, CheckReport, Context, CreateRequest, Created,
    Description, EntryList, EntryRef, ErrorKind, Request, Response, Secret, SecretBytes, Status,
    dispatch,
};

/// Something that answers protocol requests.
pub trait Handler: Send + Sync {
    fn handle(&self, request: Request<'_>) -> Response;
}

/// A backend compiled into the host, answered in process. A panic in it
/// becomes an `internal` error, as one in a loaded plugin does.
#[derive(Debug)]
pub struct Linked<B>(pub B);

impl<B: Backend> Handler for Linked<B> {
    fn handle(&self, request: Request<'_>) -> Response {
        catch_unwind(AssertUnwindSafe(|| dispatch(&self.0, request))).unwrap_or_else(|_| {
            let name = catch_unwind(AssertUnwindSafe(|| self.0.describe().name))
                .unwrap_or_else(|_| "built-in".into());
            Response::Error(BackendError::of(
                ErrorKind::Internal,
                format!("the {name} backend panicked (a bug in ov)"),
            ))
        })
    }
}

/// A backend spoken to through a [`Handler`], its description asked once.
#[derive(Debug)]
pub struct Client<H> {
    handler: H,
    desc: Description,
}

impl<H: Handler> Client<H> {
    /// A client with a description already known (from the load handshake).
    pub fn new(handler: H, desc: Description) -> Self {
        Client { handler, desc }
    }

    /// Send a request; the backend's error, or an `internal` one for an
    /// answer of the wrong kind.
    fn ask<T>(
        &self,
        request: Request<'_>,
        pick: impl FnOnce(Response) -> Result<T, Response>,
    ) -> Result<T, BackendError> {
        match self.handler.handle(request) {
            Response::Error(e) => Err(e),
            answer => pick(answer).map_err(|other| unexpected(&self.desc.name, &other)),
        }
    }
}

fn unexpected(name: &str, answer: &Response) -> BackendError {
    BackendError::of(
        ErrorKind::Internal,
        format!("plugin {name} gave an unexpected answer: {answer:?}"),
    )
}

impl<H: Handler> Backend for Client<H> {
    fn describe(&self) -> Description {
        self.desc.clone()
    }

    fn probe(&self, ctx: &Context) -> Availability {
        let req = Request::Probe {
            ctx: Cow::Borrowed(ctx),
        };
        self.ask(req, |r| match r {
            Response::Availability(a) => Ok(a),
            other => Err(other),
        })
        .unwrap_or_else(|e| Availability::Unavailable {
            reason: e.message,
            transient: e.transient,
        })
    }

    fn get(&self, ctx: &Context, entry: &EntryRef) -> Result<Option<Secret>, BackendError> {
        let req = Request::Get {
            ctx: Cow::Borrowed(ctx),
            entry: Cow::Borrowed(entry),
        };
        self.ask(req, |r| match r {
            Response::Value(v) => Ok(v),
            other => Err(other),
        })
    }

    fn get_bytes(
        &self,
        ctx: &Context,
        entry: &EntryRef,
    ) -> Result<Option<SecretBytes>, BackendError> {
        let req = Request::GetBytes {
            ctx: Cow::Borrowed(ctx),
            entry: Cow::Borrowed(entry),
        };
        match self.ask(req, |r| match r {
            Response::Bytes(v) => Ok(v),
            other => Err(other),
        }) {
            // A plugin that does not know the request: its values are text.
            Err(e) if e.kind == ErrorKind::Unsupported => {
                self.get(ctx, entry).map(|v| v.map(SecretBytes::from))
            }
            other => other,
        }
    }

    fn set(&self, ctx: &Context, entry: &EntryRef, value: &Secret) -> Result<(), BackendError> {
        let req = Request::Set {
            ctx: Cow::Borrowed(ctx),
            entry: Cow::Borrowed(entry),
            value: Cow::Borrowed(value),
        };
        self.ask(req, |r| match r {
            Response::Done => Ok(()),
            other => Err(other),
        })
    }

    fn delete(&self, ctx: &Context, entry: &EntryRef) -> Result<bool, BackendError> {
        let req = Request::Delete {
            ctx: Cow::Borrowed(ctx),
            entry: Cow::Borrowed(entry),
        };
        self.ask(req, |r| match r {
            Response::Deleted(d) => Ok(d),
            other => Err(other),
        })
    }

    fn list(&self, ctx: &Context, service: Option<&str>) -> Result<EntryList, BackendError> {
        let req = Request::List {
            ctx: Cow::Borrowed(ctx),
            service: service.map(str::to_owned),
        };
        self.ask(req, |r| match r {
            Response::Entries(e) => Ok(e),
            other => Err(other),
        })
    }

    fn get_when_unlocked(
        &self,
        ctx: &Context,
        entry: &EntryRef,
        timeout_ms: u64,
    ) -> Result<Option<Secret>, BackendError> {
        let req = Request::GetWhenUnlocked {
            ctx: Cow::Borrowed(ctx),
            entry: Cow::Borrowed(entry),
            timeout_ms,
        };
        self.ask(req, |r| match r {
            Response::Value(v) => Ok(v),
            other => Err(other),
        })
    }

    /// A backend that cannot say has nothing to say.
    fn write_notices(&self, ctx: &Context) -> Vec<String> {
        let req = Request::WriteNotices {
            ctx: Cow::Borrowed(ctx),
        };
        self.ask(req, |r| match r {
            Response::Notices(n) => Ok(n),
            other => Err(other),
        })
        .unwrap_or_default()
    }

    /// A backend that cannot declare its checks has none to run.
    fn declare_checks(&self) -> Vec<CheckDecl> {
        self.ask(Request::DeclareChecks, |r| match r {
            Response::CheckList(c) => Ok(c),
            other => Err(other),
        })
        .unwrap_or_default()
    }

    /// A check that could not be run fails, saying why (its title is left
    /// for the caller, who has the declaration).
    fn run_check(&self, ctx: &Context, id: &str) -> Vec<CheckReport> {
        let req = Request::RunCheck {
            ctx: Cow::Borrowed(ctx),
            id: id.to_owned(),
        };
        self.ask(req, |r| match r {
            Response::Checks(c) => Ok(c),
            other => Err(other),
        })
        .unwrap_or_else(|e| {
            vec![CheckReport {
                id: id.to_owned(),
                title: String::new(),
                status: Status::Fail,
                finding: e.message,
                fix: e.hints.into_iter().next(),
                auto_fix: None,
                depends_on: Vec::new(),
            }]
        })
    }

    /// A backend that cannot say has nothing to unlock.
    fn unlock_target(&self, ctx: &Context) -> Option<String> {
        let req = Request::UnlockTarget {
            ctx: Cow::Borrowed(ctx),
        };
        self.ask(req, |r| match r {
            Response::Target(t) => Ok(t),
            other => Err(other),
        })
        .ok()
        .flatten()
    }

    fn verify_unlock(&self, ctx: &Context) -> Result<(), BackendError> {
        let req = Request::VerifyUnlock {
            ctx: Cow::Borrowed(ctx),
        };
        self.ask(req, |r| match r {
            Response::Done => Ok(()),
            other => Err(other),
        })
    }

    fn create(&self, ctx: &Context, request: &CreateRequest) -> Result<Created, BackendError> {
        let req = Request::Create {
            ctx: Cow::Borrowed(ctx),
            request: Cow::Borrowed(request),
        };
        self.ask(req, |r| match r {
            Response::Created(c) => Ok(*c),
            other => Err(other),
        })
    }

    /// A backend that cannot say kept nothing to forget.
    fn lock(&self, ctx: &Context) -> Vec<String> {
        let req = Request::Lock {
            ctx: Cow::Borrowed(ctx),
        };
        self.ask(req, |r| match r {
            Response::Notices(n) => Ok(n),
            other => Err(other),
        })
        .unwrap_or_default()
    }
}
