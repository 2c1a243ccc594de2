//! Container stdio: pipes between the runtime and containerd's FIFOs, and
//! the pseudo-terminal received over a console socket.
//!
//! Nothing here may block the shim: output FIFOs are opened read-write
//! (which never waits for a peer), the stdin FIFO is opened non-blocking,
//! and every copy is a task of the daemon's one event loop
//! (`crate::event_loop`) watching its fds together with a stop eventfd, so
//! `CloseIO`, an exit or a shutdown always ends it, and no process costs a
//! thread.
//!
//! An output copy ends at EOF, which normally comes when the process exits.
//! A background child that inherited the process's stdout (`sleep 60 &`)
//! keeps the pipe (or the pty slave) open after that exit: the copy then
//! drains for at most `timeouts.io_drain` after the exit and stops, closing
//! containerd's FIFO so its client sees the end of the output.
//!
//! `copy` holds the copies (splice between pipes, a buffer for a terminal)
//! and their drain, `console` the socket the runtime sends a terminal over.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::{Error, Result};

mod console;
mod copy;
#[cfg(test)]
mod tests;

pub use console::ConsoleSocket;
use copy::{spawn_copy_in, spawn_copy_out, Drain};

/// The stdio paths of a process as containerd gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Stdio being prepared for one runtime `create` or `exec`.
pub struct Prepared {
    /// What the runtime gets as its stdio.
    pub runtime: robust_runtime::Stdio,
    /// The console socket when a terminal was asked for.
    pub console: Option<ConsoleSocket>,
    io: Io,
}

/// The live stdio of a process.
pub struct Io {
    stop_stdin: Option<Arc<EventFd>>,
    master: Mutex<Option<Arc<OwnedFd>>>,
    /// The process's ends of its pipes, kept for a later runtime call than
    /// the one that created it (a runtime that takes a container's stdio at
    /// its start); dropped at the exit, so the copies end.
    for_start: Mutex<Option<robust_runtime::Stdio>>,
    /// Shared with the output copies: tells them the process exited.
    drain: Arc<Drain>,
}

impl Prepared {
    /// Keep the process's stdio for its start instead of giving it to the
    /// runtime call that creates it ([`Io::take_for_start`]).
    pub fn keep_for_start(&mut self) -> Result<()> {
        let stdio = std::mem::take(&mut self.runtime);
        *self
            .io
            .for_start
            .lock()
            .map_err(|_| Error::poisoned("stdio"))? = Some(stdio);
        Ok(())
    }

    /// For a terminal: receive the pty master the runtime sent and start
    /// copying through it. Without one this just hands over the copies.
    pub fn finish(mut self, paths: &StdioPaths, id: &str, timeout: Duration) -> Result<Io> {
        if let Some(console) = self.console.take() {
            let master = Arc::new(console.receive(id, timeout)?);
            if !paths.stdout.is_empty() {
                let out = open_output(&paths.stdout)?;
                let src = File::from(
                    master
                        .as_fd()
                        .try_clone_to_owned()
                        .map_err(io("dup pty master"))?,
                );
                spawn_copy_out(src, out, self.io.drain.clone())?;
            }
            if !paths.stdin.is_empty() {
                let dst = File::from(
                    master
                        .as_fd()
                        .try_clone_to_owned()
                        .map_err(io("dup pty master"))?,
                );
                let stop = Arc::new(eventfd()?);
                spawn_copy_in(&paths.stdin, dst, stop.clone(), id)?;
                self.io.stop_stdin = Some(stop);
            }
            *self.io.master.lock().map_err(|_| Error::poisoned("pty"))? = Some(master);
        }
        Ok(self.io)
    }
}

impl Io {
    /// The stdio kept by [`Prepared::keep_for_start`], once.
    pub fn take_for_start(&self) -> Option<robust_runtime::Stdio> {
        self.for_start.lock().ok().and_then(|mut s| s.take())
    }

    /// Close the process's stdin (CloseIO): the container reads EOF.
    pub fn close_stdin(&self) {
        if let Some(stop) = &self.stop_stdin {
            let _ = stop.write(1);
        }
    }

    /// Resize the terminal. Returns false when there is none: the process
    /// never had one, or it was released at the exit.
    pub fn resize(&self, width: u32, height: u32) -> Result<bool> {
        let guard = self.master.lock().map_err(|_| Error::poisoned("pty"))?;
        let Some(master) = guard.as_ref() else {
            return Ok(false);
        };
        crate::pty::set_size(master, width, height).map_err(io("resize pty"))?;
        Ok(true)
    }

    /// After the process exited: stop waiting for stdin, release the
    /// terminal, and start the output copies' drain: they end at EOF or
    /// `io_drain` from now, whichever comes first.
    pub fn finish_after_exit(&self) {
        self.close_stdin();
        // Never started (its start failed, or it was killed before): its
        // ends of the pipes close here, so the copies see EOF.
        drop(self.take_for_start());
        if let Ok(mut m) = self.master.lock() {
            // Output through the pty ends when the last slave closes; the
            // output copy holds its own duplicate of the master.
            m.take();
        }
        let _ = self.drain.exited.write(1);
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Nobody tracks the process any more: its copies drain and stop.
        self.close_stdin();
        let _ = self.drain.exited.write(1);
    }
}

pub(super) fn io(context: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Io(format!("{context}: {e}"))
}

pub(super) fn eventfd() -> Result<EventFd> {
    EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| Error::Io(format!("create eventfd: {e}")))
}

/// Set up stdio for process `eid` (empty for the init) of container `id`
/// before the runtime call. `drain`: how long output is still copied after
/// the process exited (`timeouts.io_drain`).
pub fn prepare(paths: &StdioPaths, id: &str, eid: &str, drain: Duration) -> Result<Prepared> {
    let mut io_state = Io {
        stop_stdin: None,
        master: Mutex::new(None),
        for_start: Mutex::new(None),
        drain: Arc::new(Drain::new(id, eid, drain)?),
    };
    let mut runtime = robust_runtime::Stdio::default();
    if paths.terminal {
        let console = ConsoleSocket::new()?;
        return Ok(Prepared {
            runtime,
            console: Some(console),
            io: io_state,
        });
    }
    if !paths.stdin.is_empty() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::Io(format!("create stdin pipe: {e}")))?;
        let stop = Arc::new(eventfd()?);
        spawn_copy_in(&paths.stdin, File::from(w), stop.clone(), id)?;
        io_state.stop_stdin = Some(stop);
        runtime.stdin = Some(r);
    }
    for (path, slot) in [
        (&paths.stdout, &mut runtime.stdout),
        (&paths.stderr, &mut runtime.stderr),
    ] {
        if path.is_empty() {
            continue;
        }
        let out = open_output(path)?;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::Io(format!("create output pipe: {e}")))?;
        spawn_copy_out(File::from(r), out, io_state.drain.clone())?;
        *slot = Some(w);
    }
    Ok(Prepared {
        runtime,
        console: None,
        io: io_state,
    })
}

/// Open an output destination: a FIFO path (read-write, so it never waits
/// for a reader) or a `file://` URI (created, appended to).
fn open_output(uri: &str) -> Result<File> {
    if let Some(rest) = uri.strip_prefix("file://") {
        let p = Path::new(rest);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io("create log directory"))?;
        }
        return OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .map_err(|e| Error::Io(format!("open output {uri}: {e}")));
    }
    if uri.starts_with("binary://") {
        return Err(Error::Unimplemented(format!(
            "stdio uri {uri}: binary:// logging is not supported"
        )));
    }
    let path = uri.strip_prefix("fifo://").unwrap_or(uri);
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::Io(format!("open output fifo {path}: {e}")))
}
