//! The ttrpc server of the Task API, on the daemon's event loop.
//!
//! ttrpc's own sync server runs, per connection, a handler thread, a reader,
//! a writer and a pool of at least two workers, plus a listener and a
//! reaper thread: containerd opens a connection per task, so a pod daemon
//! ran five threads or more per container. Here the listener and every
//! connection are tasks of the event loop (accept, read and frame requests,
//! never blocking), and each request runs on the RPC [`pool`]: as many
//! threads as calls in flight, one idle. The generated handlers of
//! `containerd-shim-protos` are used as they are; a handler's response
//! comes back through the channel of its `TtrpcContext` and the worker
//! writes it to the connection (one frame at a time per connection).
//!
//! What stays as with ttrpc's server: a hung call (a runtime that does not
//! answer) holds only its own thread, and a panic fails only its own call
//! (the service contains it, and the worker catches what escapes). What
//! differs: an unknown method answers UNIMPLEMENTED, as containerd's Go
//! ttrpc server does, and a request that cannot be decoded answers
//! INVALID_ARGUMENT instead of closing the connection.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, MsgFlags};
use robust_cleanup::logfmt::quote;
use robust_service::event_loop::{Cx, EventLoop, Interest, Poll, Task, Why};
use ttrpc::proto::{
    Codec, MessageHeader, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_REQUEST,
};
use ttrpc::{Code, ConnectionContext, MethodHandler, Request, Response, Status, TtrpcContext};

pub mod pool;

#[cfg(test)]
mod tests;

use pool::Pool;

/// The services' methods by path (`/service/method`).
pub type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;

/// How long writing one response may wait for containerd to read: a
/// client that stops reading loses its connection, not a thread.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads per run of a connection before the loop serves the others.
const READS_PER_RUN: usize = 8;
/// After accept fails for lack of fds: wait this long before trying again
/// (a level-triggered listener would otherwise spin).
const ACCEPT_RETRY: Duration = Duration::from_millis(500);

/// What every connection shares.
struct Shared {
    methods: Methods,
    pool: Pool,
}

/// Serve `methods` on `listener` from `lp`; requests run on `pool`.
pub fn serve(
    lp: &EventLoop,
    listener: OwnedFd,
    methods: Methods,
    pool: Pool,
) -> std::io::Result<()> {
    let listener = UnixListener::from(listener);
    listener.set_nonblocking(true)?;
    lp.add(Box::new(Listener {
        listener,
        shared: Arc::new(Shared { methods, pool }),
    }))
}

struct Listener {
    listener: UnixListener,
    shared: Arc<Shared>,
}

impl Task for Listener {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        if matches!(cx.why(), Why::Start | Why::Deadline) {
            if let Err(e) = cx.watch(0, self.listener.as_fd(), Interest::Read) {
                log::error!(
                    "msg=\"ttrpc: cannot watch the listening socket; retrying\" error={}",
                    quote(e)
                );
                cx.set_deadline(Some(cx.now() + ACCEPT_RETRY));
            }
            return Poll::Pending;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        log::warn!(
                            "msg=\"ttrpc: connection refused: cannot make it non-blocking\" error={}",
                            quote(e)
                        );
                        continue;
                    }
                    cx.spawn(Box::new(Connection::new(stream, self.shared.clone())));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Poll::Pending,
                Err(e)
                    if e.kind() == ErrorKind::Interrupted
                        || e.raw_os_error() == Some(libc::ECONNABORTED) =>
                {
                    continue
                }
                Err(e) => {
                    // Out of fds (or memory): containerd retries; try again
                    // later rather than spin on a listener that stays ready.
                    log::warn!(
                        "msg=\"ttrpc: accept failed; retrying\" retry={ACCEPT_RETRY:?} error={}",
                        quote(e)
                    );
                    cx.unwatch(0);
                    cx.set_deadline(Some(cx.now() + ACCEPT_RETRY));
                    return Poll::Pending;
                }
            }
        }
    }
}

/// The writing side of a connection, shared by the loop (which reads) and
/// the workers answering its calls; the socket closes when the last of
/// them lets go, so a worker never writes to a reused fd.
struct Out {
    stream: UnixStream,
    /// One frame at a time.
    write: Mutex<()>,
}

impl Out {
    /// Write one frame, waiting for room up to [`WRITE_TIMEOUT`].
    fn write_frame(&self, mh: MessageHeader, payload: &[u8]) {
        let mut frame: Vec<u8> = mh.into();
        frame.extend_from_slice(payload);
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let mut sent = 0;
        while sent < frame.len() {
            match send(
                self.stream.as_raw_fd(),
                &frame[sent..],
                MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let ms = left.as_millis().min(i32::MAX as u128) as i32;
                    let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLOUT)];
                    let ready = match poll(
                        &mut fds,
                        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                    ) {
                        Ok(n) => n > 0,
                        Err(Errno::EINTR) => true,
                        Err(_) => false,
                    };
                    if !ready && Instant::now() >= deadline {
                        log::warn!(
                            "msg=\"ttrpc: the client reads no responses; connection closed\" stream={} timeout={WRITE_TIMEOUT:?}",
                            mh.stream_id
                        );
                        // The loop sees the hangup and drops the connection.
                        let _ = self.stream.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
                Err(e) => {
                    // The client went away; the loop notices it too.
                    log::debug!(
                        "msg=\"ttrpc: response not sent\" stream={} error={}",
                        mh.stream_id,
                        quote(e)
                    );
                    return;
                }
            }
        }
    }

    fn respond_status(&self, stream_id: u32, status: Status) {
        let mut res = Response::new();
        res.set_status(status);
        match res.encode() {
            Ok(body) => self.write_frame(
                MessageHeader::new_response(stream_id, body.len() as u32),
                &body,
            ),
            Err(e) => log::error!(
                "msg=\"ttrpc: cannot encode a response\" stream={stream_id} error={}",
                quote(e)
            ),
        }
    }
}

/// One client connection: read frames, hand each request to the pool.
struct Connection {
    out: Arc<Out>,
    /// Bytes read and not yet a whole frame.
    buf: Vec<u8>,
    ctx: Arc<ConnectionContext>,
    shared: Arc<Shared>,
}

impl Connection {
    fn new(stream: UnixStream, shared: Arc<Shared>) -> Connection {
        Connection {
            out: Arc::new(Out {
                stream,
                write: Mutex::new(()),
            }),
            buf: Vec::new(),
            ctx: Arc::new(ConnectionContext::default()),
            shared,
        }
    }

    /// Hand every whole frame in `buf` to the pool. False when the client
    /// broke the protocol and the connection is to be closed.
    fn dispatch(&mut self) -> bool {
        let mut at = 0;
        while self.buf.len() - at >= MESSAGE_HEADER_LENGTH {
            let mh = MessageHeader::from(&self.buf[at..at + MESSAGE_HEADER_LENGTH]);
            let len = mh.length as usize;
            if len > MESSAGE_LENGTH_MAX {
                log::warn!(
                    "msg=\"ttrpc: message over the size limit; connection closed\" stream={} length={len} limit={MESSAGE_LENGTH_MAX}",
                    mh.stream_id
                );
                return false;
            }
            let end = at + MESSAGE_HEADER_LENGTH + len;
            if self.buf.len() < end {
                break;
            }
            if mh.type_ == MESSAGE_TYPE_REQUEST {
                let body = self.buf[at + MESSAGE_HEADER_LENGTH..end].to_vec();
                let (out, ctx, shared) = (self.out.clone(), self.ctx.clone(), self.shared.clone());
                self.shared.pool.submit(Box::new(move || {
                    call(&shared.methods, &out, ctx, mh, &body)
                }));
            }
            // Anything else (data of a stream) is no part of the Task API.
            at = end;
        }
        self.buf.drain(..at);
        true
    }
}

impl Task for Connection {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        if cx.why() == Why::Start {
            return match cx.watch(0, self.out.stream.as_fd(), Interest::Read) {
                Ok(()) => Poll::Pending,
                Err(e) => {
                    log::warn!(
                        "msg=\"ttrpc: cannot watch a connection; closed\" error={}",
                        quote(e)
                    );
                    Poll::Done
                }
            };
        }
        let mut chunk = [0u8; 16 * 1024];
        for _ in 0..READS_PER_RUN {
            match (&self.out.stream).read(&mut chunk) {
                Ok(0) => return Poll::Done,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if !self.dispatch() {
                        return Poll::Done;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("msg=\"ttrpc: connection read failed\" error={}", quote(e));
                    return Poll::Done;
                }
            }
        }
        Poll::Pending
    }
}

/// Run one request (on a pool thread) and write its response.
fn call(
    methods: &Methods,
    out: &Out,
    conn: Arc<ConnectionContext>,
    mh: MessageHeader,
    body: &[u8],
) {
    let req = match Request::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return out.respond_status(
                mh.stream_id,
                ttrpc::get_status(Code::INVALID_ARGUMENT, format!("bad request: {e}")),
            )
        }
    };
    let path = format!("/{}/{}", req.service, req.method);
    let Some(method) = methods.get(&path) else {
        return out.respond_status(
            mh.stream_id,
            ttrpc::get_status(Code::UNIMPLEMENTED, format!("{path} is not served here")),
        );
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let ctx = TtrpcContext {
        fd: out.stream.as_raw_fd(),
        cancel_rx: crossbeam_channel::never(),
        mh,
        res_tx: tx,
        metadata: ttrpc::context::from_pb(&req.metadata),
        timeout_nano: req.timeout_nano,
        conn_ctx: conn,
    };
    let handled = std::panic::catch_unwind(AssertUnwindSafe(|| method.handler(ctx, req)));
    // The handler answered through its context (the context, and with it
    // the sender, is gone now: this never waits).
    let mut answered = false;
    while let Ok((h, payload)) = rx.try_recv() {
        out.write_frame(h, &payload);
        answered = true;
    }
    if answered {
        return;
    }
    let status = match handled {
        Ok(Ok(())) => ttrpc::get_status(Code::INTERNAL, format!("{path}: no response")),
        Ok(Err(ttrpc::Error::RpcStatus(s))) => s,
        Ok(Err(e)) => ttrpc::get_status(Code::INVALID_ARGUMENT, format!("{path}: {e}")),
        Err(p) => {
            let why = robust_service::error::panic_message(&*p);
            log::error!(
                "msg=\"shim panicked while serving a request; the daemon keeps serving\" method={path} panic={}",
                quote(&why)
            );
            ttrpc::get_status(
                Code::INTERNAL,
                format!("{path}: the shim failed internally: {why}"),
            )
        }
    };
    out.respond_status(mh.stream_id, status);
}
