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

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::kill;
use nix::unistd::Pid;

use robust_cleanup::logfmt::quote;
use robust_runtime::delete::{self, DeleteHow};

use crate::container::Container;
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
            if let Err(e) = c.runtime.kill(&c.id, libc::SIGTERM as u32, false) {
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
        if let Err(e) = c.runtime.delete(&c.id, true) {
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
        self.exit_now(c, &c.init, 137);
        report(c, false, steps, started)
    }

    /// After an ordinary SIGKILL from a `Kill` RPC: if the init has not
    /// exited within `kill_grace`, run the rest of the escalation in the
    /// background. One watchdog per container at a time (the init's phase
    /// says one runs).
    pub(crate) fn watch_sigkill(&self, c: &Arc<Container>) {
        let (began, starting) = match c.init.lock() {
            Ok(mut st) => (st.phase.begin_kill_watch(), st.phase.is_starting()),
            Err(_) => return,
        };
        // A start in flight cannot be marked: watched all the same.
        if !began && !starting {
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
                end_kill_watch(&c2);
            });
        if spawned.is_err() {
            end_kill_watch(c);
        }
    }

    /// Stop every container (SIGTERM to the daemon, `Shutdown` with `now`):
    /// all in parallel, each with its own escalation, then clean each one
    /// (runtime delete, unmount) so nothing is left when the daemon exits.
    pub fn stop_all(&self) -> Vec<StopReport> {
        let handles: Vec<_> = self
            .all_containers()
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

    /// Take a stopped container down without an RPC: the runtime delete by
    /// the shared policy (what the family leaves behind included), unmount,
    /// forget it. Failures are logged; nothing here blocks longer than the
    /// runtime and unmount deadlines.
    fn release(&self, c: &Arc<Container>) {
        let how = DeleteHow {
            force: true,
            retry_timeout: false,
        };
        if let Err(e) = delete::delete(c.runtime.as_ref(), &c.id, &c.bundle, how) {
            log::warn!(
                "msg=\"release: runtime delete failed\" id={} error={}",
                c.id,
                quote(&e)
            );
        }
        if let Some(r) = &c.rootfs {
            if let Err(e) = robust_cleanup::mount::unmount_all(r, c.config.timeouts.unmount, &c.id)
            {
                log::warn!(
                    "msg=\"release: unmount failed\" id={} error={}",
                    c.id,
                    quote(&e)
                );
            }
        }
        self.forget(c);
    }
}

/// The SIGKILL watchdog is over.
fn end_kill_watch(c: &Container) {
    if let Ok(mut st) = c.init.lock() {
        st.phase.end_kill_watch();
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
