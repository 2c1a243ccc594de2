//! The copies of a process's stdio, as tasks of the daemon's event loop
//! (`crate::event_loop`): output to containerd's FIFOs until EOF or
//! `io_drain` after the exit, stdin from its FIFO until EOF, `CloseIO` or
//! the exit. Every fd is non-blocking, so neither ever blocks the shim: a
//! destination nobody reads only stops its own copy, and the process
//! writing to it then blocks on its full pipe (memory stays flat).
//!
//! Between two pipes (containerd's FIFOs are pipes, and so is the pipe the
//! shim gives the process) the bytes move with splice(2): the kernel hands
//! the pages from one pipe to the other and the shim never copies them. A
//! terminal is no pipe: its copies fall back to read and write through a
//! buffer (and so does a `file://` log opened for appending).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{splice, SpliceFFlags};
use nix::sys::eventfd::EventFd;
use robust_cleanup::logfmt::quote;

use super::{eventfd, io};
use crate::error::{Error, Result};
use crate::event_loop::{self, Cx, Interest, Poll, Task, Why};

/// Most one splice or read moves (a pipe holds 64 KiB by default).
const CHUNK: usize = 1 << 20;
/// Buffer of a copy that cannot splice (a terminal).
const BUFFER: usize = 32 * 1024;
/// Moves per run of a copy: then the loop serves the others, and comes
/// back (the fd is still ready: interest is level-triggered).
const BUDGET: usize = 16;

/// Keys of a copy's fds in the loop.
const SRC: u8 = 0;
const DST: u8 = 1;
/// The exit (output copies) or `CloseIO` (stdin).
const SIGNAL: u8 = 2;

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

/// How an output copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyEnd {
    /// EOF (or EIO: the pty's last slave closed), or an error.
    Done,
    /// The drain bound after the exit passed with the source still open.
    Bound,
}

/// The end of a copy, for whoever waits for it (the tests; the service
/// never waits for a copy).
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct Finished<T> {
    outcome: Arc<Outcome<T>>,
}

struct Outcome<T> {
    /// `Some(None)`: the copy ended without a result (it panicked).
    value: Mutex<Option<Option<T>>>,
    ended: Condvar,
}

#[cfg_attr(not(test), allow(dead_code))]
impl<T> Finished<T> {
    /// Wait until the copy ended and its fds are closed.
    pub(super) fn join(self) -> Result<T> {
        let mut v = self
            .outcome
            .value
            .lock()
            .map_err(|_| Error::poisoned("copy"))?;
        loop {
            if let Some(end) = v.take() {
                return end
                    .ok_or_else(|| Error::Internal("the copy ended without a result".into()));
            }
            v = self
                .outcome
                .ended
                .wait(v)
                .map_err(|_| Error::poisoned("copy"))?;
        }
    }
}

/// Publishes a copy's result when the copy is dropped: declared last in
/// each copy, so the fds it owned are closed by then.
struct Report<T> {
    outcome: Arc<Outcome<T>>,
    value: Option<T>,
}

fn report<T>() -> (Report<T>, Finished<T>) {
    let outcome = Arc::new(Outcome {
        value: Mutex::new(None),
        ended: Condvar::new(),
    });
    (
        Report {
            outcome: outcome.clone(),
            value: None,
        },
        Finished { outcome },
    )
}

impl<T> Drop for Report<T> {
    fn drop(&mut self) {
        if let Ok(mut v) = self.outcome.value.lock() {
            *v = Some(self.value.take());
        }
        self.outcome.ended.notify_all();
    }
}

/// What one move did.
enum Moved {
    /// Bytes delivered to the destination (0: progress without delivery).
    Bytes(usize),
    Eof,
    /// Nothing to read now.
    SrcEmpty,
    /// The destination takes nothing now.
    DstFull,
    /// One of the two (splice does not say which; the edges of both sides
    /// bring the copy back, and `unread_bytes` of the source tells).
    Blocked,
    /// An error ended the copy (EIO: the pty's last slave closed).
    Failed(String),
}

/// Moves bytes from a source to a destination without blocking: splice
/// between pipes, read and write through a buffer otherwise.
enum Mover {
    Splice,
    Buffer {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    },
}

impl Mover {
    fn step(&mut self, src: &File, dst: &File) -> Moved {
        match self {
            Mover::Splice => {
                let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
                match splice(src, None, dst, None, CHUNK, flags) {
                    Ok(0) => Moved::Eof,
                    Ok(n) => Moved::Bytes(n),
                    Err(Errno::EINTR) => Moved::Bytes(0),
                    Err(Errno::EAGAIN) => Moved::Blocked,
                    // Not two pipes (a terminal), or an appending file.
                    Err(Errno::EINVAL) => {
                        *self = Mover::Buffer {
                            buf: vec![0; BUFFER],
                            start: 0,
                            end: 0,
                        };
                        Moved::Bytes(0)
                    }
                    Err(e) => Moved::Failed(format!("splice: {e}")),
                }
            }
            Mover::Buffer { buf, start, end } => {
                if *start < *end {
                    return match (&*dst).write(&buf[*start..*end]) {
                        Ok(0) => Moved::Failed("write-zero".into()),
                        Ok(w) => {
                            *start += w;
                            Moved::Bytes(w)
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => Moved::DstFull,
                        Err(e) if e.kind() == ErrorKind::Interrupted => Moved::Bytes(0),
                        Err(e) => Moved::Failed(format!("write: {e}")),
                    };
                }
                match (&*src).read(buf) {
                    Ok(0) => Moved::Eof,
                    Ok(n) => {
                        (*start, *end) = (0, n);
                        Moved::Bytes(0)
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Moved::SrcEmpty,
                    Err(e) if e.kind() == ErrorKind::Interrupted => Moved::Bytes(0),
                    Err(e) => Moved::Failed(format!("read: {e}")),
                }
            }
        }
    }
}

/// Add `task` to the daemon's loop.
fn start(task: Box<dyn Task>) -> Result<()> {
    event_loop::global()
        .and_then(|lp| lp.add(task))
        .map_err(io("start a stdio copy"))
}

/// Copy `src` (the process's pipe, or its terminal) to `dst` (containerd's
/// FIFO or log file) until EOF, or until `io_drain` after the exit.
pub(super) fn spawn_copy_out(src: File, dst: File, drain: Arc<Drain>) -> Result<Finished<CopyEnd>> {
    let exited = drain
        .exited
        .as_fd()
        .try_clone_to_owned()
        .map_err(io("dup the exit eventfd"))?;
    let (report, finished) = report();
    start(Box::new(CopyOut {
        src,
        dst,
        exited: Some(exited),
        drain,
        mover: Mover::Splice,
        dst_pollable: true,
        dst_fifo: false,
        stop_at: None,
        reader: None,
        copied: 0,
        report,
    }))?;
    Ok(finished)
}

/// The copy run to its end, on the loop (tests).
#[cfg(test)]
pub(super) fn copy_out(src: File, dst: File, drain: &Arc<Drain>) -> CopyEnd {
    spawn_copy_out(src, dst, drain.clone())
        .and_then(Finished::join)
        .unwrap_or(CopyEnd::Done)
}

struct CopyOut {
    src: File,
    dst: File,
    /// A duplicate of the drain's eventfd (the stdout and stderr copies of
    /// one process wait on it together; epoll takes an fd once), until the
    /// exit is seen.
    exited: Option<OwnedFd>,
    drain: Arc<Drain>,
    mover: Mover,
    /// False for a regular file (epoll refuses it; it never blocks).
    dst_pollable: bool,
    dst_fifo: bool,
    /// `io_drain` after the exit.
    stop_at: Option<Instant>,
    /// After EOF: bytes still in the FIFO wait for a reader until then.
    reader: Option<(Instant, Duration)>,
    copied: u64,
    report: Report<CopyEnd>,
}

impl CopyOut {
    fn begin(&mut self, cx: &mut Cx<'_>) -> Poll {
        for (f, what) in [(&self.src, "source"), (&self.dst, "output")] {
            if let Err(e) = set_nonblocking(f) {
                log::debug!(
                    "msg=\"{what} stays blocking\" id={} exec_id={} error={}",
                    self.drain.cid,
                    self.drain.eid,
                    quote(e)
                );
            }
        }
        if let Ok(m) = self.dst.metadata() {
            self.dst_pollable = !m.file_type().is_file();
            self.dst_fifo = m.file_type().is_fifo();
        }
        if let Some(exited) = &self.exited {
            if let Err(e) = cx.watch(SIGNAL, exited.as_fd(), Interest::Read) {
                // Without it the copy still ends at EOF, only not at the
                // bound: say so.
                log::warn!(
                    "msg=\"output copy cannot watch the exit; it ends at EOF only\" id={} exec_id={} error={}",
                    self.drain.cid,
                    self.drain.eid,
                    quote(e)
                );
            }
        }
        // Both sides edge-triggered: the copy hears of data and of room
        // without re-registering either (epoll reports an fd that is ready
        // already as soon as it is added).
        let mut watched = cx.watch(SRC, self.src.as_fd(), Interest::ReadEdge);
        if self.dst_pollable {
            watched = watched.and_then(|()| cx.watch(DST, self.dst.as_fd(), Interest::WriteEdge));
        }
        if let Err(e) = watched {
            return self.ended(cx, CopyEnd::Done, &format!("watch: {e}"));
        }
        Poll::Pending
    }

    /// Move bytes until one side says `EAGAIN` (its next edge brings the
    /// copy back) or the budget of this run is spent (then it runs again
    /// at once, after the loop served the others).
    fn pump(&mut self, cx: &mut Cx<'_>) -> Poll {
        if self.stop_at.is_some_and(|t| cx.now() >= t) {
            return self.ended(cx, CopyEnd::Bound, "drain-bound");
        }
        for _ in 0..BUDGET {
            match self.mover.step(&self.src, &self.dst) {
                Moved::Bytes(n) => self.copied += n as u64,
                Moved::Eof => return self.ended(cx, CopyEnd::Done, "eof"),
                Moved::Failed(why) => return self.ended(cx, CopyEnd::Done, &quote(why)),
                Moved::DstFull if !self.dst_pollable => {
                    return self.ended(cx, CopyEnd::Done, "write-would-block")
                }
                Moved::SrcEmpty | Moved::DstFull | Moved::Blocked => {
                    cx.set_deadline(self.stop_at);
                    return Poll::Pending;
                }
            }
        }
        cx.set_deadline(Some(cx.now()));
        Poll::Pending
    }

    fn ended(&mut self, cx: &mut Cx<'_>, end: CopyEnd, why: &str) -> Poll {
        log::debug!(
            "msg=\"output copy ended\" id={} exec_id={} bytes={} end={why}",
            self.drain.cid,
            self.drain.eid,
            self.copied
        );
        if end == CopyEnd::Bound {
            self.drain.bound_hit();
        }
        self.report.value = Some(end);
        cx.unwatch(SRC);
        cx.unwatch(DST);
        cx.unwatch(SIGNAL);
        self.exited = None;
        if end == CopyEnd::Done && self.dst_fifo {
            self.reader = Some((cx.now() + self.drain.bound, Duration::from_millis(1)));
            return self.wait_for_reader(cx);
        }
        Poll::Done
    }

    /// Before the shim closes a FIFO it wrote to, the bytes still in it
    /// must have a reader: the shim holds the FIFO open read-write (so it
    /// never waits for a reader to open), and a FIFO whose last descriptor
    /// closes drops what it holds. A client opens its read end when it gets
    /// to it (containerd's fifo library opens it from a goroutine), which
    /// under load can come after a short process's exit: `ctr run -t ...
    /// tty` then printed nothing. So wait, for `io_drain` at most, until
    /// the FIFO is empty.
    fn wait_for_reader(&mut self, cx: &mut Cx<'_>) -> Poll {
        let Some((until, pause)) = self.reader else {
            return Poll::Done;
        };
        let unread = unread_bytes(&self.dst);
        if unread == 0 {
            return Poll::Done;
        }
        let now = cx.now();
        if now >= until {
            log::warn!(
                "msg=\"output not read by anyone within io_drain; dropped\" id={} exec_id={} bytes={unread} io_drain={:?}",
                self.drain.cid,
                self.drain.eid,
                self.drain.bound
            );
            return Poll::Done;
        }
        cx.set_deadline(Some(now + pause.min(until - now)));
        self.reader = Some((until, (pause * 2).min(Duration::from_millis(50))));
        Poll::Pending
    }
}

impl Task for CopyOut {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        if self.reader.is_some() {
            return self.wait_for_reader(cx);
        }
        match cx.why() {
            Why::Start => self.begin(cx),
            Why::Ready(SIGNAL) => {
                // The process exited: from now on the copy ends at EOF or
                // at the bound, whichever comes first.
                let at = cx.now() + self.drain.bound;
                self.stop_at = Some(at);
                if cx.deadline().is_none() {
                    cx.set_deadline(Some(at));
                }
                cx.unwatch(SIGNAL);
                self.exited = None;
                Poll::Pending
            }
            Why::Ready(_) | Why::Deadline => self.pump(cx),
        }
    }
}

/// Copy the stdin FIFO at `path` to `dst` (the process's pipe, or its
/// terminal) until EOF, or until `stop` (CloseIO, the exit) and what the
/// FIFO still holds was handed over.
pub(super) fn spawn_copy_in(
    path: &str,
    dst: File,
    stop: Arc<EventFd>,
    id: &str,
) -> Result<Finished<()>> {
    let path = path.strip_prefix("fifo://").unwrap_or(path).to_string();
    // Non-blocking open of the read side never waits for the writer; epoll
    // reports nothing until a writer has come and data or a hangup arrives.
    let src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::Io(format!("open stdin fifo {path}: {e}")))?;
    let (report, finished) = report();
    start(Box::new(CopyIn {
        src,
        dst,
        stop,
        mover: Mover::Splice,
        closing: false,
        writer_came: false,
        id: id.to_string(),
        report,
    }))?;
    Ok(finished)
}

struct CopyIn {
    src: File,
    dst: File,
    stop: Arc<EventFd>,
    mover: Mover,
    /// CloseIO (or the exit) came: hand over what the FIFO holds, then end.
    closing: bool,
    /// The FIFO reported something: a writer came. Before that a read says
    /// EOF (no writer) and means nothing, so the copy reads only after it
    /// (or after CloseIO).
    writer_came: bool,
    id: String,
    report: Report<()>,
}

impl CopyIn {
    /// As the output copy's pump: until `EAGAIN` on a side, or the budget.
    fn pump(&mut self, cx: &mut Cx<'_>) -> Poll {
        if !self.writer_came && !self.closing {
            return Poll::Pending;
        }
        for _ in 0..BUDGET {
            match self.mover.step(&self.src, &self.dst) {
                Moved::Bytes(_) => {}
                Moved::Eof => return self.ended(),
                Moved::Failed(why) => {
                    log::debug!(
                        "msg=\"stdin copy ended\" id={} error={}",
                        self.id,
                        quote(why)
                    );
                    return self.ended();
                }
                // The client is done writing and the FIFO is empty.
                Moved::SrcEmpty if self.closing => return self.ended(),
                Moved::Blocked if self.closing && unread_bytes(&self.src) == 0 => {
                    return self.ended()
                }
                Moved::SrcEmpty | Moved::DstFull | Moved::Blocked => return Poll::Pending,
            }
        }
        cx.set_deadline(Some(cx.now()));
        Poll::Pending
    }

    fn ended(&mut self) -> Poll {
        self.report.value = Some(());
        Poll::Done
    }
}

impl Task for CopyIn {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        match cx.why() {
            Why::Start => {
                if let Err(e) = set_nonblocking(&self.dst) {
                    log::debug!(
                        "msg=\"stdin stays blocking\" id={} error={}",
                        self.id,
                        quote(e)
                    );
                }
                let watched = cx
                    .watch(SIGNAL, self.stop.as_fd(), Interest::Read)
                    .and_then(|()| cx.watch(SRC, self.src.as_fd(), Interest::ReadEdge))
                    .and_then(|()| cx.watch(DST, self.dst.as_fd(), Interest::WriteEdge));
                if let Err(e) = watched {
                    log::warn!(
                        "msg=\"stdin copy cannot start\" id={} error={}",
                        self.id,
                        quote(e)
                    );
                    return self.ended();
                }
                Poll::Pending
            }
            Why::Ready(SIGNAL) => {
                // CloseIO (or the exit): the client is done writing, but
                // what it wrote may still sit in the FIFO. Hand that over
                // first; a FIFO no writer ever opened reads as EOF.
                self.closing = true;
                cx.unwatch(SIGNAL);
                self.pump(cx)
            }
            Why::Ready(SRC) => {
                self.writer_came = true;
                self.pump(cx)
            }
            Why::Ready(_) | Why::Deadline => self.pump(cx),
        }
    }
}

/// Bytes in a pipe or FIFO that no reader has taken yet (0 when unknown).
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

fn set_nonblocking(f: &File) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}
