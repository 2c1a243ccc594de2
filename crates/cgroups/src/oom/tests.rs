//! The watcher against real cgroups (as root), and its errors.

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
    let kills = crate::parse::parse_flat_keyed(&oom_control)
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

/// The polled watcher reports the same OOM as the threaded one, when its fd
/// says so, and stops once dropped; no thread of its own.
#[test]
fn polled_watcher_reports_when_its_fd_is_readable_and_stops_when_dropped() {
    use nix::poll::{poll, PollFd, PollFlags};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("memory.events"), "oom 0\noom_kill 0\n").unwrap();
    fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    let (tx, rx) = mpsc::channel();
    let (w, events) = OomWatcher::polled(tx).unwrap();
    w.watch("c3", &Cgroup::from_v2_path(d)).unwrap();
    // Nothing ready: dispatch returns at once, nothing reported.
    assert!(events.dispatch());
    assert!(rx.try_recv().is_err());

    fs::write(d.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
    let readable = |ms: u16| {
        let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, ms).unwrap() == 1
    };
    assert!(readable(5000), "the epoll fd never became readable");
    assert!(events.dispatch());
    assert_eq!(rx.try_recv().unwrap(), "c3");

    drop(w);
    assert!(readable(5000), "dropping the watcher must wake its poller");
    assert!(!events.dispatch(), "a dropped watcher stops its poller");
}
