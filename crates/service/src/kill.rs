//! `Kill`, and every signal the shim delivers to a container: the init
//! through the runtime, the rest through the container's cgroup only when
//! the ownership rule proves it the container's alone
//! (`robust_cleanup::owner`, docs/cleanup.md).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::api;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use robust_cleanup::logfmt::quote;
use robust_cleanup::owner::{NotProven, Owned, Scope};
use robust_runtime::{ErrorKind, RuntimeError};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::process::{Process, Status};
use crate::Service;

const SIGKILL: u32 = libc::SIGKILL as u32;

impl Service {
    pub fn do_kill(&self, req: api::KillRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let (pid, exited) = {
            let st = p.lock()?;
            (st.pid, st.exited().is_some())
        };
        if !req.exec_id.is_empty() {
            if exited || pid <= 0 {
                return Err(Error::NotFound(format!(
                    "container {} exec {}: process already finished",
                    c.id, req.exec_id
                )));
            }
            return kill_exec(&c, &p, pid, req.signal);
        }
        if exited && !req.all {
            return Err(Error::NotFound(format!(
                "container {}: process already finished",
                c.id
            )));
        }
        // A container whose exit nobody can observe before it starts (its
        // exit comes from the runtime's wait, started by `start`; its start
        // failed or never came) has no process to end: a SIGKILL ends it at
        // once, as a kill of a created runc container kills its init.
        let unobservable = !c.exit_source.reaped && c.init.status() == Status::Created;
        if unobservable && req.signal == SIGKILL {
            if let Err(e) = c.runtime.kill(&c.id, req.signal, req.all) {
                log::debug!(
                    "msg=\"runtime kill of a never-started container\" id={} error={}",
                    c.id,
                    quote(&e)
                );
            }
            self.exit_now(&c, &c.init, 137);
            return Ok(());
        }
        match self.signal_container(&c, req.signal, req.all) {
            Ok(()) => {
                if req.signal == SIGKILL {
                    self.watch_sigkill(&c);
                }
                Ok(())
            }
            Err(e) if e.kind() != ErrorKind::Other => Err(Error::NotFound(format!(
                "container {}: process already finished: {e}",
                c.id
            ))),
            // A SIGKILL the runtime could not deliver (it hung or failed)
            // is delivered by us: the processes of the container's cgroup
            // when it is proven the container's alone, then the rest of
            // the escalation in the background.
            Err(e) if req.signal == SIGKILL && c.cgroup.is_some() => {
                let n = self.kill_cgroup(&c);
                log::warn!(
                    "msg=\"runtime kill failed; killed the container's cgroup instead\" id={} pids={n} error={}",
                    c.id,
                    quote(&e)
                );
                self.watch_sigkill(&c);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The container's cgroup when the ownership rule holds
    /// (`robust_cleanup::owner`, docs/cleanup.md): recorded at create as the
    /// container's alone, still the same directory, and no other container
    /// in it or below. `None`, with the reason logged, otherwise.
    fn owned_cgroup(&self, c: &Container) -> Option<Owned> {
        if !c.placement.is_own() {
            // Every container of a pod sandbox lives in the sandbox's
            // cgroup: killing it would kill the whole pod.
            log::warn!(
                "msg=\"not killing the shared sandbox cgroup for one container of a pod sandbox\" id={}",
                c.id
            );
            return None;
        }
        let root = c.runtime.root().to_path_buf();
        let scope = Scope::new(&c.bundle, std::slice::from_ref(&root));
        match c.owner.prove(&scope) {
            Ok(o) => Some(o),
            Err(NotProven::Gone) => None,
            Err(NotProven::Unproven(why)) => {
                let left: Vec<String> = c.owner.pids_now().iter().map(u32::to_string).collect();
                log::warn!(
                    "msg=\"not killing through the cgroup: not provably the container's alone\" id={} why={} left_alone={}",
                    c.id,
                    quote(&why),
                    quote(left.join(","))
                );
                None
            }
        }
    }

    /// Thaw the container's cgroup and SIGKILL the processes in it, when
    /// the ownership rule holds. Returns how many pids were signalled.
    pub(crate) fn kill_cgroup(&self, c: &Container) -> usize {
        let Some(owned) = self.owned_cgroup(c) else {
            return 0;
        };
        match owned.kill(Duration::ZERO, &c.id) {
            Ok(k) => k.signalled.len(),
            Err(e) => {
                log::warn!(
                    "msg=\"cgroup kill skipped\" id={} error={}",
                    c.id,
                    quote(&e)
                );
                0
            }
        }
    }

    /// Deliver `sig` to the container's init through the runtime and, with
    /// `all`, to the rest of its processes. A runtime that keeps them in its
    /// sandbox signals them itself (`kill --all`); otherwise the rest is
    /// signalled by the shim, through a proven cgroup only: `runc kill
    /// --all` signals every process of the cgroup and below, a bystander
    /// sharing it included. Unproven, the rest is the execs the shim
    /// started.
    pub(crate) fn signal_container(
        &self,
        c: &Container,
        sig: u32,
        all: bool,
    ) -> std::result::Result<(), RuntimeError> {
        if !all || c.runtime.contains_processes() {
            return c.runtime.kill(&c.id, sig, all);
        }
        let init = c.runtime.kill(&c.id, sig, false);
        if matches!(&init, Err(e) if e.kind() == ErrorKind::Other) {
            return init;
        }
        let Ok(signal) = Signal::try_from(sig as i32) else {
            return init;
        };
        let n = match self.owned_cgroup(c).map(|o| o.signal(signal, &c.id)) {
            Some(Ok(n)) => n,
            other => {
                if let Some(Err(e)) = other {
                    log::warn!(
                        "msg=\"cgroup signal skipped\" id={} error={}",
                        c.id,
                        quote(&e)
                    );
                }
                c.live_execs()
                    .iter()
                    .map(|p| p.pid())
                    .filter(|p| *p > 0 && kill(Pid::from_raw(*p), signal).is_ok())
                    .count()
            }
        };
        log::debug!(
            "msg=\"signalled the container's processes\" id={} signal={signal} pids={n}",
            c.id
        );
        init
    }

    /// The init of a container without a pid namespace of its own exited:
    /// nothing else ends what it left (orphans in the host's or the pod's
    /// pid namespace). Kill them, as containerd's runc shim does with
    /// `runc kill --all`, but only through a proven cgroup; unproven, only
    /// the container's execs, which the shim started itself. (A runtime
    /// that keeps its processes in its sandbox leaves nothing on the host.)
    pub(crate) fn kill_rest_after_init_exit(&self, c: &Container) {
        if c.own_pid_ns || c.runtime.contains_processes() {
            return;
        }
        if self.kill_cgroup(c) > 0 {
            return;
        }
        for p in c.live_execs() {
            let pid = p.pid();
            if pid > 0 {
                log::warn!(
                    "msg=\"killing an exec left after its init exited\" id={} exec_id={} pid={pid}",
                    c.id,
                    p.exec_id
                );
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// `Kill` of an exec whose host process is `host_pid`. When the runtime
/// knows the exec's pid inside its sandbox (the host process is only its
/// waiter, which forwards no signal), the signal goes there through the
/// runtime; a SIGKILL it cannot deliver, or that does not end the exec
/// within `kill_grace`, ends the host waiter, so the exec's exit is
/// published (once, by the reaper) even then. Otherwise the shim signals
/// the host process itself.
fn kill_exec(c: &Arc<Container>, p: &Arc<Process>, host_pid: i32, signal: u32) -> Result<()> {
    let inside = p.pid_inside.load(Ordering::Acquire);
    let sigkill = signal == SIGKILL;
    let res = if inside > 0 {
        c.runtime.signal_inside(&c.id, inside, signal)
    } else {
        None
    };
    match res {
        None => signal_host(c, &p.exec_id, host_pid, signal),
        Some(Ok(())) => {
            if sigkill {
                watch_exec_sigkill(c, p, host_pid);
            }
            Ok(())
        }
        Some(Err(e)) if e.kind() != ErrorKind::Other => Err(Error::NotFound(format!(
            "container {} exec {}: process already finished: {e}",
            c.id, p.exec_id
        ))),
        Some(Err(e)) if sigkill => {
            log::warn!(
                "msg=\"the runtime could not kill the exec's process in its sandbox; killing its host process (the process in the sandbox may survive)\" id={} exec_id={} pid={host_pid} pid_inside={inside} error={}",
                c.id,
                p.exec_id,
                quote(&e)
            );
            signal_host(c, &p.exec_id, host_pid, signal)
        }
        Some(Err(e)) => Err(e.into()),
    }
}

/// After a SIGKILL the runtime delivered inside its sandbox: if the host
/// waiter has not reported the exit within `kill_grace`, end it, so the
/// exit is published.
fn watch_exec_sigkill(c: &Arc<Container>, p: &Arc<Process>, host_pid: i32) {
    let (c, p) = (c.clone(), p.clone());
    let _ = std::thread::Builder::new()
        .name("exec-kill-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let grace = c.config.timeouts.kill_grace;
            if p.wait_timeout(grace).is_some() {
                return;
            }
            log::warn!(
                "msg=\"exec still not exited after SIGKILL in the sandbox; killing its host process\" id={} exec_id={} pid={host_pid} grace={grace:?}",
                c.id,
                p.exec_id
            );
            let _ = signal_host(&c, &p.exec_id, host_pid, SIGKILL);
        });
}

/// `signal` to the host process `pid` of exec `eid` (the exec itself, or
/// its waiter).
fn signal_host(c: &Container, eid: &str, pid: i32, signal: u32) -> Result<()> {
    let sig = Signal::try_from(signal as i32)
        .map_err(|_| Error::InvalidArgument(format!("invalid signal {signal}")))?;
    kill(Pid::from_raw(pid), sig).map_err(|e| match e {
        nix::errno::Errno::ESRCH => Error::NotFound(format!(
            "container {} exec {eid}: process already finished",
            c.id
        )),
        e => Error::Other(format!("container {} exec {eid}: kill: {e}", c.id)),
    })
}
