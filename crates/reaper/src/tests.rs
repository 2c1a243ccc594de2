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
