//! Bounded stops with escalation, for the places where the shim stops
//! something itself or a stop cannot finish:
//!
//! SIGTERM -> `stop_grace` -> SIGKILL (all) -> `kill_grace` -> thaw the
//! cgroup and SIGKILL every pid in it -> `kill_grace` -> forced runtime
//! delete -> `kill_grace` -> give up: record exit 137 ourselves and say
//! exactly what could not be confirmed.
//!
//! An ordinary `Kill` RPC delivers only the signal asked for; when that
//! signal is SIGKILL and it does not take effect within `kill_grace` (a
//! frozen cgroup, a process stuck in the kernel), the later steps run in
//! the background.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use robust_cleanup::logfmt::quote;
use robust_cleanup::owner::{NotProven, Owned, Scope};

use crate::container::Container;
use crate::process::Process;
use crate::Service;

/// How an escalation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    pub id: String,
    /// The exit was observed (true) or only assumed (false).
    pub confirmed: bool,
    /// The steps that ran, in order.
    pub steps: Vec<&'static str>,
    pub took: Duration,
}

impl Service {
    /// Stop the container's init, starting with SIGTERM when `term_first`.
    pub fn stop_container(&self, c: &Arc<Container>, term_first: bool) -> StopReport {
        let started = Instant::now();
        let t = &c.config.timeouts;
        let mut steps = Vec::new();
        let exited = |grace: Duration| c.init.wait_timeout(grace).is_some();
        if exited(Duration::ZERO) {
            return report(c, true, steps, started);
        }
        if term_first {
            steps.push("sigterm");
            if let Err(e) = c.runc.kill(&c.id, libc::SIGTERM as u32, false) {
                log::warn!(
                    "msg=\"stop: SIGTERM failed\" id={} error={q_error}",
                    c.id,
                    q_error = quote(&e)
                );
            }
            if exited(t.stop_grace) {
                return report(c, true, steps, started);
            }
            log::warn!(
                "msg=\"stop: init ignored SIGTERM; escalating to SIGKILL\" id={} grace={:?}",
                c.id,
                t.stop_grace
            );
        }
        steps.push("sigkill");
        if let Err(e) = self.signal_container(c, libc::SIGKILL as u32, true) {
            log::warn!(
                "msg=\"stop: SIGKILL through the runtime failed\" id={} error={q_error}",
                c.id,
                q_error = quote(&e)
            );
        }
        if exited(t.kill_grace) {
            return report(c, true, steps, started);
        }
        self.escalate_after_sigkill(c, steps, started)
    }

    /// The steps after a SIGKILL that did not take effect.
    fn escalate_after_sigkill(
        &self,
        c: &Arc<Container>,
        mut steps: Vec<&'static str>,
        started: Instant,
    ) -> StopReport {
        let t = &c.config.timeouts;
        let exited = |grace: Duration| c.init.wait_timeout(grace).is_some();
        steps.push("cgroup-kill");
        let killed = self.kill_cgroup(c);
        log::warn!(
            "msg=\"stop: SIGKILL did not take effect; thawed the cgroup and killed its pids\" id={} grace={:?} pids={killed}",
            c.id,
            t.kill_grace
        );
        if exited(t.kill_grace) {
            return report(c, true, steps, started);
        }
        steps.push("force-delete");
        log::warn!(
            "msg=\"stop: still running after cgroup kill; forcing runtime delete\" id={}",
            c.id
        );
        if let Err(e) = c.runc.delete(&c.id, true) {
            log::warn!(
                "msg=\"stop: forced delete failed\" id={} error={q_error}",
                c.id,
                q_error = quote(&e)
            );
        }
        if exited(t.kill_grace) {
            return report(c, true, steps, started);
        }
        // Nothing more can be done from here: say so, and do not leave
        // containerd waiting for an exit that will never be reaped.
        steps.push("assumed-exit");
        let pid = c.init.pid();
        let alive = pid > 0 && kill(Pid::from_raw(pid), None).is_ok();
        log::error!(
            "msg=\"stop: exit not observed after every escalation step; reporting exit 137\" id={} pid={pid} still_alive={alive} cgroup_pids={}",
            c.id,
            quote(c.cgroup .as_ref() .and_then(|cg| cg.pids().ok()) .map(|p| p.iter().map(u32::to_string).collect::<Vec<_>>().join(",")) .unwrap_or_default())
        );
        if let Ok(mut st) = c.init.lock() {
            if Process::set_exited(&mut st, 137, SystemTime::now()) {
                self.publish_exit(&c.id, &c.init, &st);
            }
        }
        c.init.notify_exit();
        c.init.finish_io();
        report(c, false, steps, started)
    }

    /// The container's cgroup when the ownership rule holds
    /// (`robust_cleanup::owner`, docs/cleanup.md): recorded at create as the
    /// container's alone, still the same directory, and no other container
    /// in it or below. `None`, with the reason logged, otherwise.
    fn owned_cgroup(&self, c: &Container) -> Option<Owned> {
        if c.kind == robust_config::RuntimeKind::Runsc && !c.owns_sandbox {
            // Every container of a gVisor pod lives in the sandbox's cgroup:
            // killing it would kill the whole pod.
            log::warn!(
                "msg=\"not killing the shared sandbox cgroup for one container of a gVisor pod\" id={}",
                c.id
            );
            return None;
        }
        let scope = Scope::new(&c.bundle, std::slice::from_ref(&c.runc.config().root));
        match c.owner.prove(&scope) {
            Ok(o) => Some(o),
            Err(NotProven::Gone) => None,
            Err(NotProven::Unproven(why)) => {
                log::warn!(
                    "msg=\"not killing through the cgroup: not provably the container's alone\" id={} why={} left_alone={}",
                    c.id,
                    quote(&why),
                    quote(c.owner .pids_now() .iter() .map(u32::to_string) .collect::<Vec<_>>() .join(","))
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
    /// `all`, to the rest of its processes. With runc the rest is signalled
    /// by the shim itself, through a proven cgroup only: `runc kill --all`
    /// signals every process of the cgroup and below, a bystander sharing it
    /// included. Unproven, the rest is the execs the shim started. (runsc's
    /// `--all` stays inside the sandbox.)
    pub(crate) fn signal_container(
        &self,
        c: &Container,
        sig: u32,
        all: bool,
    ) -> std::result::Result<(), robust_runtime::RuntimeError> {
        if !all || c.kind == robust_config::RuntimeKind::Runsc {
            return c.runc.kill(&c.id, sig, all);
        }
        let init = c.runc.kill(&c.id, sig, false);
        if matches!(&init, Err(e) if e.kind() == robust_runtime::ErrorKind::Other) {
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
    /// the container's execs, which the shim started itself.
    pub(crate) fn kill_rest_after_init_exit(&self, c: &Container) {
        if c.own_pid_ns || c.kind != robust_config::RuntimeKind::Runc {
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

    /// After an ordinary SIGKILL from a `Kill` RPC: if the init has not
    /// exited within `kill_grace`, run the rest of the escalation in the
    /// background. One watchdog per container at a time.
    pub(crate) fn watch_sigkill(&self, c: &Arc<Container>) {
        if c.escalating.swap(true, Ordering::AcqRel) {
            return;
        }
        let svc = self.clone();
        let c2 = c.clone();
        let spawned = std::thread::Builder::new()
            .name("sigkill-watch".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                if c2.init.wait_timeout(c2.config.timeouts.kill_grace).is_none() {
                    let r = svc.escalate_after_sigkill(&c2, vec!["sigkill"], Instant::now());
                    log::warn!(
                        "msg=\"escalation after SIGKILL finished\" id={} confirmed={} steps={} took={:?}",
                        r.id,
                        r.confirmed,
                        quote(r.steps.join(",")),
                        r.took
                    );
                }
                c2.escalating.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            c.escalating.store(false, Ordering::Release);
        }
    }

    /// Stop every container (SIGTERM to the daemon, `Shutdown` with `now`):
    /// all in parallel, each with its own escalation, then clean each one
    /// (runtime delete, unmount) so nothing is left when the daemon exits.
    pub fn stop_all(&self) -> Vec<StopReport> {
        let containers: Vec<Arc<Container>> = self
            .inner
            .containers
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let handles: Vec<_> = containers
            .into_iter()
            .map(|c| {
                let svc = self.clone();
                std::thread::spawn(move || {
                    let r = svc.stop_container(&c, true);
                    svc.release(&c);
                    r
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    }

    /// Take a stopped container down without an RPC: runtime delete,
    /// unmount, forget it. Failures are logged; nothing here blocks
    /// longer than the runtime and unmount deadlines.
    fn release(&self, c: &Arc<Container>) {
        if let Err(e) = c.runc.delete(&c.id, true) {
            if e.kind() != robust_runtime::ErrorKind::NotFound {
                log::warn!(
                    "msg=\"release: runtime delete failed\" id={} error={q_error}",
                    c.id,
                    q_error = quote(&e)
                );
            }
        }
        if let Some(r) = &c.rootfs {
            if let Err(e) = robust_cleanup::mount::unmount_all(r, c.config.timeouts.unmount, &c.id)
            {
                log::warn!(
                    "msg=\"release: unmount failed\" id={} error={q_error}",
                    c.id,
                    q_error = quote(&e)
                );
            }
        }
        if let Some(oom) = &self.inner.oom {
            oom.unwatch(&c.id);
        }
        self.unregister_pid(c.init.pid());
        if let Ok(mut m) = self.inner.containers.lock() {
            m.remove(&c.id);
        }
    }
}

fn report(
    c: &Container,
    confirmed: bool,
    steps: Vec<&'static str>,
    started: Instant,
) -> StopReport {
    StopReport {
        id: c.id.clone(),
        confirmed,
        steps,
        took: started.elapsed(),
    }
}
