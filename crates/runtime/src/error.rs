//! Errors of runtime calls, and the one place their text is classified.

use std::time::Duration;

use robust_reaper::ExitStatus;

/// A failed call into the OCI runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime {verb} {id}: start {binary}: {source}")]
    Spawn {
        verb: &'static str,
        id: String,
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("runtime {verb} {id}: no answer within {after:?}; runtime process group killed")]
    Timeout {
        verb: &'static str,
        id: String,
        after: Duration,
    },
    #[error("runtime {verb} {id} failed ({status}): {}", message_or_empty(.message))]
    Failed {
        verb: &'static str,
        id: String,
        status: ExitStatus,
        message: String,
    },
    #[error("runtime {verb} {id}: unexpected output: {detail}")]
    BadOutput {
        verb: &'static str,
        id: String,
        detail: String,
    },
    #[error("runtime {verb} {id}: {context}: {source}")]
    Io {
        verb: &'static str,
        id: String,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn message_or_empty(m: &str) -> &str {
    if m.is_empty() {
        "the runtime printed nothing on stderr or in its log"
    } else {
        m
    }
}

/// What a runtime failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The container does not exist in the runtime (already deleted).
    NotFound,
    /// The container (or its process) is not running: nothing to signal.
    NotRunning,
    /// Anything else.
    Other,
}

impl RuntimeError {
    /// Classify a failure by the runtime's message (runc and runsc wording).
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Failed { message, .. } => classify(message),
            _ => ErrorKind::Other,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, RuntimeError::Timeout { .. })
    }
}

/// The single place where runtime messages are matched by text.
pub fn classify(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if m.contains("does not exist")
        || m.contains("container not found")
        || m.contains("no such container")
        || m.contains("not found") && (m.contains("container") || m.contains("sandbox"))
    {
        ErrorKind::NotFound
    } else if m.contains("not running")
        || m.contains("process already finished")
        || m.contains("container is stopped")
        || m.contains("cannot signal container in state")
        || m.contains("no such process")
    {
        ErrorKind::NotRunning
    } else {
        ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_runc_and_runsc_messages() {
        assert_eq!(
            classify("container \"abc\" does not exist"),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify("loading container: container not found"),
            ErrorKind::NotFound
        );
        assert_eq!(classify("container not running"), ErrorKind::NotRunning);
        assert_eq!(classify("process already finished"), ErrorKind::NotRunning);
        assert_eq!(
            classify("cannot signal container in state created"),
            ErrorKind::NotRunning
        );
        assert_eq!(classify("sandbox is not running"), ErrorKind::NotRunning);
        assert_eq!(classify("permission denied"), ErrorKind::Other);
    }

    #[test]
    fn failed_error_carries_the_whole_message() {
        let e = RuntimeError::Failed {
            verb: "create",
            id: "c1".into(),
            status: ExitStatus::Code(1),
            message: "exec: \"nope\": executable file not found in $PATH".into(),
        };
        let s = e.to_string();
        assert!(s.contains("create c1"), "{s}");
        assert!(s.contains("executable file not found"), "{s}");
        let e = RuntimeError::Failed {
            verb: "kill",
            id: "c1".into(),
            status: ExitStatus::Code(1),
            message: String::new(),
        };
        assert!(e.to_string().contains("printed nothing"));
    }
}
