//! OOM notifications for all containers of the shim, from one thread.
//!
//! * cgroup v1: an `eventfd` is registered with the memory controller by
//!   writing `"<eventfd> <fd of memory.oom_control>"` to
//!   `cgroup.event_control`; the kernel signals the eventfd on every OOM of
//!   the cgroup, and once more when the cgroup is removed.
//! * cgroup v2: an inotify watch on `memory.events`; an OOM is reported when
//!   its `oom_kill` counter increases. A second watch on `cgroup.events`
//!   notices the cgroup becoming empty (the kernel sends no inotify event when
//!   a cgroup directory is removed).
//!
//! Every such fd is registered in one epoll instance. [`OomWatcher::new`]
//! serves it from a background thread that blocks in `epoll_wait` and is
//! woken through an extra eventfd when the watcher is dropped;
//! [`OomWatcher::polled`] leaves the waiting to the caller (the daemon's
//! event loop watches the epoll fd itself and calls
//! [`OomEvents::dispatch`] when it is readable), so no thread is needed.
//!
//! What is watched per cgroup version, and what an event means, is in
//! `source`.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use nix::errno::Errno;
use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::cgroup::{Cgroup, CgroupVersion};
use crate::error::CgroupError;

mod source;
#[cfg(test)]
mod tests;

use source::{process, watch_path, watch_v1, watch_v2, Source};

/// epoll token of the wake-up eventfd; watches use tokens from 1 upwards.
const WAKE_TOKEN: u64 = 0;

/// Watches containers' cgroups for OOM kills and sends the container id
/// to a channel for each one.
///
/// One instance (and one thread) serves the whole shim. Dropping it stops
/// the thread and closes every fd.
#[derive(Debug)]
pub struct OomWatcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    epoll: Epoll,
    wake: EventFd,
    shutdown: AtomicBool,
    running: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_token: u64,
    by_token: HashMap<u64, Watch>,
    by_id: HashMap<String, u64>,
}

#[derive(Debug)]
struct Watch {
    container_id: String,
    source: Source,
}

impl OomWatcher {
    /// Starts the watcher thread. The id of a container is sent to `sink`
    /// each time one of its processes is OOM-killed.
    pub fn new(sink: Sender<String>) -> Result<OomWatcher, CgroupError> {
        let shared = Shared::new()?;
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("oom-watcher".into())
            .spawn(move || run(&thread_shared, &sink))
            .map_err(|e| CgroupError::Sys {
                op: "spawn oom-watcher thread",
                path: PathBuf::new(),
                source: e
                    .raw_os_error()
                    .map_or(Errno::UnknownErrno, Errno::from_raw),
            })?;
        Ok(OomWatcher {
            shared,
            thread: Some(thread),
        })
    }

    /// The watcher without its thread: the caller waits until
    /// [`OomEvents`] (an epoll fd) is readable and then calls
    /// [`OomEvents::dispatch`], which never blocks.
    pub fn polled(sink: Sender<String>) -> Result<(OomWatcher, OomEvents), CgroupError> {
        let shared = Shared::new()?;
        let events = OomEvents {
            shared: Arc::clone(&shared),
            sink,
        };
        Ok((
            OomWatcher {
                shared,
                thread: None,
            },
            events,
        ))
    }

    /// Starts reporting OOM kills in `cgroup` as `container_id`.
    ///
    /// Watching an id again replaces its previous watch.
    pub fn watch(&self, container_id: &str, cgroup: &Cgroup) -> Result<(), CgroupError> {
        if !self.shared.running.load(Ordering::SeqCst) {
            return Err(CgroupError::WatcherStopped);
        }
        let source = match cgroup.version() {
            CgroupVersion::V1 => watch_v1(cgroup)?,
            CgroupVersion::V2 => watch_v2(cgroup)?,
        };
        let mut state = self.shared.lock();
        if let Some(old) = state.by_id.remove(container_id) {
            if let Some(w) = state.by_token.remove(&old) {
                let _ = self.shared.epoll.delete(w.source.fd());
            }
        }
        let token = state.next_token;
        state.next_token += 1;
        // Registered while holding the lock: the thread cannot see an event
        // for this token before the watch is in the table.
        self.shared
            .epoll
            .add(source.fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|e| CgroupError::Sys {
                op: "epoll_ctl",
                path: watch_path(&source).to_path_buf(),
                source: e,
            })?;
        state.by_token.insert(
            token,
            Watch {
                container_id: container_id.to_owned(),
                source,
            },
        );
        state.by_id.insert(container_id.to_owned(), token);
        log::debug!("watching OOM events of {container_id}");
        Ok(())
    }

    /// Stops watching `container_id`; unknown ids are ignored.
    pub fn unwatch(&self, container_id: &str) {
        let mut state = self.shared.lock();
        if let Some(token) = state.by_id.remove(container_id) {
            if let Some(w) = state.by_token.remove(&token) {
                let _ = self.shared.epoll.delete(w.source.fd());
            }
        }
    }

    /// Whether `container_id` is currently watched. A watch goes away on
    /// [`unwatch`](Self::unwatch) and when its cgroup disappears.
    pub fn is_watching(&self, container_id: &str) -> bool {
        self.shared.lock().by_id.contains_key(container_id)
    }
}

impl Drop for OomWatcher {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Err(e) = self.shared.wake.write(1) {
            log::warn!("cannot wake the OOM watcher thread: {e}");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn new() -> Result<Arc<Shared>, CgroupError> {
        let sys = |op| {
            move |source| CgroupError::Sys {
                op,
                path: PathBuf::new(),
                source,
            }
        };
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys("epoll_create1"))?;
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(sys("eventfd"))?;
        epoll
            .add(&wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN))
            .map_err(sys("epoll_ctl"))?;
        Ok(Arc::new(Shared {
            epoll,
            wake,
            shutdown: AtomicBool::new(false),
            running: AtomicBool::new(true),
            state: Mutex::new(State {
                next_token: WAKE_TOKEN + 1,
                ..State::default()
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only plain maps behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The OOM events of a [`polled`](OomWatcher::polled) watcher: an fd that
/// is readable when something is to be dispatched. Clones share it.
#[derive(Debug, Clone)]
pub struct OomEvents {
    shared: Arc<Shared>,
    sink: Sender<String>,
}

impl AsFd for OomEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.epoll.0.as_fd()
    }
}

impl OomEvents {
    /// Handle what is ready, without blocking. False once the watcher was
    /// dropped (or its epoll failed): stop polling then.
    pub fn dispatch(&self) -> bool {
        let mut events = [EpollEvent::empty(); 32];
        loop {
            match step(&self.shared, &self.sink, &mut events, PollTimeout::ZERO) {
                Step::Idle => return true,
                Step::Handled(n) if n < events.len() => return true,
                Step::Handled(_) => {}
                Step::Stop => {
                    self.shared.running.store(false, Ordering::SeqCst);
                    return false;
                }
            }
        }
    }
}

enum Step {
    /// Nothing was ready.
    Idle,
    /// This many events were handled.
    Handled(usize),
    /// Shut down, or epoll failed.
    Stop,
}

/// The watcher thread.
fn run(shared: &Shared, sink: &Sender<String>) {
    let mut events = [EpollEvent::empty(); 32];
    while !matches!(
        step(shared, sink, &mut events, PollTimeout::NONE),
        Step::Stop
    ) {}
    shared.running.store(false, Ordering::SeqCst);
}

/// Wait up to `timeout` for events and handle them.
fn step(
    shared: &Shared,
    sink: &Sender<String>,
    events: &mut [EpollEvent],
    timeout: PollTimeout,
) -> Step {
    let n = loop {
        match shared.epoll.wait(events, timeout) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::error!("OOM watcher: epoll_wait failed, stopping: {e}");
                return Step::Stop;
            }
        }
    };
    if shared.shutdown.load(Ordering::SeqCst) {
        return Step::Stop;
    }
    if n == 0 {
        return Step::Idle;
    }
    let mut reports = Vec::new();
    {
        let mut state = shared.lock();
        for ev in &events[..n] {
            let token = ev.data();
            if token == WAKE_TOKEN {
                let _ = shared.wake.read();
                continue;
            }
            // Already unwatched (event raced with unwatch): nothing to do.
            let Some(watch) = state.by_token.get_mut(&token) else {
                continue;
            };
            let outcome = process(&mut watch.source);
            if outcome.report {
                reports.push(watch.container_id.clone());
            }
            if outcome.remove {
                log::debug!(
                    "cgroup of {} is gone, no longer watching it",
                    watch.container_id
                );
                if let Some(w) = state.by_token.remove(&token) {
                    let _ = shared.epoll.delete(w.source.fd());
                    if state.by_id.get(&w.container_id) == Some(&token) {
                        state.by_id.remove(&w.container_id);
                    }
                }
            }
        }
    }
    for id in reports {
        log::info!("OOM event for container {id}");
        if sink.send(id).is_err() {
            log::warn!("OOM event receiver is gone");
        }
    }
    Step::Handled(n)
}
