//! The shim's reaper: it makes the daemon a child subreaper and reaps every
//! child, whoever started it.
//!
//! Entry points:
//! - [`Reaper::start`] marks the process a subreaper (`PR_SET_CHILD_SUBREAPER`)
//!   and starts the one thread that calls `waitpid(-1)` on `SIGCHLD`;
//!   [`Reaper::start_polled`] does the same without the thread: the caller's
//!   event loop waits until the [`Sigchld`] fd is readable and calls
//!   [`Sigchld::reap`].
//! - [`Reaper::spawn`] starts a command whose exit the caller wants; the
//!   watch is registered in the same critical section as the fork, so the
//!   exit can never be reaped before someone is waiting for it, and nobody
//!   else ever calls `waitpid` on that pid (no `ECHILD`, no lost status).
//! - Exits nobody spawned through [`Reaper::spawn`] (container inits, exec'd
//!   processes and orphans re-parented to us) go to the sink given to
//!   [`Reaper::start`], which decides whether they belong to a container.
#![deny(unsafe_code)]

mod child;
mod status;

pub use child::Child;
pub use status::ExitStatus;

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// One reaped child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    pub status: ExitStatus,
    /// When the exit was reaped.
    pub at: std::time::SystemTime,
}

/// Errors of the reaper.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("set child subreaper: {0}")]
    Subreaper(#[source] std::io::Error),
    #[error("install SIGCHLD handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("start reaper thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("spawn {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reaper lock poisoned")]
    Poisoned,
}

struct Inner {
    /// Exits someone asked for before they happened.
    watches: HashMap<i32, Sender<ExitStatus>>,
    /// Exits of processes we did not spawn ourselves.
    sink: Sender<Exit>,
}

/// The subreaper. Cheap to clone; every clone shares one reaping thread.
#[derive(Clone)]
pub struct Reaper {
    inner: Arc<Mutex<Inner>>,
    orphans: Arc<AtomicU64>,
}

impl Reaper {
    /// Become a child subreaper and start reaping. Exits of processes not
    /// started through [`Reaper::spawn`] are sent to the returned receiver.
    pub fn start() -> Result<(Reaper, Receiver<Exit>), ReaperError> {
        set_subreaper()?;
        let (tx, rx) = mpsc::channel();
        let reaper = Reaper::unregistered(tx);
        let mut signals =
            signal_hook::iterator::Signals::new([libc::SIGCHLD]).map_err(ReaperError::Signal)?;
        let r = reaper.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                // Children may have exited before the handler was installed.
                r.reap_all();
                for _ in signals.forever() {
                    r.reap_all();
                }
            })
            .map_err(ReaperError::Thread)?;
        Ok((reaper, rx))
    }

    /// [`Reaper::start`] without the reaping thread: the returned
    /// [`Sigchld`] becomes readable on every `SIGCHLD`, and
    /// [`Sigchld::reap`] then reaps without blocking.
    pub fn start_polled() -> Result<(Reaper, Receiver<Exit>, Sigchld), ReaperError> {
        set_subreaper()?;
        let (tx, rx) = mpsc::channel();
        let reaper = Reaper::unregistered(tx);
        let (read, write) = UnixStream::pair().map_err(ReaperError::Signal)?;
        read.set_nonblocking(true).map_err(ReaperError::Signal)?;
        // The handler writes one byte per signal, never blocking (signal-hook
        // makes its end non-blocking); a full socket already says "reap".
        signal_hook::low_level::pipe::register(libc::SIGCHLD, write)
            .map_err(ReaperError::Signal)?;
        Ok((reaper.clone(), rx, Sigchld { read, reaper }))
    }

    fn unregistered(sink: Sender<Exit>) -> Reaper {
        Reaper {
            inner: Arc::new(Mutex::new(Inner {
                watches: HashMap::new(),
                sink,
            })),
            orphans: Arc::new(AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, ReaperError> {
        self.inner.lock().map_err(|_| ReaperError::Poisoned)
    }

    /// Spawn `cmd` and watch its exit. The reaping thread holds the same
    /// lock while it calls `waitpid`, so between fork and registration no
    /// one can reap the child (std's own error-path `waitpid` stays valid).
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child, ReaperError> {
        let mut inner = self.lock()?;
        let child = cmd.spawn().map_err(|source| ReaperError::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let pid = child.id() as i32;
        let (tx, rx) = mpsc::channel();
        inner.watches.insert(pid, tx);
        drop(inner);
        Ok(Child::new(pid, rx))
    }

    /// How many exits went to the sink (container processes and orphans).
    pub fn unclaimed_count(&self) -> u64 {
        self.orphans.load(Ordering::Relaxed)
    }

    /// Reap every child that has exited; called on each SIGCHLD.
    pub fn reap_all(&self) {
        let Ok(mut inner) = self.lock() else {
            log::error!("msg=\"reaper lock poisoned; children left unreaped\"");
            return;
        };
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("msg=\"waitpid failed\" error={}", robust_logfmt::quote(e));
                    break;
                }
                Ok(st) => st,
            };
            let (pid, status) = match st {
                WaitStatus::Exited(pid, code) => (pid.as_raw(), ExitStatus::Code(code)),
                WaitStatus::Signaled(pid, sig, _) => (pid.as_raw(), ExitStatus::Signal(sig as i32)),
                // Stopped/continued children are not exits.
                _ => continue,
            };
            if let Some(tx) = inner.watches.remove(&pid) {
                let _ = tx.send(status);
                continue;
            }
            self.orphans.fetch_add(1, Ordering::Relaxed);
            let exit = Exit {
                pid,
                status,
                at: std::time::SystemTime::now(),
            };
            if inner.sink.send(exit).is_err() {
                log::debug!("msg=\"reaped child nobody listens for\" pid={pid} status={status}");
            }
        }
    }
}

/// The reaper's `SIGCHLD` as a readable fd (see [`Reaper::start_polled`]).
pub struct Sigchld {
    read: UnixStream,
    reaper: Reaper,
}

impl AsFd for Sigchld {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Sigchld {
    /// Take the pending signals and reap every child that exited. Also
    /// right after start: children may have exited before the handler.
    pub fn reap(&self) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.read).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Drained (or the write end is gone: reaping still helps).
                _ => break,
            }
        }
        self.reaper.reap_all();
    }
}

fn set_subreaper() -> Result<(), ReaperError> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| ReaperError::Subreaper(std::io::Error::from(e)))
}

#[cfg(test)]
mod tests;
