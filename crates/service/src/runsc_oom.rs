//! runsc: OOM kills in a gVisor pod, as far as they can be known.
//!
//! What gVisor does here (docs/gvisor.md, "Memory limits and OOM"):
//! - An app container's own memory limit is enforced by nobody. runsc gives
//!   its host cgroup no resources (runsc/container/container.go,
//!   `setupCgroupForSubcontainer`: "subcontainer cgroups on the host have no
//!   effect on them", installed with empty `LinuxResources`), and the
//!   sentry's memory cgroup controller only shows static numbers.
//! - It cannot be attributed either: `runsc events --stats` splits the
//!   sandbox's memory equally among the app containers
//!   (runsc/boot/events.go, `(*containerManager).Event`, "TODO: Proper
//!   per-container accounting").
//! - The limit that bites is the pod's host cgroup (kubelet's pod cgroup,
//!   the parent of the sandbox's). Every container's memory is in the
//!   sandbox's one memory file, so the kernel's OOM kill lands on the
//!   `runsc-sandbox` or one of its ptrace stubs, and in every OOM measured
//!   here the whole sandbox ended: every container still running was
//!   killed by that OOM kill.
//!
//! So a container of a runsc pod that exits with 137 (SIGKILL, or the
//! sandbox gone under it) after the sandbox's cgroup counted an OOM kill
//! since the container was created is reported OOM-killed: TaskOOM, then
//! its TaskExit. A container that had already exited, or that exits any
//! other way, is not.

use robust_config::RuntimeKind;

use crate::container::Container;

/// The exit status of a process killed by SIGKILL (128 + 9).
const KILLED: u32 = 137;

/// Whether the init's exit with `code` is to be preceded by a TaskOOM when
/// its cgroup counted an OOM kill since the last one published
/// (`Service::publish_oom`). A runc container and the sandbox's own
/// container have a cgroup of their own (the sandbox's); an app container of
/// a runsc pod shares the sandbox's, whose OOM kill ended it only if it was
/// killed.
pub(crate) fn oom_check_at_exit(c: &Container, code: u32) -> bool {
    looks_for_oom(c.kind, c.owns_sandbox, code)
}

fn looks_for_oom(kind: RuntimeKind, owns_sandbox: bool, code: u32) -> bool {
    match kind {
        RuntimeKind::Runc => true,
        RuntimeKind::Runsc => owns_sandbox || code == KILLED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_killed_app_container_of_a_runsc_pod_looks_for_an_oom() {
        // (kind, owns the sandbox, exit code) -> looks at the OOM count
        for (kind, owns, code, want) in [
            (RuntimeKind::Runc, true, 0, true),
            (RuntimeKind::Runc, false, 1, true),
            (RuntimeKind::Runsc, true, 0, true),
            (RuntimeKind::Runsc, false, 137, true),
            (RuntimeKind::Runsc, false, 0, false),
            (RuntimeKind::Runsc, false, 143, false),
        ] {
            assert_eq!(
                looks_for_oom(kind, owns, code),
                want,
                "{kind:?} owns={owns} code={code}"
            );
        }
    }
}
