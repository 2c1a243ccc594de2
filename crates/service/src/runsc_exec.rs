//! runsc: signalling an exec.
//!
//! An exec under runsc is a process inside the sandbox; the host process
//! the shim knows (`runsc exec`, whose pid `--pid-file` names) only waits
//! for it and forwards no signal unless the exec has a terminal
//! (runsc/cmd/exec.go, `(*Exec).exec`: `ForwardSignals` only when
//! `StdioIsPty`; SIGKILL cannot be forwarded at all). Killing that host
//! process would publish an exit while the process runs on in the sandbox.
//! So the exec's pid inside the sandbox is read from `--internal-pid-file`
//! (written before the pid file, so ready when `runsc exec --detach`
//! returns) and signalled with `runsc kill --pid`, which refuses a pid of
//! another container. The host waiter then exits with the process, and
//! that exit is the one published.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use robust_cleanup::logfmt::quote;
use robust_config::RuntimeKind;
use robust_runtime::ErrorKind;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::process::Process;

/// Where runsc writes the exec's pid inside the sandbox; `None` for runc.
pub(crate) fn internal_pid_file(c: &Container, eid: &str) -> Option<PathBuf> {
    (c.kind == RuntimeKind::Runsc).then(|| c.bundle.join(internal_pid_name(eid)))
}

fn internal_pid_name(eid: &str) -> String {
    format!("{eid}.internal.pid")
}

/// After `runsc exec` returned: remember the exec's pid inside the sandbox
/// and remove the file.
pub(crate) fn record_internal_pid(c: &Container, p: &Process) {
    if c.kind != RuntimeKind::Runsc {
        return;
    }
    let name = internal_pid_name(&p.exec_id);
    match robust_bundle::read_pid(&c.bundle, &name) {
        Some(pid) => p.sandbox_pid.store(pid, Ordering::Release),
        None => log::warn!(
            "msg=\"runsc exec left no pid of the process in the sandbox; a kill of this exec will only end its host runsc exec process\" id={} exec_id={}",
            c.id,
            p.exec_id
        ),
    }
    let _ = std::fs::remove_file(c.bundle.join(name));
}

/// `Kill` of a runsc exec whose host waiter is `host_pid`: the signal goes
/// to the process in the sandbox. A SIGKILL that runsc cannot deliver, or
/// that does not end the exec within `kill_grace`, ends the host waiter,
/// so the exec's exit is published (once, by the reaper) even then.
pub(crate) fn kill(c: &Arc<Container>, p: &Arc<Process>, host_pid: i32, signal: u32) -> Result<()> {
    let inner = p.sandbox_pid.load(Ordering::Acquire);
    let sigkill = signal == libc::SIGKILL as u32;
    if inner <= 0 {
        // Already logged at warn when the exec started.
        return crate::service::signal_exec_pid(&c.id, &p.exec_id, host_pid, signal);
    }
    match c.runc.kill_process(&c.id, inner, signal) {
        Ok(()) => {
            if sigkill {
                watch_sigkill(c, p, host_pid);
            }
            Ok(())
        }
        Err(e) if e.kind() != ErrorKind::Other => Err(Error::NotFound(format!(
            "container {} exec {}: process already finished: {e}",
            c.id, p.exec_id
        ))),
        Err(e) if sigkill => {
            log::warn!(
                "msg=\"runsc kill of the exec's process in the sandbox failed; killing its host runsc exec process (the process in the sandbox may survive)\" id={} exec_id={} pid={host_pid} sandbox_pid={inner} error={q_error}",
                c.id,
                p.exec_id,
                q_error = quote(&e)
            );
            crate::service::signal_exec_pid(&c.id, &p.exec_id, host_pid, signal)
        }
        Err(e) => Err(e.into()),
    }
}

/// After a SIGKILL runsc delivered: if the host waiter has not reported
/// the exit within `kill_grace`, end it, so the exit is published.
fn watch_sigkill(c: &Arc<Container>, p: &Arc<Process>, host_pid: i32) {
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
                "msg=\"runsc exec still not exited after SIGKILL in the sandbox; killing its host runsc exec process\" id={} exec_id={} pid={host_pid} grace={grace:?}",
                c.id,
                p.exec_id
            );
            let _ = crate::service::signal_exec_pid(&c.id, &p.exec_id, host_pid, libc::SIGKILL as u32);
        });
}
