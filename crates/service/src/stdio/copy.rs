//! The copy threads of a process's stdio: output to containerd's FIFOs
//! until EOF or `io_drain` after the exit, stdin from its FIFO until EOF,
//! `CloseIO` or the exit; neither ever blocks the shim.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;
use robust_cleanup::logfmt::quote;

use super::{eventfd, io};
use crate::error::{Error, Result};

/// What the output copies of one process share: the signal that the
/// process exited, and how long they may drain after it.
pub(super) struct Drain {
    pub(super) exited: EventFd,
    bound: Duration,
    cid: String,
    eid: String,
    /// The bound was hit and logged (once per process, not per copy).
    pub(super) warned: AtomicBool,
}

impl Drain {
    pub(super) fn new(cid: &str, eid: &str, bound: Duration) -> Result<Drain> {
        Ok(Drain {
            exited: eventfd()?,
            bound,
            cid: cid.to_string(),
            eid: eid.to_string(),
            warned: AtomicBool::new(false),
        })
    }

    fn bound_hit(&self) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                "msg=\"output still open after the process exited (a background process holds it); stopped copying\" id={} exec_id={} io_drain={:?}",
                self.cid,
                self.eid,
                self.bound
            );
        }
    }
}

pub(super) fn spawn_copy_out(src: File, dst: File, drain: Arc<Drain>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("copy-out".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if copy_out(src, dst, &drain) == CopyEnd::Bound {
                drain.bound_hit();
            }
        })
        .map_err(io("start output copy thread"))
}

/// How an output copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyEnd {
    /// EOF (or EIO: the pty's last slave closed), or an error.
    Done,
    /// The drain bound after the exit passed with the source still open.
    Bound,
}

/// The poll timeout until `deadline` (none: wait for ever).
fn poll_timeout(deadline: Option<Instant>) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Round up: a wake-up just before the deadline would spin.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Wait until `fd` has `events`, the process exits (which starts the
/// drain: `deadline` is set) or the deadline passes. Returns false once the
/// deadline has passed.
fn wait_for(
    fd: std::os::fd::BorrowedFd<'_>,
    events: PollFlags,
    drain: &Drain,
    deadline: &mut Option<Instant>,
) -> bool {
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let mut fds = [
            PollFd::new(fd, events),
            PollFd::new(drain.exited.as_fd(), PollFlags::POLLIN),
        ];
        // Once the drain runs, the exit no longer needs watching.
        let n = if deadline.is_some() { 1 } else { 2 };
        match poll(&mut fds[..n], poll_timeout(*deadline)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            // Cannot wait: let the caller's read or write decide.
            Err(_) => return true,
        }
        if n == 2 && fds[1].revents().is_some_and(|r| !r.is_empty()) {
            *deadline = Some(Instant::now() + drain.bound);
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return true;
        }
    }
}

/// Copy `src` to `dst` until EOF, or until `io_drain` after the exit. The
/// destination is written non-blocking, so a client that stopped reading
/// holds the copy only until that bound too.
pub(super) fn copy_out(mut src: File, mut dst: File, drain: &Drain) -> CopyEnd {
    if let Err(e) = set_nonblocking(&dst) {
        log::debug!(
            "msg=\"output stays blocking\" id={} exec_id={} error={q_error}",
            drain.cid,
            drain.eid,
            q_error = quote(e)
        );
    }
    let mut copied = 0u64;
    let (end, why) = copy_loop(&mut src, &mut dst, drain, &mut copied);
    log::debug!(
        "msg=\"output copy ended\" id={} exec_id={} bytes={copied} end={why}",
        drain.cid,
        drain.eid,
    );
    if end == CopyEnd::Done {
        wait_for_reader(&dst, drain);
    }
    end
}

/// Before the shim closes a FIFO it wrote to, the bytes still in it must
/// have a reader: the shim holds the FIFO open read-write (so it never waits
/// for a reader to open), and a FIFO whose last descriptor closes drops what
/// it holds. A client opens its read end when it gets to it (containerd's
/// fifo library opens it from a goroutine), which under load can come after a
/// short process's exit: `ctr run -t ... tty` then printed nothing. So wait,
/// for `io_drain` at most, until the FIFO is empty.
fn wait_for_reader(dst: &File, drain: &Drain) {
    let is_fifo = dst.metadata().is_ok_and(|m| m.file_type().is_fifo());
    if !is_fifo {
        return;
    }
    let deadline = Instant::now() + drain.bound;
    let mut pause = Duration::from_millis(1);
    loop {
        let unread = unread_bytes(dst);
        if unread == 0 {
            return;
        }
        if Instant::now() >= deadline {
            log::warn!(
                "msg=\"output not read by anyone within io_drain; dropped\" id={} exec_id={} bytes={unread} io_drain={:?}",
                drain.cid,
                drain.eid,
                drain.bound
            );
            return;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Bytes written to a FIFO that no reader has taken yet (0 when unknown).
#[allow(unsafe_code)]
fn unread_bytes(f: &File) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid
    // for the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    if r < 0 {
        0
    } else {
        n.max(0) as usize
    }
}

fn copy_loop(src: &mut File, dst: &mut File, drain: &Drain, copied: &mut u64) -> (CopyEnd, String) {
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if !wait_for(src.as_fd(), PollFlags::POLLIN, drain, &mut deadline) {
            return (CopyEnd::Bound, "drain-bound".into());
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return (CopyEnd::Done, "eof".into()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {
                continue
            }
            // EIO: the pty's last slave closed.
            Err(e) => return (CopyEnd::Done, quote(format!("read: {e}"))),
        };
        let mut out = &buf[..n];
        while !out.is_empty() {
            match dst.write(out) {
                Ok(0) => return (CopyEnd::Done, "write-zero".into()),
                Ok(w) => {
                    out = &out[w..];
                    *copied += w as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !wait_for(dst.as_fd(), PollFlags::POLLOUT, drain, &mut deadline) {
                        return (CopyEnd::Bound, "drain-bound".into());
                    }
                }
                Err(e) => return (CopyEnd::Done, quote(format!("write: {e}"))),
            }
        }
    }
}

fn set_nonblocking(f: &File) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

pub(super) fn spawn_copy_in(
    path: &str,
    dst: File,
    stop: Arc<EventFd>,
    id: &str,
) -> Result<JoinHandle<()>> {
    let path = path.strip_prefix("fifo://").unwrap_or(path).to_string();
    // Non-blocking open of the read side never waits for the writer; poll
    // reports nothing until a writer has come and data or a hangup arrives.
    let src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::Io(format!("open stdin fifo {path}: {e}")))?;
    let id = id.to_string();
    std::thread::Builder::new()
        .name("copy-in".into())
        .stack_size(64 * 1024)
        .spawn(move || copy_in(src, dst, &stop, &id))
        .map_err(io("start stdin copy thread"))
}

fn copy_in(mut src: File, mut dst: File, stop: &EventFd, id: &str) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = [
            PollFd::new(src.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            // CloseIO (or the exit): the client is done writing, but what it
            // wrote may still sit in the FIFO. Hand that over first.
            drain(&mut src, &mut dst, &mut buf);
            break;
        }
        if fds[0].revents().is_none_or(|r| r.is_empty()) {
            continue;
        }
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = dst.write_all(&buf[..n]) {
                    log::debug!(
                        "msg=\"stdin copy ended\" id={id} error={q_error}",
                        q_error = quote(&e)
                    );
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Copy what is buffered in the non-blocking `src` to `dst`, up to EOF or
/// until it would block.
fn drain(src: &mut File, dst: &mut File, buf: &mut [u8]) {
    loop {
        match src.read(buf) {
            Ok(0) => return,
            Ok(n) => {
                if dst.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
