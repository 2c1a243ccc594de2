//! The seam between the shim and a runtime family: [`ContainerRuntime`].
//!
//! The service and the cleanup drive every container through this trait and
//! never ask which family it is. What runc and runsc do differently (how an
//! exit is learned, what a `kill --all` reaches, what a delete leaves behind,
//! where statistics come from) is answered by the family's own
//! implementation (`crate::runc::Runc`, `crate::runsc::Runsc`), on top of
//! the shared CLI driver (`crate::cli::Cli`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use robust_reaper::ExitStatus;

use crate::{ContainerState, CreateOpts, ExecOpts, RuntimeError, RuntimeStats, Stdio};

/// Where a container's init runs, as its family places it. Decided once,
/// at create, from what the container's spec says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The init is the container's own host process, in a cgroup that may
    /// be the container's own.
    Own,
    /// The container runs inside its pod's sandbox: its host pid and its
    /// cgroup are the sandbox's, shared by every container of the pod. The
    /// shim never kills that pid for it, never watches that cgroup for its
    /// OOMs and never claims the cgroup as the container's.
    PodSandbox,
}

impl Placement {
    /// The container's host pid and cgroup are its own, not a pod's.
    pub fn is_own(self) -> bool {
        self == Placement::Own
    }
}

/// How the shim learns that a container's init exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitSource {
    /// The init's host pid is reaped by the shim and routed by pid.
    pub reaped: bool,
    /// [`ContainerRuntime::wait_exit`] is started once the container runs.
    pub waited: bool,
}

/// A change a family makes to a container's OCI spec before its create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecEdit {
    /// Drop the `linux.namespaces` entry of type `kind` whose `path` is
    /// `path`: the container then gets the runtime's default for it.
    DropNamespace {
        kind: &'static str,
        path: String,
        /// Why, for the log line.
        why: &'static str,
    },
}

/// What the family's hooks need to know of one container.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub placement: Placement,
    /// The pod's sandbox id its spec names, if any.
    pub pod_sandbox: Option<&'a str>,
    /// The init's host pid as the shim knows it (0 when unknown).
    pub init_pid: i32,
}

/// One runtime family driving containers: the verbs, each under its
/// deadline, and the answers the shim needs so that it never has to ask
/// which family it drives.
pub trait ContainerRuntime: Send + Sync {
    /// The family's name (`runc`, `runsc`), for logs and messages.
    fn family(&self) -> &'static str;

    /// The runtime's state root (`--root`, namespace included).
    fn root(&self) -> &Path;

    // ---- the verbs ------------------------------------------------------

    fn create(&self, id: &str, opts: CreateOpts<'_>) -> Result<(), RuntimeError>;
    /// Start the container; `stdio`: its stdio, when the family takes it
    /// at start ([`ContainerRuntime::stdio_at_start`]).
    fn start(&self, id: &str, stdio: Option<Stdio>) -> Result<(), RuntimeError>;
    /// Start a process in the container (`exec --detach`); its pid file
    /// names the host process whose exit is the exec's.
    fn exec(&self, id: &str, opts: ExecOpts<'_>) -> Result<(), RuntimeError>;
    /// `signal` to the init, and with `all` to every process the runtime
    /// knows of the container.
    fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError>;
    /// Delete the container from the runtime (callers go through the
    /// shared policy, `crate::delete`).
    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError>;
    fn state(&self, id: &str) -> Result<ContainerState, RuntimeError>;
    /// Host pids of the container's processes.
    fn ps(&self, id: &str) -> Result<Vec<i32>, RuntimeError>;
    /// Apply OCI LinuxResources (JSON).
    fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), RuntimeError>;
    fn pause(&self, id: &str) -> Result<(), RuntimeError>;
    fn resume(&self, id: &str) -> Result<(), RuntimeError>;

    /// The container's statistics as the runtime reports them itself;
    /// `None` when the family has none of its own and the init's cgroup
    /// tells (runc).
    fn stats(&self, _id: &str) -> Option<Result<RuntimeStats, RuntimeError>> {
        None
    }

    // ---- how the family places and ends a container ----------------------

    /// Where a container runs. `pod_app`: its spec says it is an app
    /// container of a pod (`Some(true)`), the pod's sandbox or a container
    /// of its own (`Some(false)`), or the spec could not be read (`None`).
    fn placement(&self, _pod_app: Option<bool>) -> Placement {
        Placement::Own
    }

    /// How the init's exit is learned.
    fn exit_source(&self, _placement: Placement) -> ExitSource {
        ExitSource {
            reaped: true,
            waited: false,
        }
    }

    /// Block until the container exits and return its status, when
    /// [`ExitSource::waited`]. `known` says the shim already recorded the
    /// exit: then this gives up (`None`) instead of waiting again.
    fn wait_exit(&self, _id: &str, _known: &dyn Fn() -> bool) -> Option<ExitStatus> {
        None
    }

    /// The runtime keeps every process of a container inside its own
    /// sandbox: a `kill --all` reaches exactly them, and nothing of the
    /// container is left on the host when its init exits. Otherwise (runc)
    /// the shim signals the rest itself, through a proven cgroup only.
    fn contains_processes(&self) -> bool {
        false
    }

    /// The container's stdio goes to its start, not its create (runsc hands
    /// an app container of a pod the stdio of `runsc start`; its create uses
    /// none).
    fn stdio_at_start(&self, _placement: Placement) -> bool {
        false
    }

    /// The file (in the bundle) where the family writes an exec's pid
    /// inside its sandbox, when the host process its pid file names is only
    /// the exec's waiter (runsc's `runsc exec`); `None` when that host
    /// process is the exec itself.
    fn exec_pid_inside(&self, _exec_id: &str) -> Option<String> {
        None
    }

    /// `signal` to the process `pid_inside` of the container's sandbox (an
    /// exec's pid as [`ContainerRuntime::exec_pid_inside`] gave it); `None`
    /// when the family has no such call (the shim signals the host pid).
    fn signal_inside(
        &self,
        _id: &str,
        _pid_inside: i32,
        _signal: u32,
    ) -> Option<Result<(), RuntimeError>> {
        None
    }

    /// Changes to the container's spec before its create. `sandbox_pid`:
    /// the host pid of the pod's sandbox when this daemon runs it, else 0.
    fn spec_edits(&self, _placement: Placement, _sandbox_pid: i32) -> Vec<SpecEdit> {
        Vec::new()
    }

    /// Whether the `holders` of the container's busy rootfs keep it for as
    /// long as they live and must not be ended for it (a pod's sandbox
    /// holding an app container's rootfs): the unmount then detaches at
    /// once instead of retrying.
    fn rootfs_held_for_life(&self, _c: &Subject<'_>, _holders: &[(i32, String)]) -> bool {
        false
    }

    /// After the runtime's delete (`deleted`: it succeeded or the container
    /// was already gone): remove what the family leaves behind it.
    fn after_delete(&self, _id: &str, _bundle: &Path, _deleted: bool) {}

    /// What the family leaves of a container whose shim died, for the
    /// dead-shim cleanup.
    fn leftovers(&self) -> &dyn Leftovers;
}

/// The runtime's own record of a container, which the dead-shim cleanup
/// may confirm an init pid with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateRecord {
    /// The bundle the runtime recorded.
    pub bundle: Option<PathBuf>,
    pub init_pid: i32,
    /// The init's start time (clock ticks since boot), when recorded.
    pub init_start: Option<u64>,
}

/// What a family leaves of a container when its shim died, and how the
/// dead-shim cleanup (`<shim> delete`, `sweep`) ends it, without running
/// anything but the runtime's own delete.
pub trait Leftovers {
    /// The runtime still holds state of the container under its root.
    fn has_state(&self, id: &str) -> bool;

    /// Where that state is, for messages (`runtime state <where>`).
    fn describe_state(&self, id: &str) -> String;

    /// The runtime's own record of the container, when it keeps one the
    /// cleanup can read (and may trust to confirm an init pid).
    fn state_record(&self, _id: &str) -> Option<StateRecord> {
        None
    }

    /// End the host processes the runtime keeps for the container besides
    /// its init (and the sandbox it owns), each checked to be what it
    /// claims, before the runtime's delete; wait up to `wait` for them.
    /// Returns the pids still alive.
    fn end_host_processes(&self, _id: &str, _bundle: &Path, _wait: Duration) -> Vec<i32> {
        Vec::new()
    }

    /// The least time a forced delete of a live container needs.
    fn delete_floor(&self) -> Duration {
        Duration::ZERO
    }

    /// The runtime could not delete the container (`cause`, its error):
    /// remove its state by hand when nothing it describes runs any more.
    /// `nothing_alive`: the cleanup found the container's processes gone.
    /// `Ok(true)`: the state is gone now; `Err`: why it stays.
    fn forget_dead(&self, id: &str, nothing_alive: bool, cause: &str) -> Result<bool, String>;
}
