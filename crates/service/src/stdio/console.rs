//! The console socket: a unix socket the runtime connects to and sends the
//! pty master over when a terminal was asked for.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::io;
use crate::error::{Error, Result};

/// A unix socket the runtime connects to and sends the pty master over.
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub(super) fn new() -> Result<ConsoleSocket> {
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
    /// sent it when it returns; an attached exec of a sandbox runtime sends
    /// it while it runs.
    pub(super) fn receive(self, id: &str, timeout: std::time::Duration) -> Result<OwnedFd> {
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
