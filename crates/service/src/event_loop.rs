//! One epoll loop for every file descriptor of the daemon that waits: the
//! stdio copies of every process, the reaper's SIGCHLD, the OOM watches, the
//! ttrpc listener and its connections, and the daemon's signals.
//!
//! Before it, each of these had a thread of its own (three per process for
//! stdio, five or more per ttrpc connection); the daemon now has one loop
//! thread, and threads only where something may block: the RPC workers
//! (a runtime call), the exit and OOM handlers (they take the service's
//! locks) and the event publisher (a containerd that does not answer).
//! `docs/benchmarks.md` lists every thread.
//!
//! A [`Task`] owns its file descriptors and says which it waits on
//! ([`Cx::watch`]) and until when ([`Cx::set_deadline`]); the loop calls
//! [`Task::run`] when one is ready or the deadline passed, and drops the
//! task (closing what it owns) once it returns [`Poll::Done`]. Nothing a
//! task does may block: every fd is non-blocking, and a task that has
//! something slow to do hands it to a thread.
//!
//! Interest is level-triggered ([`Interest::Read`], [`Interest::Write`]):
//! a task that stops wanting an fd unwatches it (an fd left registered with
//! no interest would still report a hangup, for ever). A task that moves a
//! stream between two fds watches its source [`Interest::ReadEdge`] and its
//! destination [`Interest::WriteEdge`] instead: it then hears of every
//! change of either side without re-registering anything (no `epoll_ctl`
//! per chunk), and must go on until its reads or writes say `EAGAIN` (or
//! ask for an immediate rerun with a deadline of now).
//!
//! The daemon runs the process-wide loop ([`global`]) on its main thread
//! ([`EventLoop::claim`], then [`EventLoop::run_until`]). Anywhere else
//! (unit tests, a program that never claims it) the first task added starts
//! a thread that runs it.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use robust_cleanup::logfmt::quote;

#[cfg(test)]
mod tests;

/// Which of its fds a task means (it picks the numbers).
pub type Key = u8;

/// Token of the loop's own wake-up eventfd; tasks' tokens are
/// `id << 8 | key` with ids from 1.
const WAKER: u64 = 0;

/// What a task waits for on one fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
    /// Edge-triggered: reported once each time reading becomes possible
    /// (or the fd hangs up).
    ReadEdge,
    /// Edge-triggered: reported once each time writing becomes possible.
    WriteEdge,
}

impl Interest {
    fn flags(self) -> EpollFlags {
        match self {
            Interest::Read => EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
            Interest::Write => EpollFlags::EPOLLOUT,
            Interest::ReadEdge => {
                EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET
            }
            Interest::WriteEdge => EpollFlags::EPOLLOUT | EpollFlags::EPOLLET,
        }
    }
}

/// Why a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Just added: register what it waits for.
    Start,
    /// The fd it watches under `key` is ready (or hung up, or failed: the
    /// next read or write says which).
    Ready(Key),
    /// Its deadline passed.
    Deadline,
}

/// What a task wants after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    Pending,
    /// Finished: the loop unregisters its fds and drops it.
    Done,
}

/// Something the loop drives.
pub trait Task: Send {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll;
}

/// What the loop knows of a task between runs.
#[derive(Default)]
struct Meta {
    /// Registered fds: key, fd, interest.
    fds: Vec<(Key, RawFd, Interest)>,
    deadline: Option<Instant>,
}

/// A task's view of the loop while it runs.
pub struct Cx<'a> {
    why: Why,
    now: Instant,
    id: u64,
    epoll: &'a Epoll,
    meta: &'a mut Meta,
    spawned: &'a mut Vec<Box<dyn Task>>,
}

impl Cx<'_> {
    pub fn why(&self) -> Why {
        self.why
    }

    /// When the loop woke up for this run.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Wait for `interest` on `fd`, known to the task as `key` (registered,
    /// or its interest changed). An fd epoll cannot wait on (a regular
    /// file) gives `EPERM`.
    pub fn watch(&mut self, key: Key, fd: BorrowedFd<'_>, interest: Interest) -> nix::Result<()> {
        let raw = fd.as_raw_fd();
        let token = (self.id << 8) | u64::from(key);
        let mut ev = EpollEvent::new(interest.flags(), token);
        match self.meta.fds.iter_mut().find(|e| e.0 == key) {
            Some(e) if e.1 == raw => {
                if e.2 != interest {
                    self.epoll.modify(fd, &mut ev)?;
                    e.2 = interest;
                }
            }
            Some(e) => {
                // The key now means another fd: drop the old one first.
                let old = e.1;
                delete(self.epoll, old);
                self.epoll.add(fd, ev)?;
                if let Some(e) = self.meta.fds.iter_mut().find(|e| e.0 == key) {
                    *e = (key, raw, interest);
                }
            }
            None => {
                self.epoll.add(fd, ev)?;
                self.meta.fds.push((key, raw, interest));
            }
        }
        Ok(())
    }

    /// Stop waiting on the fd of `key` (no-op when it is not watched).
    /// Call it before closing that fd.
    pub fn unwatch(&mut self, key: Key) {
        if let Some(i) = self.meta.fds.iter().position(|e| e.0 == key) {
            let (_, fd, _) = self.meta.fds.swap_remove(i);
            delete(self.epoll, fd);
        }
    }

    /// Whether the fd of `key` is watched, and for what.
    pub fn watched(&self, key: Key) -> Option<Interest> {
        self.meta.fds.iter().find(|e| e.0 == key).map(|e| e.2)
    }

    /// Run again at `at` (replacing any earlier deadline), or never.
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        self.meta.deadline = at;
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.meta.deadline
    }

    /// Add another task; it starts right after this run.
    pub fn spawn(&mut self, task: Box<dyn Task>) {
        self.spawned.push(task);
    }
}

/// Unregister `fd`. Only called for an fd a live task still owns.
#[allow(unsafe_code)]
fn delete(epoll: &Epoll, fd: RawFd) {
    // SAFETY: `fd` was registered by a task that owns it and has not been
    // dropped yet (the loop unregisters a finished task's fds before it
    // drops the task, and a task unwatches an fd before closing it), so it
    // is open for the duration of this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = epoll.delete(fd);
}

struct Slot {
    /// `None` while the task runs (taken out of its slot).
    task: Option<Box<dyn Task>>,
    meta: Meta,
}

#[derive(Default)]
struct Core {
    next_id: u64,
    slots: HashMap<u64, Slot>,
}

const NOT_RUN: u8 = 0;
const CLAIMED: u8 = 1;

struct Shared {
    epoll: Epoll,
    waker: EventFd,
    core: Mutex<Core>,
    runner: AtomicU8,
}

/// A handle on an event loop; clones share it.
#[derive(Clone)]
pub struct EventLoop {
    shared: Arc<Shared>,
}

impl EventLoop {
    pub fn new() -> std::io::Result<EventLoop> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let waker = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(&waker, EpollEvent::new(EpollFlags::EPOLLIN, WAKER))?;
        Ok(EventLoop {
            shared: Arc::new(Shared {
                epoll,
                waker,
                core: Mutex::new(Core {
                    next_id: 1,
                    slots: HashMap::new(),
                }),
                runner: AtomicU8::new(NOT_RUN),
            }),
        })
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        // A task that panicked is dropped under the catch in `drive`; the
        // map itself stays consistent.
        self.shared.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Say that the caller will run this loop ([`run_until`](Self::run_until)):
    /// adding a task then starts no thread for it. False if it was claimed
    /// already.
    pub fn claim(&self) -> bool {
        self.shared
            .runner
            .compare_exchange(NOT_RUN, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Add a task; its first run (`Why::Start`) happens here, on the
    /// caller's thread.
    pub fn add(&self, task: Box<dyn Task>) -> std::io::Result<()> {
        if self.claim() {
            let lp = self.clone();
            std::thread::Builder::new()
                .name("event-loop".into())
                .stack_size(256 * 1024)
                .spawn(move || lp.run_until(|| false, None))?;
        }
        {
            let mut core = self.core();
            start(&self.shared.epoll, &mut core, task, Instant::now());
        }
        // Its deadline may be the nearest now.
        self.wake();
        Ok(())
    }

    /// Make `run_until` look at its condition (and the deadlines) again.
    pub fn wake(&self) {
        let _ = self.shared.waker.write(1);
    }

    /// How many tasks are registered (tests and logs).
    pub fn task_count(&self) -> usize {
        self.core().slots.len()
    }

    /// Run the loop on this thread until `done()` says so; `done` is asked
    /// after every wake-up ([`wake`](Self::wake), an fd, a deadline), and at
    /// least every `tick` when one is given.
    pub fn run_until(&self, mut done: impl FnMut() -> bool, tick: Option<Duration>) {
        let shared = &*self.shared;
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            if done() {
                return;
            }
            let next = self
                .core()
                .slots
                .values()
                .filter_map(|s| s.meta.deadline)
                .min();
            let now = Instant::now();
            let mut wait = next.map(|d| d.saturating_duration_since(now));
            if let Some(t) = tick {
                wait = Some(wait.map_or(t, |w| w.min(t)));
            }
            let n = match shared.epoll.wait(&mut events, timeout(wait)) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    // Nothing here can fix a broken epoll; keep the daemon
                    // answering what it can without spinning.
                    log::error!("msg=\"event loop: epoll_wait failed\" error={}", quote(e));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let now = Instant::now();
            let mut core = self.core();
            for ev in &events[..n] {
                let token = ev.data();
                if token == WAKER {
                    let _ = shared.waker.read();
                    continue;
                }
                let (id, key) = (token >> 8, (token & 0xff) as Key);
                drive(&shared.epoll, &mut core, id, Why::Ready(key), now);
            }
            let due: Vec<u64> = core
                .slots
                .iter()
                .filter(|(_, s)| s.meta.deadline.is_some_and(|d| d <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                if let Some(s) = core.slots.get_mut(&id) {
                    s.meta.deadline = None;
                }
                drive(&shared.epoll, &mut core, id, Why::Deadline, now);
            }
        }
    }
}

fn timeout(wait: Option<Duration>) -> EpollTimeout {
    match wait {
        None => EpollTimeout::NONE,
        Some(w) => {
            // Round up: waking just before a deadline would spin.
            let ms = w.as_micros().div_ceil(1000).min(i32::MAX as u128 - 1) as i32;
            EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::MAX)
        }
    }
}

/// Give `task` an id and its first run.
fn start(epoll: &Epoll, core: &mut Core, task: Box<dyn Task>, now: Instant) {
    let id = core.next_id;
    core.next_id += 1;
    core.slots.insert(
        id,
        Slot {
            task: Some(task),
            meta: Meta::default(),
        },
    );
    drive(epoll, core, id, Why::Start, now);
}

/// Run task `id` once; a task that finished (or panicked) is unregistered
/// and dropped, and the tasks it spawned start.
fn drive(epoll: &Epoll, core: &mut Core, id: u64, why: Why, now: Instant) {
    // Gone (finished earlier in this batch), or running (not possible on
    // one thread, but never run a task twice at once).
    let Some(mut task) = core.slots.get_mut(&id).and_then(|s| s.task.take()) else {
        return;
    };
    let mut spawned = Vec::new();
    let poll = {
        let Some(slot) = core.slots.get_mut(&id) else {
            return;
        };
        let mut cx = Cx {
            why,
            now,
            id,
            epoll,
            meta: &mut slot.meta,
            spawned: &mut spawned,
        };
        // One task's bug ends that task, not the loop every other copy,
        // connection and exit depends on.
        match std::panic::catch_unwind(AssertUnwindSafe(|| task.run(&mut cx))) {
            Ok(p) => p,
            Err(why) => {
                log::error!(
                    "msg=\"event loop task panicked; dropped\" panic={}",
                    quote(crate::error::panic_message(&*why))
                );
                Poll::Done
            }
        }
    };
    match poll {
        Poll::Pending => {
            if let Some(slot) = core.slots.get_mut(&id) {
                slot.task = Some(task);
            }
        }
        Poll::Done => {
            if let Some(slot) = core.slots.remove(&id) {
                for (_, fd, _) in &slot.meta.fds {
                    delete(epoll, *fd);
                }
            }
            drop(task);
        }
    }
    for t in spawned {
        start(epoll, core, t, now);
    }
}

/// The daemon's loop. Creating it can fail only when the process is out of
/// file descriptors.
pub fn global() -> std::io::Result<&'static EventLoop> {
    static GLOBAL: OnceLock<EventLoop> = OnceLock::new();
    static INIT: Mutex<()> = Mutex::new(());
    if let Some(lp) = GLOBAL.get() {
        return Ok(lp);
    }
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lp) = GLOBAL.get() {
        return Ok(lp);
    }
    let lp = EventLoop::new()?;
    Ok(GLOBAL.get_or_init(|| lp))
}

/// A task that calls `f(&fd)` whenever `fd` is readable (and once at the
/// start), for as long as `f` returns true (the reaper's SIGCHLD, the OOM
/// watcher's epoll, the daemon's signals).
pub struct OnReadable<F, Fd> {
    fd: Fd,
    f: F,
}

impl<F, Fd> OnReadable<F, Fd>
where
    F: FnMut(&Fd) -> bool + Send,
    Fd: AsFd + Send,
{
    pub fn new(fd: Fd, f: F) -> OnReadable<F, Fd> {
        OnReadable { fd, f }
    }
}

impl<F, Fd> Task for OnReadable<F, Fd>
where
    F: FnMut(&Fd) -> bool + Send,
    Fd: AsFd + Send,
{
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        if cx.why() == Why::Start {
            if let Err(e) = cx.watch(0, self.fd.as_fd(), Interest::Read) {
                log::error!(
                    "msg=\"event loop: cannot watch an fd\" fd={} error={}",
                    self.fd.as_fd().as_raw_fd(),
                    quote(e)
                );
                return Poll::Done;
            }
        }
        // Also at the start: what happened before it was watched.
        if (self.f)(&self.fd) {
            Poll::Pending
        } else {
            Poll::Done
        }
    }
}

/// OOM notifications of every container, watched from the loop: the
/// watcher's own epoll fd is one fd of this loop.
pub fn watch_ooms(
    sink: std::sync::mpsc::Sender<String>,
) -> Result<robust_cgroups::OomWatcher, robust_cgroups::CgroupError> {
    let loop_error = |e: std::io::Error| robust_cgroups::CgroupError::Sys {
        op: "add the OOM watcher to the event loop",
        path: std::path::PathBuf::new(),
        source: e
            .raw_os_error()
            .map_or(Errno::UnknownErrno, Errno::from_raw),
    };
    let (watcher, events) = robust_cgroups::OomWatcher::polled(sink)?;
    let lp = global().map_err(loop_error)?;
    lp.add(Box::new(OnReadable::new(events, |e| e.dispatch())))
        .map_err(loop_error)?;
    Ok(watcher)
}
