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
//! other way, is not. The count read last is kept for the whole pod
//! ([`pod_count`]): the sandbox's cgroup goes with the sandbox's container,
//! which containerd may delete before a sibling's exit is handled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use robust_config::RuntimeKind;

use crate::container::Container;
use crate::Service;

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

/// The pod's shared OOM-kill count for a new container: an app container
/// of a runsc pod shares its sandbox container's (when this daemon serves
/// it); any other container has its own.
pub(crate) fn pod_counter(
    svc: &Service,
    sandbox_id: Option<&str>,
    kind: RuntimeKind,
    owns_sandbox: bool,
) -> Arc<AtomicU64> {
    if kind == RuntimeKind::Runsc && !owns_sandbox {
        if let Some(sb) = sandbox_id.and_then(|sid| svc.container(sid).ok()) {
            return sb.pod_oom_kills.clone();
        }
    }
    Arc::new(AtomicU64::new(0))
}

/// The OOM-kill count of `c`'s cgroup as just read (`read`), remembered for
/// the pod. When the read failed for an app container of a runsc pod, the
/// count last read by any container of the pod: the sandbox's cgroup goes
/// with the sandbox's container (containerd 2.1 deleted it while a sibling's
/// `runsc wait` still ran), and every container of the pod had the same
/// count to read.
pub(crate) fn pod_count(c: &Container, read: Option<u64>) -> Option<u64> {
    remember(c.kind, c.owns_sandbox, &c.pod_oom_kills, read)
}

fn remember(
    kind: RuntimeKind,
    owns_sandbox: bool,
    pod: &AtomicU64,
    read: Option<u64>,
) -> Option<u64> {
    if kind != RuntimeKind::Runsc {
        return read;
    }
    match read {
        Some(n) => {
            pod.fetch_max(n, Ordering::AcqRel);
            Some(n)
        }
        None if !owns_sandbox => Some(pod.load(Ordering::Acquire)),
        None => None,
    }
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

    /// A sibling that exits after the sandbox's cgroup is gone still sees the
    /// count its sandbox container read; a runc container's reads are its own.
    #[test]
    fn the_pods_count_outlives_the_sandbox_cgroup() {
        let pod = AtomicU64::new(0);
        // the sandbox's container reads 1 at its exit
        assert_eq!(remember(RuntimeKind::Runsc, true, &pod, Some(1)), Some(1));
        // a sibling reads after the cgroup went
        assert_eq!(remember(RuntimeKind::Runsc, false, &pod, None), Some(1));
        // a lower read (a stale file) never lowers it
        assert_eq!(remember(RuntimeKind::Runsc, false, &pod, Some(0)), Some(0));
        assert_eq!(pod.load(Ordering::Acquire), 1);
        // the sandbox's own container keeps "unreadable"
        assert_eq!(remember(RuntimeKind::Runsc, true, &pod, None), None);
        // runc: as read
        let own = AtomicU64::new(5);
        assert_eq!(remember(RuntimeKind::Runc, true, &own, None), None);
        assert_eq!(remember(RuntimeKind::Runc, false, &own, Some(2)), Some(2));
        assert_eq!(own.load(Ordering::Acquire), 5);
    }

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
