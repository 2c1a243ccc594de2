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
        }
    }
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
