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
//! Every such fd is registered in one epoll instance, served by one
//! background thread that blocks in `epoll_wait` and is woken through an
//! extra eventfd when the watcher is dropped.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use nix::errno::Errno;
use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::cgroup::{Cgroup, CgroupVersion};
use crate::error::CgroupError;
use crate::files;
use crate::parse;

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

#[derive(Debug)]
enum Source {
    V1 {
        eventfd: EventFd,
        memory_dir: PathBuf,
    },
    V2 {
        inotify: Inotify,
        memory_events: WatchDescriptor,
        cgroup_events: WatchDescriptor,
        dir: PathBuf,
        last_oom_kill: u64,
    },
}

impl Source {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::V1 { eventfd, .. } => eventfd.as_fd(),
            Source::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

/// What the thread decided after a watch's fd became readable.
#[derive(Debug, Default)]
struct Outcome {
    report: bool,
    remove: bool,
}

impl OomWatcher {
    /// Starts the watcher thread. The id of a container is sent to `sink`
    /// each time one of its processes is OOM-killed.
    pub fn new(sink: Sender<String>) -> Result<OomWatcher, CgroupError> {
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
        let shared = Arc::new(Shared {
            epoll,
            wake,
            shutdown: AtomicBool::new(false),
            running: AtomicBool::new(true),
            state: Mutex::new(State {
                next_token: WAKE_TOKEN + 1,
                ..State::default()
            }),
        });
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
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only plain maps behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn watch_path(source: &Source) -> &Path {
    match source {
        Source::V1 { memory_dir, .. } => memory_dir,
        Source::V2 { dir, .. } => dir,
    }
}

fn watch_v1(cgroup: &Cgroup) -> Result<Source, CgroupError> {
    let dir = cgroup
        .controller_path("memory")
        .ok_or_else(|| CgroupError::MissingController {
            controller: "memory".into(),
        })?;
    if !dir.is_dir() {
        return Err(CgroupError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let eventfd =
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(|source| {
            CgroupError::Sys {
                op: "eventfd",
                path: dir.to_path_buf(),
                source,
            }
        })?;
    let oom_control_path = dir.join("memory.oom_control");
    let oom_control = File::open(&oom_control_path).map_err(|source| CgroupError::Read {
        path: oom_control_path,
        source,
    })?;
    // The kernel keeps its own references to both files; memory.oom_control
    // can be closed right after registration.
    let registration = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
    files::write(&dir.join("cgroup.event_control"), &registration)?;
    Ok(Source::V1 {
        eventfd,
        memory_dir: dir.to_path_buf(),
    })
}

fn watch_v2(cgroup: &Cgroup) -> Result<Source, CgroupError> {
    let dir = cgroup
        .unified_path()
        .ok_or_else(|| CgroupError::MissingController {
            controller: "unified (cgroup v2)".into(),
        })?
        .to_path_buf();
    let sys = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| CgroupError::Sys { op, path, source }
    };
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(sys("inotify_init1", &dir))?;
    let events_path = dir.join("memory.events");
    let memory_events = inotify
        .add_watch(&events_path, AddWatchFlags::IN_MODIFY)
        .map_err(|e| {
            if e == Errno::ENOENT && dir.is_dir() {
                CgroupError::MissingController {
                    controller: "memory".into(),
                }
            } else if e == Errno::ENOENT {
                CgroupError::NotFound { path: dir.clone() }
            } else {
                sys("inotify_add_watch", &events_path)(e)
            }
        })?;
    let cg_events_path = dir.join("cgroup.events");
    let cgroup_events = inotify
        .add_watch(&cg_events_path, AddWatchFlags::IN_MODIFY)
        .map_err(sys("inotify_add_watch", &cg_events_path))?;
    let last_oom_kill = read_oom_kill(&dir).unwrap_or(0);
    Ok(Source::V2 {
        inotify,
        memory_events,
        cgroup_events,
        dir,
        last_oom_kill,
    })
}

/// `oom_kill` from `memory.events`; `None` when unreadable (cgroup gone).
fn read_oom_kill(dir: &Path) -> Option<u64> {
    let text = files::read_optional(&dir.join("memory.events")).ok()??;
    Some(
        parse::parse_flat_keyed(&text)
            .get("oom_kill")
            .copied()
            .unwrap_or(0),
    )
}

/// `populated` from `cgroup.events`; `None` when unreadable (cgroup gone).
fn read_populated(dir: &Path) -> Option<bool> {
    let text = files::read_optional(&dir.join("cgroup.events")).ok()??;
    Some(
        parse::parse_flat_keyed(&text)
            .get("populated")
            .copied()
            .unwrap_or(1)
            != 0,
    )
}

/// The watcher thread.
fn run(shared: &Shared, sink: &Sender<String>) {
    let mut events = [EpollEvent::empty(); 32];
    loop {
        let n = match shared.epoll.wait(&mut events, PollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::error!("OOM watcher: epoll_wait failed, stopping: {e}");
                break;
            }
        };
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
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
    }
    shared.running.store(false, Ordering::SeqCst);
}

fn process(source: &mut Source) -> Outcome {
    match source {
        Source::V1 {
            eventfd,
            memory_dir,
        } => {
            // One read drains the counter; EAGAIN means a spurious wake-up.
            match eventfd.read() {
                Ok(_) => {}
                Err(Errno::EAGAIN) => return Outcome::default(),
                Err(e) => {
                    log::warn!("OOM watcher: read eventfd of {}: {e}", memory_dir.display());
                    return Outcome {
                        report: false,
                        remove: true,
                    };
                }
            }
            // The kernel also signals the eventfd when the cgroup is
            // removed; that is not an OOM.
            if memory_dir.join("memory.oom_control").exists() {
                Outcome {
                    report: true,
                    remove: false,
                }
            } else {
                Outcome {
                    report: false,
                    remove: true,
                }
            }
        }
        Source::V2 {
            inotify,
            memory_events,
            cgroup_events,
            dir,
            last_oom_kill,
        } => {
            let mut outcome = Outcome::default();
            loop {
                let events = match inotify.read_events() {
                    Ok(ev) if !ev.is_empty() => ev,
                    Ok(_) | Err(Errno::EAGAIN) => break,
                    Err(e) => {
                        log::warn!("OOM watcher: read inotify of {}: {e}", dir.display());
                        outcome.remove = true;
                        break;
                    }
                };
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                        outcome.remove = true;
                    } else if ev.wd == *memory_events || ev.wd == *cgroup_events {
                        // Always look at the counter first, so that an OOM
                        // that emptied the cgroup is still reported.
                        match read_oom_kill(dir) {
                            Some(v) if v > *last_oom_kill => {
                                *last_oom_kill = v;
                                outcome.report = true;
                            }
                            Some(_) => {}
                            None => outcome.remove = true,
                        }
                        if ev.wd == *cgroup_events && read_populated(dir) != Some(true) {
                            outcome.remove = true;
                        }
                    }
                }
            }
            outcome
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::process::{Command, Stdio};
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::time::{Duration, Instant};

    const CHILD_ENV: &str = "ROBUST_CGROUPS_OOM_CHILD_PROCS";

    fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        f()
    }

    #[test]
    fn drop_stops_thread() {
        let (tx, _rx) = mpsc::channel();
        let w = OomWatcher::new(tx).unwrap();
        let start = Instant::now();
        drop(w);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn watch_errors() {
        let (tx, _rx) = mpsc::channel();
        let w = OomWatcher::new(tx).unwrap();
        let no_memory = Cgroup::from_v1_paths([("cpu", "/sys/fs/cgroup/cpu")]);
        assert!(matches!(
            w.watch("a", &no_memory),
            Err(CgroupError::MissingController { .. })
        ));
        let gone = Cgroup::from_v1_paths([("memory", "/nonexistent/robust")]);
        assert!(matches!(
            w.watch("b", &gone),
            Err(CgroupError::NotFound { .. })
        ));
        let gone2 = Cgroup::from_v2_path("/nonexistent/robust");
        assert!(matches!(
            w.watch("c", &gone2),
            Err(CgroupError::NotFound { .. })
        ));
        assert!(!w.is_watching("a"));
        w.unwatch("never-watched");
    }

    /// cgroup v2 logic against a fake cgroup directory: plain files on a
    /// normal filesystem raise the same inotify events as cgroupfs.
    #[test]
    fn v2_reports_oom_kill_increase_and_drops_empty_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n",
        )
        .unwrap();
        fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let (tx, rx) = mpsc::channel();
        let w = OomWatcher::new(tx).unwrap();
        w.watch("c2", &Cgroup::from_v2_path(d)).unwrap();
        assert!(w.is_watching("c2"));

        // A modification that does not raise oom_kill is not an OOM.
        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 3\nmax 0\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Timeout)
        );

        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 3\nmax 2\noom 2\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "c2");

        // The cgroup empties: the watch goes away silently.
        fs::write(d.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        assert!(wait_until(Duration::from_secs(5), || !w.is_watching("c2")));
        assert!(rx.try_recv().is_err());

        // Unwatch of a live watch.
        fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        w.watch("c3", &Cgroup::from_v2_path(d)).unwrap();
        w.unwatch("c3");
        assert!(!w.is_watching("c3"));
        fs::write(d.join("memory.events"), "oom_kill 5\n").unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Timeout)
        );
    }

    /// Not a real test: the body of the child process of
    /// `v1_oom_kill_is_reported_once`, which re-executes the test binary
    /// with only this test selected. Without the environment variable it
    /// does nothing.
    #[test]
    fn oom_child_process() {
        let Some(procs) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        fs::write(&procs, std::process::id().to_string()).expect("join the test cgroup");
        let mut hog: Vec<Vec<u8>> = Vec::new();
        // Far beyond the 8 MiB limit; the OOM killer must stop us first.
        for _ in 0..1024 {
            hog.push(vec![0xA5; 1 << 20]);
            std::hint::black_box(&hog);
        }
        panic!("allocated 1 GiB inside an 8 MiB cgroup without being OOM-killed");
    }

    /// A memory cgroup created by the test, removed whatever happens.
    struct TestMemoryCgroup {
        dir: PathBuf,
        child: Option<std::process::Child>,
    }

    impl Drop for TestMemoryCgroup {
        fn drop(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            for _ in 0..100 {
                if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            eprintln!("warning: could not remove {}", self.dir.display());
        }
    }

    fn v1_memory_mount() -> Option<PathBuf> {
        if crate::cgroup::is_unified().unwrap_or(true) {
            return None;
        }
        crate::mountinfo::read_self()
            .into_iter()
            .find(|m| m.fs_type == "cgroup" && m.super_options.iter().any(|o| o == "memory"))
            .map(|m| m.mount_point)
    }

    #[test]
    fn v1_oom_kill_is_reported_once() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping v1_oom_kill_is_reported_once: not root");
            return;
        }
        let Some(mount) = v1_memory_mount() else {
            eprintln!("skipping v1_oom_kill_is_reported_once: no cgroup v1 memory controller");
            return;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = mount.join(format!("robust-test-{}-{nanos:x}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        let mut guard = TestMemoryCgroup {
            dir: dir.clone(),
            child: None,
        };
        let limit = (8u64 << 20).to_string();
        fs::write(dir.join("memory.limit_in_bytes"), &limit).unwrap();
        // With swap the child could page out instead of being killed.
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), &limit);
        }
        let _ = fs::write(dir.join("memory.swappiness"), "0");

        let (tx, rx) = mpsc::channel();
        let watcher = OomWatcher::new(tx).unwrap();
        let cgroup = Cgroup::from_v1_paths([("memory", dir.clone())]);
        watcher.watch("oom-test", &cgroup).unwrap();

        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "oom::tests::oom_child_process",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD_ENV, dir.join("cgroup.procs"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        guard.child = Some(child);

        let got = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(got.as_deref(), Ok("oom-test"), "no OOM event within 30s");

        // The child must have been killed by the OOM killer.
        let child = guard.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "child still running");
            thread::sleep(Duration::from_millis(20));
        };
        guard.child = None;
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "child status {status:?}");
        let oom_control = fs::read_to_string(dir.join("memory.oom_control")).unwrap();
        let kills = parse::parse_flat_keyed(&oom_control)
            .get("oom_kill")
            .copied();
        assert!(kills.is_none() || kills >= Some(1), "{oom_control}");

        // Removing the cgroup signals the eventfd too: that must neither be
        // reported nor keep the watch alive.
        fs::remove_dir(&dir).unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || !watcher.is_watching("oom-test")),
            "watch of a removed cgroup was not dropped"
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(500)),
            Err(RecvTimeoutError::Timeout),
            "more than one OOM event reported"
        );
        drop(watcher);
    }
}
