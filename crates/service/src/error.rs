//! Service errors and their one mapping to ttrpc status codes.

use ttrpc::Code;

/// What a Task RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Runtime(#[from] robust_runtime::RuntimeError),
    #[error(transparent)]
    Config(#[from] robust_config::ConfigError),
    #[error("{0}")]
    Other(String),
    /// The shim panicked while serving the request (it keeps serving).
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn poisoned(what: &str) -> Error {
        Error::Other(format!("{what} lock poisoned"))
    }

    /// The ttrpc code containerd turns into its errdefs error.
    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) | Error::Config(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Runtime(e) if e.is_timeout() => Code::DEADLINE_EXCEEDED,
            Error::Runtime(e) => match e.kind() {
                robust_runtime::ErrorKind::NotFound => Code::NOT_FOUND,
                _ => Code::UNKNOWN,
            },
            Error::Io(_) | Error::Other(_) => Code::UNKNOWN,
            Error::Internal(_) => Code::INTERNAL,
        }
    }
}

/// The message of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Run `f`; a panic in it is caught and returned as its message, so one
/// bad request or event cannot take a thread (or the daemon) down with it.
pub fn contain<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| panic_message(&*p))
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robust_reaper::ExitStatus;
    use robust_runtime::RuntimeError;

    #[test]
    fn a_panic_is_contained_and_its_message_kept() {
        let r: std::result::Result<(), String> = contain(|| panic!("bad {}", 7));
        assert_eq!(r, Err("bad 7".to_string()));
        let r2 = contain(|| std::panic::panic_any(3u8));
        assert_eq!(r2, Err("a panic without a message".to_string()));
        assert_eq!(contain(|| 5), Ok(5));
        assert_eq!(Error::Internal("x".into()).code(), Code::INTERNAL);
    }

    #[test]
    fn codes() {
        assert_eq!(Error::NotFound("x".into()).code(), Code::NOT_FOUND);
        let t = RuntimeError::Timeout {
            verb: "kill",
            id: "c".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(Error::from(t).code(), Code::DEADLINE_EXCEEDED);
        let nf = RuntimeError::Failed {
            verb: "state",
            id: "c".into(),
            status: ExitStatus::Code(1),
            message: "container \"c\" does not exist".into(),
        };
        assert_eq!(Error::from(nf).code(), Code::NOT_FOUND);
        let st: ttrpc::Error = Error::Unimplemented("checkpoint".into()).into();
        match st {
            ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.code(), Code::UNIMPLEMENTED);
                assert_eq!(s.message(), "checkpoint");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
