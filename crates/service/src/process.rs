//! One process of a container (its init or an exec): its stdio, and its
//! state behind its lock, a [`Phase`] whose transitions are checked in
//! [`crate::order`].

use std::sync::atomic::AtomicI32;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::order::Phase;
pub use crate::order::Status;
use crate::stdio::{Io, StdioPaths};

/// The state behind the process's lock.
#[derive(Debug)]
pub struct State {
    /// Its host pid (0 until known).
    pub pid: i32,
    pub phase: Phase,
    /// The init only: the cgroup's OOM-kill count already published as
    /// TaskOOM events (`order::oom_due`).
    pub oom_seen: u64,
}

impl State {
    pub fn status(&self) -> Status {
        self.phase.status()
    }

    /// Exit status and time, once exited.
    pub fn exited(&self) -> Option<(u32, SystemTime)> {
        self.phase.exit().map(|e| (e.code, e.at))
    }
}

pub struct Process {
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// The OCI process spec of an exec, JSON as containerd sent it.
    pub spec: Vec<u8>,
    state: Mutex<State>,
    exited: Condvar,
    pub io: Mutex<Option<Io>>,
    /// An exec's pid inside its runtime's sandbox, when the host process
    /// (`pid`) is only its waiter (`ContainerRuntime::exec_pid_inside`); 0
    /// when unknown or when the host process is the exec itself.
    pub pid_inside: AtomicI32,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths, spec: Vec<u8>) -> Process {
        Process {
            exec_id: exec_id.to_string(),
            stdio,
            spec,
            state: Mutex::new(State {
                pid: 0,
                phase: Phase::Created,
                oom_seen: 0,
            }),
            exited: Condvar::new(),
            io: Mutex::new(None),
            pid_inside: AtomicI32::new(0),
        }
    }

    pub fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::poisoned("process"))
    }

    pub fn pid(&self) -> i32 {
        self.lock().map(|s| s.pid).unwrap_or(0)
    }

    pub fn status(&self) -> Status {
        self.lock().map(|s| s.status()).unwrap_or(Status::Stopped)
    }

    /// Started and not exited yet.
    pub fn is_live(&self) -> bool {
        self.lock()
            .map(|s| s.pid > 0 && s.phase.exit().is_none())
            .unwrap_or(false)
    }

    /// Wake everyone waiting for the exit.
    pub fn notify_exit(&self) {
        self.exited.notify_all();
    }

    /// The process exited: close its stdin, release its terminal, and let
    /// its output drain for `io_drain` at most.
    pub fn finish_io(&self) {
        if let Ok(io) = self.io.lock() {
            if let Some(io) = io.as_ref() {
                io.finish_after_exit();
            }
        }
    }

    /// Wait up to `timeout` for the exit; `None` if it has not happened.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<(u32, SystemTime)> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock().ok()?;
        loop {
            if let Some(e) = st.exited() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            st = self.exited.wait_timeout(st, left).ok()?.0;
        }
    }

    /// Block until the process has exited.
    pub fn wait(&self) -> Result<(u32, SystemTime)> {
        let mut st = self.lock()?;
        loop {
            if let Some(e) = st.exited() {
                return Ok(e);
            }
            st = self
                .exited
                .wait(st)
                .map_err(|_| Error::poisoned("process"))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Exit;
    use std::sync::Arc;

    #[test]
    fn wait_returns_the_first_exit() {
        let p = Arc::new(Process::new("e1", StdioPaths::default(), vec![]));
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || p2.wait().unwrap().0);
        {
            let mut st = p.lock().unwrap();
            let at = SystemTime::now();
            assert!(st
                .phase
                .exit_now(Exit {
                    pid: 1,
                    code: 137,
                    at
                })
                .is_some());
            assert!(st
                .phase
                .exit_now(Exit {
                    pid: 1,
                    code: 0,
                    at
                })
                .is_none());
        }
        p.notify_exit();
        assert_eq!(waiter.join().unwrap(), 137);
        assert_eq!(p.wait_timeout(Duration::ZERO).map(|e| e.0), Some(137));
    }
}
