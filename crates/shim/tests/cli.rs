//! The built binary's command line, without containerd: help, usage errors,
//! tolerated unknown flags, and `sweep --state-dir`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_containerd-shim-robust-v2");

/// Run the binary with `args` in `cwd`, killed after 20 s.
fn run(args: &[&str], cwd: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the shim binary");
    let end = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["-h"],
        &["-help"],
        &["help"],
        &["sweep", "--help"],
        &["delete", "--help"],
        &["start", "-h"],
        &["-namespace", "default", "--help"],
    ] {
        let o = run(args, d.path());
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
        assert!(o.stderr.is_empty(), "{args:?}: stderr {}", text(&o.stderr));
        for want in ["Usage:", " sweep ", "--min-age DURATION", "Examples:"] {
            assert!(out.contains(want), "{args:?}: no {want:?} in\n{out}");
        }
    }
    // nothing was created where it ran
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn usage_errors_print_the_usage_on_stderr_and_exit_2() {
    let d = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["--frobnicate"][..],
            "flag provided but not defined: -frobnicate",
        ),
        (
            &["sweep", "--force"],
            "flag provided but not defined: -force",
        ),
        (
            &["sweep", "--all", "--dry-run"],
            "flag provided but not defined: -all",
        ),
        (&["sweep", "--min-age"], "flag -min-age needs a value"),
        (&["-debug=maybe", "sweep"], "flag -debug: invalid boolean"),
        (&["frobnicate"], "unknown action \"frobnicate\""),
    ] {
        let o = run(args, d.path());
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: stdout {}", text(&o.stdout));
        assert!(
            err.starts_with(&format!("containerd-shim-robust-v2: {says}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("Usage:"), "{args:?}: {err}");
    }
}

/// An unknown flag on a line containerd runs is ignored: `delete` goes on
/// to judge its input (here it refuses the id, exit 1, no usage).
#[test]
fn unknown_flags_from_containerd_do_not_break_delete() {
    let d = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "-namespace",
            "default",
            "-address",
            "/run/none.sock",
            "-newbool",
            "-id",
            "../c1",
            "-future",
            "x",
            "delete",
        ],
        d.path(),
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("refusing to clean up"), "{err}");
    assert!(!err.contains("Usage:"), "{err}");
}

#[test]
fn sweep_takes_containerds_state_dir_or_its_task_dir() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("containerd");
    let b = state.join("io.containerd.runtime.v2.task/default/c1");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("shim-binary-path"),
        "/usr/local/bin/containerd-shim-robust-v2",
    )
    .unwrap();
    for dir in [state.clone(), state.join("io.containerd.runtime.v2.task")] {
        let dir = dir.display().to_string();
        let o = run(
            &["sweep", "--dry-run", "--min-age", "0", "--state-dir", &dir],
            d.path(),
        );
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{dir}: {}", text(&o.stderr));
        let row = out
            .lines()
            .find(|l| l.starts_with("default ") && l.contains(" c1 "))
            .unwrap_or_else(|| panic!("{dir}: no row for default/c1 in\n{out}"));
        assert!(row.contains("would clean"), "{row}");
    }
    assert!(b.exists(), "a dry run removed the bundle");
    // No containerd state there: the dir it looked for, and how to point elsewhere.
    let none = d.path().join("no-containerd");
    let o = run(
        &[
            "sweep",
            "--dry-run",
            "--state-dir",
            &none.display().to_string(),
        ],
        d.path(),
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&none.display().to_string()), "{err}");
    assert!(err.contains("--state-dir"), "{err}");
}
