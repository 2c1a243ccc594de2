//! One process of a container (its init or an exec) and its state machine.

use std::sync::atomic::AtomicI32;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::stdio::{Io, StdioPaths};

/// Where a process is in its life. Transitions are checked in
/// [`Process::transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

/// The state behind the process's lock.
#[derive(Debug)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub exit_code: u32,
    pub exited_at: Option<SystemTime>,
    /// A start (runtime call and its event) is under way: an exit that
    /// arrives meanwhile is published by the starter, after its start event.
    pub starting: bool,
    pub exit_deferred: bool,
}

pub struct Process {
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// The OCI process spec of an exec, JSON as containerd sent it.
    pub spec: Vec<u8>,
    state: Mutex<State>,
    exited: Condvar,
    pub io: Mutex<Option<Io>>,
    /// runsc: an exec's pid inside the sandbox (`--internal-pid-file`); 0
    /// when unknown, and for runc, where `pid` is the process itself.
    pub sandbox_pid: AtomicI32,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths, spec: Vec<u8>) -> Process {
        Process {
            exec_id: exec_id.to_string(),
            stdio,
            spec,
            state: Mutex::new(State {
                status: Status::Created,
                pid: 0,
                exit_code: 0,
                exited_at: None,
                starting: false,
                exit_deferred: false,
            }),
            exited: Condvar::new(),
            io: Mutex::new(None),
            sandbox_pid: AtomicI32::new(0),
        }
    }

    pub fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::poisoned("process"))
    }

    pub fn pid(&self) -> i32 {
        self.lock().map(|s| s.pid).unwrap_or(0)
    }

    pub fn status(&self) -> Status {
        self.lock().map(|s| s.status).unwrap_or(Status::Stopped)
    }

    /// Move to `to`, refusing moves that make no sense.
    pub fn transition(state: &mut State, to: Status) -> Result<()> {
        use Status::*;
        let ok = matches!(
            (state.status, to),
            (Created, Running)
                | (Created, Stopped)
                | (Running, Paused)
                | (Paused, Running)
                | (Running, Stopped)
                | (Paused, Stopped)
                | (Stopped, Stopped)
        );
        if !ok {
            return Err(Error::FailedPrecondition(format!(
                "process cannot go from {:?} to {:?}",
                state.status, to
            )));
        }
        state.status = to;
        Ok(())
    }

    /// Record the exit; returns false if it was already recorded.
    pub fn set_exited(state: &mut State, code: u32, at: SystemTime) -> bool {
        if state.exited_at.is_some() {
            return false;
        }
        state.status = Status::Stopped;
        state.exit_code = code;
        state.exited_at = Some(at);
        true
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
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Option<(u32, SystemTime)> {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.lock().ok()?;
        loop {
            if let Some(at) = st.exited_at {
                return Some((st.exit_code, at));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
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
            if let Some(at) = st.exited_at {
                return Ok((st.exit_code, at));
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
    use std::sync::Arc;

    #[test]
    fn transitions_are_checked() {
        let p = Process::new("", StdioPaths::default(), vec![]);
        let mut st = p.lock().unwrap();
        assert!(Process::transition(&mut st, Status::Paused).is_err());
        Process::transition(&mut st, Status::Running).unwrap();
        Process::transition(&mut st, Status::Paused).unwrap();
        assert!(Process::transition(&mut st, Status::Created).is_err());
        Process::transition(&mut st, Status::Running).unwrap();
        Process::transition(&mut st, Status::Stopped).unwrap();
        assert!(Process::transition(&mut st, Status::Running).is_err());
    }

    #[test]
    fn wait_returns_the_first_exit() {
        let p = Arc::new(Process::new("e1", StdioPaths::default(), vec![]));
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || p2.wait().unwrap().0);
        {
            let mut st = p.lock().unwrap();
            assert!(Process::set_exited(&mut st, 137, SystemTime::now()));
            assert!(!Process::set_exited(&mut st, 0, SystemTime::now()));
        }
        p.notify_exit();
        assert_eq!(waiter.join().unwrap(), 137);
    }
}
