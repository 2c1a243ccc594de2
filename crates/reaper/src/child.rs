//! A child spawned through the reaper, waited for with a deadline.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::ExitStatus;

/// A spawned child whose exit the reaper will deliver here.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    rx: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

impl Child {
    pub(crate) fn new(pid: i32, rx: Receiver<ExitStatus>) -> Child {
        Child {
            pid,
            rx,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Wait until the child exits or `deadline` passes; `None` on timeout.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<ExitStatus> {
        if let Some(st) = self.status {
            return Some(st);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(st) => {
                self.status = Some(st);
                Some(st)
            }
            Err(RecvTimeoutError::Timeout) => None,
            // The reaper is gone: treat as unknown death.
            Err(RecvTimeoutError::Disconnected) => {
                self.status = Some(ExitStatus::Code(255));
                self.status
            }
        }
    }

    /// Wait for the exit with a timeout; on expiry SIGKILL the child's whole
    /// process group (children are spawned as group leaders) and reap it.
    /// Returns the status and whether the deadline fired.
    pub fn wait_or_kill(&mut self, timeout: Duration) -> (ExitStatus, bool) {
        if let Some(st) = self.wait_deadline(Instant::now() + timeout) {
            return (st, false);
        }
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        // SIGKILL cannot be ignored; a process in uninterruptible sleep can
        // still take a while, so bound this wait too.
        let st = self
            .wait_deadline(Instant::now() + Duration::from_secs(5))
            .unwrap_or(ExitStatus::Signal(libc::SIGKILL));
        (st, true)
    }
}
