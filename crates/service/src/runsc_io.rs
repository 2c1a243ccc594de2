//! runsc: the stdio of an app container of a pod is the stdio of the
//! `runsc start` call that starts it, not of `runsc create`
//! (runsc/container/container.go, `(*Container).Start`: a sub-container gets
//! `os.Stdin, os.Stdout, os.Stderr` of the start; its create uses none).
//! The sandbox's own container (and a container of its own) gets the stdio
//! of `runsc create`, which starts the sandbox process with it, as runc does.

use robust_config::RuntimeKind;

use crate::container::Container;

/// Whether the container's stdio goes to its start rather than its create.
pub(crate) fn stdio_at_start(kind: RuntimeKind, owns_sandbox: bool) -> bool {
    kind == RuntimeKind::Runsc && !owns_sandbox
}

/// Start the container's init: with the stdio kept for its start, if any.
pub(crate) fn start_init(c: &Container) -> Result<(), robust_runtime::RuntimeError> {
    let kept = c
        .init
        .io
        .lock()
        .ok()
        .and_then(|io| io.as_ref().and_then(|io| io.take_for_start()));
    match kept {
        Some(stdio) => c.runc.start_with_stdio(&c.id, stdio),
        None => c.runc.start(&c.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_runsc_app_container_takes_its_stdio_at_start() {
        assert!(stdio_at_start(RuntimeKind::Runsc, false));
        assert!(!stdio_at_start(RuntimeKind::Runsc, true));
        assert!(!stdio_at_start(RuntimeKind::Runc, false));
        assert!(!stdio_at_start(RuntimeKind::Runc, true));
    }
}
