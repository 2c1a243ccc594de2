//! Issue 12 B: input edges.
//!
//! - arguments that are not UTF-8 (`-id`, `-namespace`, `-address`, the action): a clear
//!   error naming the argument and exit 1, never a panic;
//! - ids longer than containerd's 76 bytes: refused by every action (`start`, `delete`,
//!   `sweep --id`, the daemon) before anything is touched;
//! - `ResizePty` racing a quick exit under `ctr run -t --rm`: no "process has no terminal".

use super::*;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// What one run of the shim binary did.
struct Run {
    line: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs our shim binary with `args` in `cwd`, stdin empty, under `timeout` (10 s).
fn run_shim(args: &[OsString], cwd: &Path) -> Run {
    let bin = our_binary();
    let limit = bound(10 * SEC);
    let out = Command::new("timeout")
        .args(["-k", "2", &format!("{:.1}", limit.as_secs_f64())])
        .arg(&bin)
        .args(args)
        .current_dir(cwd)
        // the daemon's socket hand-over: never inherited from the test
        .env_remove("ROBUST_SHIM_LISTEN_FD")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    Run {
        line: format!(
            "{} {}",
            bin.display(),
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    /// Asserts exit 1, an error as the last line of stderr containing every one of `words`,
    /// nothing on stdout (containerd would read it as an address or a response), no
    /// panic.
    fn refused(&self, words: &[&str]) {
        let what = format!(
            "`{}` -> {:?}\nstdout: {:?}\nstderr: {:?}",
            self.line, self.code, self.stdout, self.stderr
        );
        assert_eq!(self.code, Some(1), "exit status of {what}");
        assert!(self.stdout.is_empty(), "stdout of {what}");
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "panic in {what}"
        );
        // The error is the last line (the daemon also logs it, to stderr when it has
        // no shim log).
        let last = self.stderr.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("containerd-shim-robust-v2: "),
            "error of {what}"
        );
        for w in words {
            assert!(last.contains(w), "{w:?} missing from {what}");
        }
    }
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// A byte string that is not UTF-8.
fn bad(prefix: &str) -> OsString {
    let mut v = prefix.as_bytes().to_vec();
    v.extend_from_slice(&[0xff, 0xfe]);
    v.extend_from_slice(b"x");
    OsString::from_vec(v)
}

// 1. Arguments that are not UTF-8: `delete` and `start` (and the daemon) exit 1 naming
//    the argument; nothing in the bundle directory is touched.
robust_test!(non_utf8_arguments, limit = 60, |shim| {
    let dir = TempDir::new(&unique_id("non-utf8", shim));
    let marker = dir.0.join("config.json");
    std::fs::write(&marker, "{}").unwrap();
    let addr = os("/run/robust-edges-none.sock");
    for action in ["delete", "start", ""] {
        let with = |ns: OsString, id: OsString, address: OsString| {
            let mut a = vec![os("-namespace"), ns, os("-address"), address, os("-id"), id];
            if !action.is_empty() {
                a.push(os(action));
            }
            a
        };
        run_shim(&with(os("default"), bad("c1"), addr.clone()), &dir.0)
            .refused(&["flag -id: value \"c1\\xff\\xfex\" is not valid UTF-8"]);
        run_shim(&with(bad("ns"), os("c1"), addr.clone()), &dir.0)
            .refused(&["flag -namespace: value", "is not valid UTF-8"]);
        run_shim(&with(os("default"), os("c1"), bad("/run/a")), &dir.0)
            .refused(&["flag -address: value", "is not valid UTF-8"]);
        // the -name=value form
        let mut a = vec![os("-namespace=default")];
        let mut id = b"-id=c".to_vec();
        id.push(0xff);
        a.push(OsString::from_vec(id));
        if !action.is_empty() {
            a.push(os(action));
        }
        run_shim(&a, &dir.0).refused(&["flag -id: value \"c\\xff\" is not valid UTF-8"]);
    }
    // the action itself
    run_shim(&[os("-id"), os("c1"), bad("delete")], &dir.0)
        .refused(&["argument 3 \"delete\\xff\\xfex\" is not valid UTF-8"]);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "{}");
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        1,
        "bundle dir changed"
    );
});

// 2. An id (or namespace) longer than containerd's 76 bytes is refused by every action
//    before it touches anything: `delete`, `start`, `sweep --id`, and the daemon.
robust_test!(overlong_ids_refused, limit = 60, |shim| {
    let dir = TempDir::new(&unique_id("overlong", shim));
    let state = dir.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let long = "c".repeat(77);
    let long_ns = "n".repeat(77);
    let bundle = dir.0.display().to_string();
    let common = |ns: &str, id: &str| {
        vec![
            os("-namespace"),
            os(ns),
            os("-address"),
            os("/run/robust-edges-none.sock"),
            os("-id"),
            os(id),
        ]
    };
    for action in ["delete", "start", ""] {
        let mut a = common("default", &long);
        a.extend([os("-bundle"), os(&bundle)]);
        if !action.is_empty() {
            a.push(os(action));
        }
        run_shim(&a, &dir.0).refused(&["invalid container id", "longer than 76 bytes"]);
        let mut a = common(&long_ns, "c1");
        a.extend([os("-bundle"), os(&bundle)]);
        if !action.is_empty() {
            a.push(os(action));
        }
        run_shim(&a, &dir.0).refused(&["invalid namespace", "longer than 76 bytes"]);
    }
    let sweep = |ns: &str, id: &str| {
        vec![
            os("sweep"),
            os("--namespace"),
            os(ns),
            os("--id"),
            os(id),
            os("--dry-run"),
            os("--state-dir"),
            state.clone().into_os_string(),
        ]
    };
    run_shim(&sweep("default", &long), &dir.0)
        .refused(&["invalid container id", "longer than 76 bytes"]);
    run_shim(&sweep(&long_ns, "c1"), &dir.0)
        .refused(&["invalid namespace", "longer than 76 bytes"]);
    // containerd's own longest id is fine as far as the id rule goes: the daemon then
    // stops at the missing socket hand-over, not at the id
    let a = common("default", &"c".repeat(76));
    let r = run_shim(&a, &dir.0);
    r.refused(&["listening socket"]);
    assert!(!r.stderr.contains("invalid"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        1,
        "bundle dir changed"
    );
});

// 3. `ctr run -t --rm` of a command that exits at once, 10 times: ctr resizes the
//    terminal right after Start and races the exit. Our shim answers a resize of an
//    init without a terminal (released at its exit) as containerd's runc shim does:
//    success, so ctr never prints `resize pty error="process has no terminal"`.
shim_test!(tty_run_resize_race, limit = 120, |shim| {
    let e = env();
    let mut errors = Vec::new();
    for n in 0..10 {
        let id = unique_id("tty-resize", shim);
        let _g = ContainerGuard::new(NS, &id);
        let out = ctr(
            NS,
            &[
                "run",
                "--rm",
                "-t",
                "--runtime",
                shim.runtime(),
                &e.image,
                &id,
                "true",
            ],
        )
        .timeout(20 * SEC)
        .run_pty(24, 80);
        if shim == Shim::Robust {
            out.clone().ok();
        }
        if out.stdout.contains("resize pty") || out.stdout.contains("no terminal") {
            errors.push(format!("run {n}: {}", out.stdout.trim()));
        }
    }
    record(
        "tty-run-resize-race",
        shim,
        &format!(
            "{} of 10 `ctr run -t --rm` printed a resize error",
            errors.len()
        ),
    );
    if shim == Shim::Robust {
        assert!(errors.is_empty(), "resize errors: {errors:#?}");
    }
});
