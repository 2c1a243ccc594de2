//! A container: its bundle, its runtime, its init and its execs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use robust_config::Config;
use robust_runtime::{ContainerRuntime, ExitSource, Placement, Subject};

use crate::error::{Error, Result};
use crate::process::Process;

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub config: Config,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// The rootfs we mounted (and so must unmount), if any.
    pub rootfs: Option<PathBuf>,
    /// The init's cgroup, found at create: still usable after the init is
    /// gone, to kill what is left in it.
    pub cgroup: Option<robust_cgroups::Cgroup>,
    /// What the shim saw at create: the init (pid, start time) and, when it
    /// was the container's alone, its cgroup. Every kill through the
    /// cgroup is checked against it (`robust_cleanup::owner`).
    pub owner: robust_cleanup::owner::OwnerRecord,
    /// The container has a pid namespace of its own (its spec asks for a
    /// new one): when its init dies the kernel ends the rest.
    pub own_pid_ns: bool,
    /// Where its runtime placed it: with a host pid and cgroup of its own,
    /// or inside its pod's sandbox.
    pub placement: Placement,
    /// How its init's exit is learned.
    pub exit_source: ExitSource,
    /// The pod's sandbox id its spec names, if any.
    pub pod_sandbox: Option<String>,
    /// The highest OOM-kill count read from the cgroup, shared by the
    /// containers of a pod sandbox (with the sandbox's container, when this
    /// daemon runs it), for when that cgroup is gone ([`Container::oom_count`]).
    pub pod_oom_kills: Arc<AtomicU64>,
}

/// The exit status of a process killed by SIGKILL (128 + 9).
const KILLED: u32 = 137;

impl Container {
    /// The init (empty exec id) or the named exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .map_err(|_| Error::poisoned("execs"))?
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(format!("exec {exec_id} of container {} not found", self.id))
            })
    }

    /// Execs that were started and have not exited yet.
    pub fn live_execs(&self) -> Vec<Arc<Process>> {
        self.execs
            .lock()
            .map(|m| m.values().filter(|p| p.is_live()).cloned().collect())
            .unwrap_or_default()
    }

    pub fn pid_file(&self, exec_id: &str) -> PathBuf {
        if exec_id.is_empty() {
            self.bundle.join("init.pid")
        } else {
            self.bundle.join(format!("{exec_id}.pid"))
        }
    }

    /// What the runtime's hooks need to know of it.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            id: &self.id,
            bundle: &self.bundle,
            placement: self.placement,
            pod_sandbox: self.pod_sandbox.as_deref(),
            init_pid: self.init.pid(),
        }
    }

    /// The cgroup's OOM-kill count now, remembered for the pod. When it
    /// cannot be read for a container of a pod sandbox, the count any
    /// container of the pod read last: the sandbox's cgroup goes with the
    /// sandbox's container, which containerd may delete before a sibling's
    /// exit is handled (containerd 2.1), and every container of the pod had
    /// the same count to read.
    pub fn oom_count(&self) -> Option<u64> {
        match self.cgroup.as_ref().and_then(|cg| cg.oom_kill_count()) {
            Some(n) => {
                self.pod_oom_kills.fetch_max(n, Ordering::AcqRel);
                Some(n)
            }
            None if !self.placement.is_own() => Some(self.pod_oom_kills.load(Ordering::Acquire)),
            None => None,
        }
    }

    /// The OOM-kill count an init exit with `code` is checked against
    /// (`order::init_exit`): a container with a cgroup of its own always;
    /// a container of a pod sandbox shares the sandbox's cgroup, whose OOM
    /// kill ended it only if it was killed (the kernel's OOM kill lands on
    /// the sandbox, and every container still running dies with it).
    pub fn oom_count_at_exit(&self, code: u32) -> Option<u64> {
        if self.placement.is_own() || code == KILLED {
            self.oom_count()
        } else {
            None
        }
    }
}
