use super::*;
use std::os::unix::process::CommandExt;
use std::time::Duration;

// The reaper is process-wide (one SIGCHLD handler, waitpid(-1)), so all
// checks share one instance.
fn reaper() -> &'static (Reaper, Mutex<Receiver<Exit>>) {
    static R: std::sync::OnceLock<(Reaper, Mutex<Receiver<Exit>>)> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let (r, rx) = Reaper::start().expect("start reaper");
        (r, Mutex::new(rx))
    })
}

#[test]
fn spawned_child_exit_code_is_delivered() {
    let (r, _) = reaper();
    let mut c = r.spawn(Command::new("sh").args(["-c", "exit 3"])).unwrap();
    let (st, killed) = c.wait_or_kill(Duration::from_secs(10));
    assert_eq!(st, ExitStatus::Code(3));
    assert!(!killed);
}

#[test]
fn hung_child_is_killed_with_its_group() {
    let (r, _) = reaper();
    let mut cmd = Command::new("sh");
    // The grandchild sleeps too; killing the group must take it as well.
    cmd.args(["-c", "sleep 100 & echo $! > /dev/null; sleep 100"])
        .process_group(0);
    let mut c = r.spawn(&mut cmd).unwrap();
    let start = std::time::Instant::now();
    let (st, killed) = c.wait_or_kill(Duration::from_millis(200));
    assert!(killed);
    assert_eq!(st, ExitStatus::Signal(libc::SIGKILL));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn missing_binary_is_a_spawn_error_naming_it() {
    let (r, _) = reaper();
    let err = r
        .spawn(&mut Command::new("/nonexistent/robust-test-binary"))
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/robust-test-binary"),
        "{err}"
    );
}

#[test]
fn orphans_go_to_the_sink() {
    let (r, rx) = reaper();
    // sh starts a background sleep and exits; the sleep is re-parented to
    // us (subreaper) and its exit must reach the sink.
    let mut c = r
        .spawn(
            Command::new("sh")
                .args(["-c", "sleep 0.2 & echo $!"])
                .stdout(std::process::Stdio::null()),
        )
        .unwrap();
    let (st, _) = c.wait_or_kill(Duration::from_secs(10));
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rx = rx.lock().unwrap();
    let mut seen = false;
    while std::time::Instant::now() < deadline {
        if let Ok(exit) = rx.recv_timeout(Duration::from_millis(100)) {
            if exit.status == ExitStatus::Code(0) {
                seen = true;
                break;
            }
        }
    }
    assert!(seen, "orphaned sleep was not reaped into the sink");
    assert!(r.unclaimed_count() >= 1);
}

#[test]
fn exit_status_codes() {
    assert_eq!(ExitStatus::Code(7).code(), 7);
    assert_eq!(ExitStatus::Signal(9).code(), 137);
}

const POLLED_CHILD_ENV: &str = "ROBUST_REAPER_POLLED_CHILD";

/// The polled reaper, in a process of its own (a second reaper in this
/// test process would race the shared one for `waitpid(-1)`): the test
/// binary runs itself with only `polled_reaper_child` selected.
#[test]
fn polled_reaper_delivers_spawned_and_orphan_exits() {
    // Spawned through this process's reaper, which reaps every child here.
    let (r, _) = reaper();
    let out = std::env::temp_dir().join(format!("robust-reaper-polled-{}", std::process::id()));
    let file = std::fs::File::create(&out).unwrap();
    let mut child = r
        .spawn(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "tests::polled_reaper_child", "--nocapture"])
                .env(POLLED_CHILD_ENV, "1")
                .stdout(file.try_clone().unwrap())
                .stderr(file),
        )
        .unwrap();
    let (status, killed) = child.wait_or_kill(Duration::from_secs(30));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    assert!(
        !killed,
        "the polled reaper child did not finish within 30 s: {text}"
    );
    assert!(status.success(), "{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run: {text}"
    );
}

/// Not a real test: the body of the child of the test above. Without the
/// environment variable it does nothing.
#[test]
fn polled_reaper_child() {
    use nix::poll::{poll, PollFd, PollFlags};
    if std::env::var_os(POLLED_CHILD_ENV).is_none() {
        return;
    }
    let (r, rx, sigchld) = Reaper::start_polled().unwrap();
    // One thread polls the fd, as the daemon's loop does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let poller = std::thread::spawn(move || {
        sigchld.reap();
        while !stop2.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(sigchld.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, 50u16).unwrap_or(0) > 0 {
                sigchld.reap();
            }
        }
    });
    let mut c = r.spawn(Command::new("sh").args(["-c", "exit 7"])).unwrap();
    assert_eq!(
        c.wait_or_kill(Duration::from_secs(10)),
        (ExitStatus::Code(7), false)
    );
    let mut c = r
        .spawn(
            Command::new("sh")
                .args(["-c", "(sleep 0.1; exit 5) & exit 0"])
                .stdout(std::process::Stdio::null()),
        )
        .unwrap();
    assert_eq!(
        c.wait_or_kill(Duration::from_secs(10)),
        (ExitStatus::Code(0), false)
    );
    let orphan = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(orphan.status, ExitStatus::Code(5));
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
}
