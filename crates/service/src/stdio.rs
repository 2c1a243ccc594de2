//! Container stdio: pipes between the runtime and containerd's FIFOs, and
//! the pseudo-terminal received over a console socket.
//!
//! Nothing here may block the shim: output FIFOs are opened read-write
//! (which never waits for a peer), the stdin FIFO is opened non-blocking and
//! polled together with a stop eventfd, so `CloseIO`, an exit or a shutdown
//! always ends the copy thread.
//!
//! An output copy ends at EOF, which normally comes when the process exits.
//! A background child that inherited the process's stdout (`sleep 60 &`)
//! keeps the pipe (or the pty slave) open after that exit: the copy then
//! drains for at most `timeouts.io_drain` after the exit and stops, closing
//! containerd's FIFO so its client sees the end of the output.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};

use robust_cleanup::logfmt::quote;

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
    /// Shared with the output copies: tells them the process exited.
    drain: Arc<Drain>,
}

/// What the output copies of one process share: the signal that the
/// process exited, and how long they may drain after it.
struct Drain {
    exited: EventFd,
    bound: Duration,
    cid: String,
    eid: String,
    /// The bound was hit and logged (once per process, not per copy).
    warned: AtomicBool,
}

impl Drain {
    fn new(cid: &str, eid: &str, bound: Duration) -> Result<Drain> {
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

impl Prepared {
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
        if let Ok(mut m) = self.master.lock() {
            // Output through the pty ends when the last slave closes; the
            // copy thread holds its own duplicate of the master.
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

fn io(context: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Io(format!("{context}: {e}"))
}

fn eventfd() -> Result<EventFd> {
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

fn spawn_copy_out(src: File, dst: File, drain: Arc<Drain>) -> Result<JoinHandle<()>> {
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
enum CopyEnd {
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
fn copy_out(mut src: File, mut dst: File, drain: &Drain) -> CopyEnd {
    if let Err(e) = set_nonblocking(&dst) {
        log::debug!(
            "msg=\"output stays blocking\" id={} exec_id={} error={q_error}",
            drain.cid,
            drain.eid,
            q_error = quote(e)
        );
    }
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if !wait_for(src.as_fd(), PollFlags::POLLIN, drain, &mut deadline) {
            return CopyEnd::Bound;
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return CopyEnd::Done,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {
                continue
            }
            // EIO: the pty's last slave closed.
            Err(_) => return CopyEnd::Done,
        };
        let mut out = &buf[..n];
        while !out.is_empty() {
            match dst.write(out) {
                Ok(0) => return CopyEnd::Done,
                Ok(w) => out = &out[w..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !wait_for(dst.as_fd(), PollFlags::POLLOUT, drain, &mut deadline) {
                        return CopyEnd::Bound;
                    }
                }
                Err(e) => {
                    log::debug!(
                        "msg=\"output copy ended\" id={} exec_id={} error={q_error}",
                        drain.cid,
                        drain.eid,
                        q_error = quote(&e)
                    );
                    return CopyEnd::Done;
                }
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

fn spawn_copy_in(path: &str, dst: File, stop: Arc<EventFd>, id: &str) -> Result<JoinHandle<()>> {
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

/// A unix socket the runtime connects to and sends the pty master over.
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new() -> Result<ConsoleSocket> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        // Short path: bundle paths can exceed the 108-byte socket limit.
        let path = std::env::temp_dir().join(format!("robust-pty-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::Io(format!("bind console socket {}: {e}", path.display())))?;
        Ok(ConsoleSocket { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The runtime has returned: its connection waits in the backlog.
    /// Wait up to `timeout` for the runtime's connection: runc has already
    /// sent it when it returns; an attached runsc exec sends it while it runs.
    fn receive(self, id: &str, timeout: std::time::Duration) -> Result<OwnedFd> {
        self.listener
            .set_nonblocking(true)
            .map_err(io("console socket nonblocking"))?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                // SIGCHLD and friends interrupt the wait: keep waiting.
                Err(nix::errno::Errno::EINTR) if ms > 0 => continue,
                _ => break,
            }
        }
        let (stream, _) = self.listener.accept().map_err(|e| {
            Error::Io(format!(
                "{id}: the runtime sent no terminal over the console socket: {e}"
            ))
        })?;
        let mut name = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| Error::Io(format!("{id}: receive pty master: {e}")))?;
        for c in msg
            .cmsgs()
            .map_err(|e| Error::Io(format!("{id}: pty message: {e}")))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                let mut owned: Vec<OwnedFd> = fds.into_iter().map(crate::pty::own_fd).collect();
                if let Some(first) = owned.pop() {
                    return Ok(first);
                }
            }
        }
        Err(Error::Io(format!(
            "{id}: console socket message carried no fd"
        )))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::time::{Duration, Instant};

    /// The runtime may connect after it started (an attached runsc exec):
    /// receive waits for it, through signals, up to its timeout.
    #[test]
    fn console_socket_waits_for_a_late_sender() {
        let sock = ConsoleSocket::new().unwrap();
        let path = sock.path().to_path_buf();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
            let f = std::fs::File::open("/dev/null").unwrap();
            let fds = [f.as_raw_fd()];
            let iov = [std::io::IoSlice::new(b"/dev/null")];
            sendmsg::<()>(
                s.as_raw_fd(),
                &iov,
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )
            .unwrap();
        });
        let t = Instant::now();
        let fd = sock.receive("c1", Duration::from_secs(5)).unwrap();
        assert!(fd.as_raw_fd() >= 0);
        assert!(t.elapsed() >= Duration::from_millis(250));
        sender.join().unwrap();
    }

    /// CloseIO right after the client's last write: everything it wrote
    /// reaches the process (a bug once lost the FIFO's unread tail).
    #[test]
    fn close_stdin_delivers_what_is_still_in_the_fifo() {
        let dir = std::env::temp_dir().join(format!("robust-stdin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("stdin");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let stop = Arc::new(eventfd().unwrap());
        let copier =
            spawn_copy_in(fifo.to_str().unwrap(), File::from(w), stop.clone(), "c1").unwrap();
        // The client writes 100 kB while the process does not read yet: the
        // copy fills the process's pipe and the rest stays in the FIFO. Then
        // the client closes stdin, and only then the process reads.
        let mut wr = OpenOptions::new().write(true).open(&fifo).unwrap();
        wr.write_all(&vec![b'x'; 100_000]).unwrap();
        stop.write(1).unwrap();
        drop(wr);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            File::from(r).read_to_end(&mut got).unwrap();
            got.len()
        });
        copier.join().unwrap();
        assert_eq!(reader.join().unwrap(), 100_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn pipe() -> (File, File) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        (File::from(r), File::from(w))
    }

    fn drain(bound: Duration) -> Arc<Drain> {
        Arc::new(Drain::new("c1", "e1", bound).unwrap())
    }

    /// Reads `r` to EOF on a thread; returns what it got.
    fn collect(mut r: File) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got
        })
    }

    /// A process that writes and exits loses nothing, and its copy ends at
    /// EOF, long before the drain bound.
    #[test]
    fn output_written_before_the_exit_is_all_delivered() {
        let (src_r, mut src_w) = pipe();
        let (dst_r, dst_w) = pipe();
        let d = drain(Duration::from_secs(30));
        let copier = std::thread::spawn({
            let d = d.clone();
            move || copy_out(src_r, dst_w, &d)
        });
        let reader = collect(dst_r);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        src_w.write_all(&data).unwrap();
        drop(src_w); // the process exits: EOF
        d.exited.write(1).unwrap();
        let t = Instant::now();
        assert_eq!(copier.join().unwrap(), CopyEnd::Done);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(reader.join().unwrap(), data);
        assert!(!d.warned.load(Ordering::Relaxed));
    }

    /// A background child keeps the pipe open after the exit: the copy
    /// delivers what was written, then stops at the drain bound, not at
    /// EOF, and closes its destination.
    #[test]
    fn an_open_pipe_after_the_exit_is_drained_for_the_bound_only() {
        let bound = Duration::from_millis(400);
        let (src_r, mut src_w) = pipe();
        let (dst_r, dst_w) = pipe();
        let d = drain(bound);
        let copier = std::thread::spawn({
            let d = d.clone();
            move || {
                let end = copy_out(src_r, dst_w, &d);
                (end, Instant::now())
            }
        });
        let reader = collect(dst_r);
        src_w.write_all(b"before the exit\n").unwrap();
        let exited = Instant::now();
        d.exited.write(1).unwrap();
        let (end, at) = copier.join().unwrap();
        assert_eq!(end, CopyEnd::Bound);
        let took = at.duration_since(exited);
        assert!(took >= bound, "stopped {took:?} after the exit");
        assert!(took < bound + Duration::from_secs(2), "{took:?}");
        // The destination is closed: the reader saw EOF and all the data.
        assert_eq!(reader.join().unwrap(), b"before the exit\n");
        drop(src_w);
    }

    /// Without an exit there is no bound: a source held open keeps the copy
    /// going; the bound only counts from the exit.
    #[test]
    fn the_bound_counts_from_the_exit() {
        let bound = Duration::from_millis(300);
        let (src_r, mut src_w) = pipe();
        let (dst_r, dst_w) = pipe();
        let d = drain(bound);
        let copier = std::thread::spawn({
            let d = d.clone();
            move || (copy_out(src_r, dst_w, &d), Instant::now())
        });
        let reader = collect(dst_r);
        // Longer than the bound, with no exit: the copy still runs and
        // still copies.
        std::thread::sleep(bound * 3);
        assert!(!copier.is_finished());
        src_w.write_all(b"late").unwrap();
        let exited = Instant::now();
        d.exited.write(1).unwrap();
        let (end, at) = copier.join().unwrap();
        assert_eq!(end, CopyEnd::Bound);
        assert!(at.duration_since(exited) >= bound);
        assert_eq!(reader.join().unwrap(), b"late");
    }

    /// A destination nobody reads (a client that went away) holds the copy
    /// only until the drain bound after the exit.
    #[test]
    fn a_destination_nobody_reads_is_given_up_at_the_bound() {
        let bound = Duration::from_millis(300);
        let (src_r, mut src_w) = pipe();
        let (_dst_r, dst_w) = pipe();
        let d = drain(bound);
        let copier = std::thread::spawn({
            let d = d.clone();
            move || copy_out(src_r, dst_w, &d)
        });
        // More than both pipe buffers: the copy blocks on its destination.
        let writer = std::thread::spawn(move || {
            let _ = src_w.write_all(&vec![b'x'; 256 * 1024]);
        });
        d.exited.write(1).unwrap();
        let t = Instant::now();
        assert_eq!(copier.join().unwrap(), CopyEnd::Bound);
        assert!(t.elapsed() < bound + Duration::from_secs(2));
        // The copy closed its source: the writer is not left blocked.
        writer.join().unwrap();
    }

    /// stdout and stderr of one process hitting the bound log one line.
    #[test]
    fn the_bound_is_reported_once_per_process() {
        let d = drain(Duration::from_millis(100));
        let (a_r, _a_w) = pipe();
        let (b_r, _b_w) = pipe();
        let (_x, out_a) = pipe();
        let (_y, out_b) = pipe();
        let h1 = spawn_copy_out(a_r, out_a, d.clone()).unwrap();
        let h2 = spawn_copy_out(b_r, out_b, d.clone()).unwrap();
        d.exited.write(1).unwrap();
        h1.join().unwrap();
        h2.join().unwrap();
        assert!(d.warned.load(Ordering::Relaxed));
    }

    /// A process without a terminal is resized as a no-op.
    #[test]
    fn resize_without_a_terminal_is_a_no_op() {
        let paths = StdioPaths::default();
        let p = prepare(&paths, "c1", "", Duration::from_secs(1)).unwrap();
        let io = p.finish(&paths, "c1", Duration::from_secs(1)).unwrap();
        assert!(!io.resize(80, 24).unwrap());
        io.finish_after_exit();
        assert!(!io.resize(80, 24).unwrap());
    }

    #[test]
    fn console_socket_gives_up_after_its_timeout() {
        let sock = ConsoleSocket::new().unwrap();
        let t = Instant::now();
        let err = sock.receive("c1", Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("sent no terminal"), "{err}");
        assert!(t.elapsed() >= Duration::from_millis(150));
    }
}
