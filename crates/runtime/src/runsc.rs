//! runsc (gVisor): the family whose containers run inside a sandbox, and
//! every quirk of it the shim knows (docs/gvisor.md).
//!
//! - The containers of a pod share one sandbox: an app container's host pid
//!   and cgroup are the sandbox's ([`Placement::PodSandbox`]), so its exit
//!   is learned with `runsc wait`, started once it runs (on a created
//!   container `runsc wait` gives up after a few seconds); only the
//!   container that owns the sandbox is also reaped by host pid.
//! - `kill --all` stays inside the sandbox; nothing of a container is left
//!   on the host after its init exits.
//! - runsc refuses a forced delete of a created or stopped container
//!   ("cannot signal container in state created", "sandbox is not
//!   running"): the shared policy (`crate::delete`) then deletes plainly.
//! - A delete can leave the container's gofer running (a container whose
//!   start failed) and lock files without their state (a runsc call racing
//!   the delete): both are removed after it ([`host`]).
//! - `Stats` come from `runsc events --stats`: the sandbox's cgroup cannot
//!   tell one container's usage from another's.
//! - An app container of a pod gets its stdio at `runsc start`, not at
//!   create: runsc passes the stdin, stdout and stderr of the `runsc start`
//!   call to the sandbox as the container's (runsc/container/container.go,
//!   `(*Container).Start`, sub-container branch: `stdios =
//!   []*os.File{os.Stdin, os.Stdout, os.Stderr}` then
//!   `Sandbox.StartSubcontainer`, in both the 2022-12-19 and 2024-07-29
//!   releases); `runsc create` of such a container does not use its stdio.
//! - An exec is a process inside the sandbox; the host process the pid
//!   file names (`runsc exec`) only waits for it and forwards no signal
//!   unless the exec has a terminal (runsc/cmd/exec.go, `(*Exec).exec`:
//!   `ForwardSignals` only when `StdioIsPty`; SIGKILL cannot be forwarded at
//!   all). Its pid inside the sandbox is written to `--internal-pid-file`
//!   (before the pid file, so ready when `runsc exec --detach` returns) and
//!   signalled with `runsc kill --pid`, which refuses a pid of another
//!   container.
//! - An app container that shares the pod's pid namespace is placed in the
//!   sandbox's own (runsc takes CRI's `/proc/<sandbox pid>/ns/pid` as a
//!   key: the first app container would get a namespace of its own, and
//!   its init's death would end every container of the pod).

pub mod host;
pub mod state;
pub mod stats;

use std::path::Path;
use std::time::Duration;

use robust_logfmt::quote;
use robust_reaper::ExitStatus;
use serde::Deserialize;

use crate::cli::{bad_output, cli_verbs, snippet, Cli, FOREVER};
use crate::container_runtime::{
    ContainerRuntime, ExitSource, Leftovers, Placement, SpecEdit, Subject,
};
use crate::{RuntimeError, RuntimeStats};

/// runsc, driven through the shared CLI.
pub struct Runsc {
    cli: Cli,
}

impl Runsc {
    pub fn new(cli: Cli) -> Runsc {
        Runsc { cli }
    }

    /// `runsc wait`: block until the container exits and return its exit
    /// status. No deadline: it lasts as long as the container.
    fn wait(&self, id: &str) -> Result<u32, RuntimeError> {
        let launched = self
            .cli
            .launch("wait", id, vec!["wait".into(), id.into()], None, None)?;
        let out = self.cli.finish("wait", id, launched, FOREVER)?;
        parse_wait(&out.stdout).map_err(|detail| bad_output("wait", id, detail))
    }
}

/// Parses `runsc wait` output: the exit status, clamped to 0..=255.
pub fn parse_wait(stdout: &[u8]) -> Result<u32, String> {
    #[derive(Deserialize)]
    struct WaitResult {
        #[serde(rename = "exitStatus")]
        exit_status: i64,
    }
    let r: WaitResult =
        serde_json::from_slice(stdout).map_err(|e| format!("{e}: {}", snippet(stdout)))?;
    Ok(r.exit_status.clamp(0, 255) as u32)
}

impl ContainerRuntime for Runsc {
    fn family(&self) -> &'static str {
        "runsc"
    }

    fn root(&self) -> &Path {
        &self.cli.config().root
    }

    cli_verbs!(cli);

    /// Every container of a pod is in the sandbox's cgroup: only runsc can
    /// tell their usage apart.
    fn stats(&self, id: &str) -> Option<Result<RuntimeStats, RuntimeError>> {
        Some(stats::stats(&self.cli, id))
    }

    /// An app container of a pod runs in the pod's sandbox; so does one
    /// whose spec cannot be read (the cleanup then never kills the pid it
    /// finds: it may be the pod's sandbox).
    fn placement(&self, pod_app: Option<bool>) -> Placement {
        if pod_app == Some(false) {
            Placement::Own
        } else {
            Placement::PodSandbox
        }
    }

    /// The sandbox process is ours to reap (for the container that owns
    /// it); a container's own exit comes from `runsc wait`.
    fn exit_source(&self, placement: Placement) -> ExitSource {
        ExitSource {
            reaped: placement.is_own(),
            waited: true,
        }
    }

    fn wait_exit(&self, id: &str, known: &dyn Fn() -> bool) -> Option<ExitStatus> {
        loop {
            match self.wait(id) {
                Ok(code) => return Some(ExitStatus::Code(code as i32)),
                Err(e) => {
                    if known() {
                        return None;
                    }
                    // Still running by the runtime's account: wait again.
                    let running = matches!(
                        self.cli.state(id).map(|s| s.status),
                        Ok(ref st) if st == "running" || st == "paused"
                    );
                    if running {
                        log::debug!(
                            "msg=\"runsc wait returned early; waiting again\" id={id} error={}",
                            quote(&e)
                        );
                        continue;
                    }
                    // The sandbox died with it: its exit status is gone.
                    log::warn!(
                        "msg=\"runsc wait failed; reporting exit 137\" id={id} error={}",
                        quote(&e)
                    );
                    return Some(ExitStatus::Signal(libc::SIGKILL));
                }
            }
        }
    }

    fn contains_processes(&self) -> bool {
        true
    }

    fn stdio_at_start(&self, placement: Placement) -> bool {
        !placement.is_own()
    }

    fn exec_pid_inside(&self, exec_id: &str) -> Option<String> {
        Some(format!("{exec_id}.internal.pid"))
    }

    /// `runsc kill --pid <pid> <id> <signal>`, under the `kill` deadline.
    fn signal_inside(
        &self,
        id: &str,
        pid_inside: i32,
        signal: u32,
    ) -> Option<Result<(), RuntimeError>> {
        let args: Vec<std::ffi::OsString> = vec![
            "kill".into(),
            "--pid".into(),
            pid_inside.to_string().into(),
            id.into(),
            signal.to_string().into(),
        ];
        Some(self.cli.run("kill", id, args, None, None).map(|_| ()))
    }

    fn spec_edits(&self, placement: Placement, sandbox_pid: i32) -> Vec<SpecEdit> {
        if placement.is_own() || sandbox_pid <= 0 {
            return Vec::new();
        }
        vec![SpecEdit::DropNamespace {
            kind: "pid",
            path: format!("/proc/{sandbox_pid}/ns/pid"),
            why: "runsc: app container shares the pod's pid namespace; placed in the sandbox's",
        }]
    }

    /// runsc 2024 keeps the overlay file store (`.gvisor.filestore.<pod>`)
    /// of a container whose start failed open until the sandbox ends:
    /// holders that are exactly the pod's verified sandbox and what runs
    /// below it keep the rootfs for as long as the pod lives.
    fn rootfs_held_for_life(&self, c: &Subject<'_>, holders: &[(i32, String)]) -> bool {
        let Some(sid) = c.pod_sandbox.filter(|_| !c.placement.is_own()) else {
            return false;
        };
        let tree = host::sandbox_tree(self.root(), sid, c.init_pid);
        holders.iter().all(|(p, _)| tree.contains(p))
    }

    fn after_delete(&self, id: &str, bundle: &Path, deleted: bool) {
        if deleted {
            host::kill_leftover_gofers(self.root(), id, bundle);
        }
        host::remove_orphan_locks(self.root(), id);
    }

    fn leftovers(&self) -> &dyn Leftovers {
        self
    }
}

/// runsc's forced delete of a live ptrace sandbox alone takes ~1.3 s, more
/// for a pod: the least a dead-shim delete gives it.
const DELETE_FLOOR: Duration = Duration::from_millis(2500);

impl Leftovers for Runsc {
    fn has_state(&self, id: &str) -> bool {
        state::has_state(self.root(), id)
    }

    fn describe_state(&self, _id: &str) -> String {
        format!("(runsc) under {}", self.root().display())
    }

    /// `runsc delete --force` of a live sandbox is slow, and quick once its
    /// processes are gone: the sandbox (when this container owns it) and
    /// the gofer are ended first.
    fn end_host_processes(&self, id: &str, bundle: &Path, wait: Duration) -> Vec<i32> {
        state::kill_host_processes(self.root(), id, bundle, wait)
    }

    fn delete_floor(&self) -> Duration {
        DELETE_FLOOR
    }

    /// runsc cut off at its deadline leaves its state files: once no
    /// process they name is alive, they are only files.
    fn forget_dead(&self, id: &str, _nothing_alive: bool, _cause: &str) -> Result<bool, String> {
        state::remove_dead_state(self.root(), id)?;
        Ok(!state::has_state(self.root(), id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_output() {
        assert_eq!(parse_wait(br#"{"id":"c","exitStatus":7}"#), Ok(7));
        assert_eq!(parse_wait(br#"{"exitStatus":-1}"#), Ok(0));
        assert_eq!(parse_wait(br#"{"exitStatus":70000}"#), Ok(255));
        assert!(parse_wait(b"").is_err());
    }

    #[test]
    fn app_containers_share_the_sandbox_and_get_its_pid_namespace() {
        let r = Runsc::new(crate::cli::tests::cli());
        assert_eq!(r.placement(Some(false)), Placement::Own);
        assert_eq!(r.placement(Some(true)), Placement::PodSandbox);
        assert_eq!(r.placement(None), Placement::PodSandbox);
        let own = r.exit_source(Placement::Own);
        assert!(own.reaped && own.waited);
        let app = r.exit_source(Placement::PodSandbox);
        assert!(!app.reaped && app.waited);
        assert!(r.stdio_at_start(Placement::PodSandbox));
        assert!(!r.stdio_at_start(Placement::Own));
        assert_eq!(r.exec_pid_inside("e1").as_deref(), Some("e1.internal.pid"));
        assert!(r.spec_edits(Placement::Own, 42).is_empty());
        assert!(r.spec_edits(Placement::PodSandbox, 0).is_empty());
        assert_eq!(
            r.spec_edits(Placement::PodSandbox, 42),
            vec![SpecEdit::DropNamespace {
                kind: "pid",
                path: "/proc/42/ns/pid".into(),
                why: "runsc: app container shares the pod's pid namespace; placed in the sandbox's",
            }]
        );
    }
}
