//! Helpers for robust-shim's integration suite (the drop-in parity suite).
//!
//! The suite runs against the isolated containerd of `integration/containerd.sh`
//! (see integration/README.md). It talks to it three ways: `ctr` commands (each under
//! `timeout -k`), the containerd gRPC API (`containerd-client`) and the CRI API
//! (`k8s-cri`), both over the containerd unix socket.
//!
//! Every case runs through [`run_case`]: the body runs on its own thread with a hard
//! deadline that every helper here honours (ctr calls, API calls and polls are clamped
//! to the time left), so a hung shim fails a case within its bound instead of hanging
//! the suite. Cases are generated once per shim by [`shim_test!`].

use std::cell::Cell;
use std::collections::HashSet;
use std::fs;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use containerd_client;
pub use containerd_client::tonic;
pub use k8s_cri;
pub use prost;
pub use prost_types;
pub use serde_json;

use containerd_client::tonic::transport::Channel;

mod fault;
mod procs;
mod scratch;
mod tasks;
mod ttrpc;

pub use fault::*;
pub use procs::*;
pub use scratch::*;
pub use tasks::*;
pub use ttrpc::*;

/// containerd namespace of the ctr / API cases.
pub const NS: &str = "default";
/// containerd namespace of CRI.
pub const CRI_NS: &str = "k8s.io";

// ---------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------

/// Where the isolated containerd is: from the exports of `integration/containerd.sh env`,
/// with the same defaults as that script.
#[derive(Debug)]
pub struct Env {
    pub address: PathBuf,
    pub run_dir: PathBuf,
    pub root_dir: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_config: PathBuf,
    pub image: String,
    pub pause_image: String,
    pub subnet: String,
    pub log: PathBuf,
}

fn var(name: &str, default: impl Into<String>) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

/// The environment, checked once: panics with instructions when containerd is not there.
/// The containerd release the suite runs against (`ROBUST_IT_CONTAINERD`: `1.6`,
/// `1.7`, `2.1`; bookworm's 1.6 when unset).
pub fn containerd_release() -> String {
    std::env::var("ROBUST_IT_CONTAINERD").unwrap_or_else(|_| "1.6".into())
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    let r = ENV.get_or_init(|| {
        let run_dir = PathBuf::from(var("ROBUST_IT_RUN_DIR", "/run/robust-it"));
        let e = Env {
            address: PathBuf::from(var(
                "CONTAINERD_ADDRESS",
                run_dir.join("c.sock").to_string_lossy(),
            )),
            root_dir: PathBuf::from(var(
                "ROBUST_IT_ROOT_DIR",
                run_dir.join("root").to_string_lossy(),
            )),
            state_dir: PathBuf::from(var(
                "ROBUST_IT_STATE_DIR",
                run_dir.join("state").to_string_lossy(),
            )),
            runtime_config: PathBuf::from(var(
                "ROBUST_IT_RUNTIME_CONFIG",
                run_dir.join("robust.toml").to_string_lossy(),
            )),
            image: var("ROBUST_IT_IMAGE", "docker.io/library/busybox:robust"),
            pause_image: var("ROBUST_IT_PAUSE_IMAGE", "localhost/robust/pause:1"),
            subnet: var("ROBUST_IT_SUBNET", "10.244.77.0/24"),
            log: PathBuf::from(var(
                "ROBUST_IT_LOG",
                run_dir.join("containerd.log").to_string_lossy(),
            )),
            run_dir,
        };
        if e.address == Path::new("/run/containerd/containerd.sock") {
            return Err(
                "CONTAINERD_ADDRESS points at the system containerd: the suite only runs \
                        against the isolated one (integration/containerd.sh)"
                    .into(),
            );
        }
        if !e.address.exists() {
            return Err(format!(
                "no containerd socket at {}: start the isolated containerd first:\n  \
                 integration/containerd.sh start && eval \"$(integration/containerd.sh env)\"\n\
                 (or run the whole suite with `make test`)",
                e.address.display()
            ));
        }
        Ok(e)
    });
    match r {
        Ok(e) => e,
        Err(msg) => panic!("{msg}"),
    }
}

// ---------------------------------------------------------------------------------------
// Shims
// ---------------------------------------------------------------------------------------

/// The two shims every lifecycle case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shim {
    /// ours: `io.containerd.robust.v2` (containerd-shim-robust-v2), CRI handler `robust`
    Robust,
    /// the reference: `io.containerd.runc.v2` (Debian's containerd-shim-runc-v2), CRI handler `runc`
    Reference,
}

impl Shim {
    /// The runtime name given to containerd (`ctr run --runtime`, container runtime).
    pub fn runtime(self) -> &'static str {
        match self {
            Shim::Robust => "io.containerd.robust.v2",
            Shim::Reference => "io.containerd.runc.v2",
        }
    }
    /// The CRI runtime handler (see the runtimes in integration/containerd.sh).
    pub fn cri_handler(self) -> &'static str {
        match self {
            Shim::Robust => "robust",
            Shim::Reference => "runc",
        }
    }
    /// Short label for ids.
    pub fn label(self) -> &'static str {
        match self {
            Shim::Robust => "robust",
            Shim::Reference => "ref",
        }
    }
    /// The file name of the shim binary.
    pub fn binary_name(self) -> &'static str {
        match self {
            Shim::Robust => "containerd-shim-robust-v2",
            Shim::Reference => "containerd-shim-runc-v2",
        }
    }
}

/// A unique, valid containerd id for a case: `<case>-<shim>-<pid>-<n><t>`.
pub fn unique_id(case: &str, shim: Shim) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000)
        .unwrap_or(0);
    let mut case: String = case
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    case.truncate(28);
    let case = case.trim_matches('-').replace("--", "-");
    format!("{case}-{}-{}-{n}x{t:x}", shim.label(), std::process::id())
}

// ---------------------------------------------------------------------------------------
// Bounded cases
// ---------------------------------------------------------------------------------------

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Time left before the current case's deadline (60 s outside a case).
pub fn remaining() -> Duration {
    match DEADLINE.with(|d| d.get()) {
        Some(d) => d.saturating_duration_since(Instant::now()),
        None => Duration::from_secs(60),
    }
}

/// `want`, clamped to the time left in the case; panics when the deadline has passed.
pub fn bound(want: Duration) -> Duration {
    let left = remaining();
    if left.is_zero() {
        panic!("the case's deadline has passed");
    }
    want.min(left)
}

/// Extra time a case gets past its deadline to unwind and run its cleanup guards.
pub const CLEANUP_GRACE: Duration = Duration::from_secs(45);

/// Runs one case with a hard bound: the body runs on its own thread whose helpers are
/// clamped to `limit_secs`; if the body is not back within the bound plus
/// [`CLEANUP_GRACE`], the case fails as hung. After a passing body, asserts that no
/// zombie has a shim of this kind as its parent.
pub fn run_case(name: &str, shim: Shim, limit_secs: u64, body: fn(Shim)) {
    let e = env();
    let _ = e;
    let limit = Duration::from_secs(limit_secs);
    let started = Instant::now();
    let deadline = started + limit;
    let (tx, rx) = mpsc::channel();
    let tname = name.rsplit("::").take(2).collect::<Vec<_>>().join("<");
    thread::Builder::new()
        .name(tname)
        .spawn(move || {
            DEADLINE.with(|d| d.set(Some(deadline)));
            let r = panic::catch_unwind(AssertUnwindSafe(|| body(shim)));
            let _ = tx.send(r);
        })
        .expect("spawn case thread");
    match rx.recv_timeout(limit + CLEANUP_GRACE) {
        Ok(Ok(())) => {}
        Ok(Err(p)) => {
            eprintln!(
                "[{name}] failed after {:.1?} ({} shim, {})",
                started.elapsed(),
                shim.label(),
                shim.runtime()
            );
            panic::resume_unwind(p)
        }
        Err(_) => panic!(
            "[{name}] HUNG: not done {limit:?} + {CLEANUP_GRACE:?} after it started ({} shim)",
            shim.label()
        ),
    }
    assert_no_shim_zombies(shim);
    eprintln!("[{name}] ok in {:.1?}", started.elapsed());
}

/// Generates one `#[test]` per shim for a case:
///
/// ```ignore
/// shim_test!(run_rm_exit_code, limit = 60, |shim| { ... });
/// ```
/// gives `run_rm_exit_code::robust` and `run_rm_exit_code::reference`.
#[macro_export]
macro_rules! shim_test {
    ($(#[$meta:meta])* $name:ident, limit = $secs:expr, |$shim:ident| $body:block) => {
        $(#[$meta])*
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($shim: $crate::Shim) $body
            #[test]
            fn robust() {
                $crate::run_case(module_path!(), $crate::Shim::Robust, $secs, body)
            }
            #[test]
            fn reference() {
                $crate::run_case(module_path!(), $crate::Shim::Reference, $secs, body)
            }
        }
    };
}

/// Generates one `#[test]`, for our shim only (a case the reference cannot pass or has
/// no part in): `<name>::robust`.
#[macro_export]
macro_rules! robust_test {
    ($(#[$meta:meta])* $name:ident, limit = $secs:expr, |$shim:ident| $body:block) => {
        $(#[$meta])*
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($shim: $crate::Shim) $body
            #[test]
            fn robust() {
                $crate::run_case(module_path!(), $crate::Shim::Robust, $secs, body)
            }
        }
    };
}

/// Polls `f` until it returns `Some` (with a growing pause, 20..250 ms), at most `limit`
/// (clamped to the case's deadline); panics naming `what` on expiry.
pub fn poll_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let limit = bound(limit);
    let end = Instant::now() + limit;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= end {
            panic!("timed out after {limit:.1?} waiting for {what}");
        }
        thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Like [`poll_until`] but outside a case's deadline (cleanup paths): never panics.
pub fn poll_quiet(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    let mut pause = Duration::from_millis(20);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------------------
// ctr
// ---------------------------------------------------------------------------------------

/// What a command did.
#[derive(Debug, Clone)]
pub struct Out {
    pub cmdline: String,
    /// exit code (None: killed by a signal)
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Out {
    fn describe(&self) -> String {
        format!(
            "`{}` -> {}{} after {:.1?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.cmdline,
            match self.code {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".into(),
            },
            if self.timed_out {
                " (TIMED OUT: killed by `timeout`)"
            } else {
                ""
            },
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
    /// Panics unless the command exited 0.
    pub fn ok(self) -> Self {
        self.code_is(0)
    }
    /// Panics unless the command exited with `code`.
    pub fn code_is(self, code: i32) -> Self {
        if self.code != Some(code) || self.timed_out {
            panic!("expected exit {code}: {}", self.describe());
        }
        self
    }
    /// Panics if the command succeeded.
    pub fn failed(self) -> Self {
        if self.code == Some(0) {
            panic!("expected a failure: {}", self.describe());
        }
        self
    }
    pub fn succeeded(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// A `ctr` command against the isolated containerd, run under `timeout -k`.
pub struct Ctr {
    ns: String,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    stdin_gate: Option<Box<dyn FnOnce() + Send>>,
    timeout: Duration,
}

/// `ctr --address <isolated> -n <ns> <args>` (30 s bound unless [`Ctr::timeout`]).
pub fn ctr<S: AsRef<str>>(ns: &str, args: &[S]) -> Ctr {
    Ctr {
        ns: ns.to_string(),
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        stdin: None,
        stdin_gate: None,
        timeout: Duration::from_secs(30),
    }
}

fn secs_arg(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64().max(0.5))
}

impl Ctr {
    /// Feeds `data` to ctr's stdin, then closes it.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    /// Like [`Ctr::stdin`], but the data is written (and stdin closed) only once `gate`
    /// returns. ctr 1.6 installs its stdin closer (CloseIO on EOF) only after the task or
    /// exec is created: an EOF before that is never forwarded, with any shim. Gate on
    /// the process running to test stdin deterministically.
    pub fn stdin_when(
        mut self,
        data: impl Into<Vec<u8>>,
        gate: impl FnOnce() + Send + 'static,
    ) -> Self {
        self.stdin = Some(data.into());
        self.stdin_gate = Some(Box::new(gate));
        self
    }
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    fn command(&self, timeout: Duration, foreground: bool) -> (Command, String) {
        let mut c = Command::new("timeout");
        if foreground {
            c.arg("--foreground");
        }
        c.args(["-k", "5", &secs_arg(timeout), "ctr", "--address"])
            .arg(&env().address)
            .args(["-n", &self.ns])
            .args(&self.args);
        c.env_remove("CONTAINERD_NAMESPACE");
        let line = format!("ctr -n {} {}", self.ns, self.args.join(" "));
        (c, line)
    }
    /// Runs within the case's deadline; panics only if `timeout` cannot be spawned.
    pub fn run(self) -> Out {
        let t = bound(self.timeout);
        self.run_for(t)
    }
    /// Runs with its own bound, ignoring the case's deadline (for cleanup): never panics.
    pub fn run_unclamped(self) -> Out {
        let t = self.timeout;
        self.run_for(t)
    }
    fn run_for(self, timeout: Duration) -> Out {
        let (mut cmd, cmdline) = self.command(timeout, false);
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Out {
                    cmdline,
                    code: Some(127),
                    stdout: String::new(),
                    stderr: format!("cannot spawn timeout/ctr: {e}"),
                    timed_out: false,
                    elapsed: start.elapsed(),
                }
            }
        };
        if let (Some(data), Some(mut w)) = (self.stdin, child.stdin.take()) {
            let gate = self.stdin_gate;
            thread::spawn(move || {
                if let Some(g) = gate {
                    g();
                }
                let _ = w.write_all(&data);
            });
        }
        let out = child.wait_with_output();
        let elapsed = start.elapsed();
        match out {
            Ok(o) => {
                let code = o.status.code();
                Out {
                    cmdline,
                    timed_out: matches!(code, Some(124) | Some(137))
                        && elapsed + Duration::from_millis(200) >= timeout,
                    code,
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                    elapsed,
                }
            }
            Err(e) => Out {
                cmdline,
                code: None,
                stdout: String::new(),
                stderr: format!("waiting for ctr: {e}"),
                timed_out: false,
                elapsed,
            },
        }
    }

    /// Runs with a pseudo-terminal (rows x cols) as ctr's stdin/stdout/stderr and
    /// controlling terminal (needed by `ctr run -t` / `ctr task exec -t`). The output
    /// (stdout and stderr merged, `\r` removed) is in `stdout`.
    pub fn run_pty(self, rows: u16, cols: u16) -> Out {
        let timeout = bound(self.timeout);
        let (mut cmd, cmdline) = self.command(timeout, true);
        let start = Instant::now();
        let (master, slave) = openpty(rows, cols).expect("openpty");
        for (i, _) in [0, 1, 2].iter().enumerate() {
            let fd = slave.try_clone().expect("dup pty slave");
            match i {
                0 => cmd.stdin(Stdio::from(fd)),
                1 => cmd.stdout(Stdio::from(fd)),
                _ => cmd.stderr(Stdio::from(fd)),
            };
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        drop(cmd); // closes the parent's copies of the slave
        drop(slave);
        let mut child = spawned.expect("spawn ctr on a pty");
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        {
            let buf = buf.clone();
            let mut m = fs::File::from(master);
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                loop {
                    match m.read(&mut chunk) {
                        Ok(0) | Err(_) => break, // EIO once every slave fd is closed
                        Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = done_tx.send(());
            });
        }
        let status = child.wait();
        let _ = done_rx.recv_timeout(Duration::from_secs(3));
        let elapsed = start.elapsed();
        let raw = buf.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&raw).replace('\r', "");
        let code = status.ok().and_then(|s| s.code());
        Out {
            cmdline: format!("{cmdline} (on a pty)"),
            timed_out: matches!(code, Some(124) | Some(137))
                && elapsed + Duration::from_millis(200) >= timeout,
            code,
            stdout: text,
            stderr: String::new(),
            elapsed,
        }
    }
}

fn openpty(rows: u16, cols: u16) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut m: libc::c_int = -1;
    let mut s: libc::c_int = -1;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: plain libc call with valid out pointers.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty returned two fresh fds that we now own.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    for fd in [&m, &s] {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((m, s))
}

/// `(pid, STATUS)` of a task from `ctr task ls`, None if it has no task.
pub fn task_status(ns: &str, id: &str) -> Option<(u32, String)> {
    let out = ctr(ns, &["task", "ls"])
        .timeout(Duration::from_secs(10))
        .run();
    if !out.succeeded() {
        panic!("ctr task ls failed: {}", out.describe());
    }
    out.stdout.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
    })
}

/// Polls `ctr task ls` until the task has `status` (RUNNING, STOPPED, PAUSED, ...).
pub fn wait_task_status(ns: &str, id: &str, status: &str, limit: Duration) -> u32 {
    let mut last = None;
    poll_until(
        &format!("task {id} to be {status} (last seen: see below)"),
        limit,
        || {
            let s = task_status(ns, id);
            let r = match &s {
                Some((pid, st)) if st == status => Some(*pid),
                _ => None,
            };
            if r.is_none() && s != last {
                eprintln!("task {id}: {s:?}");
                last = s;
            }
            r
        },
    )
}

/// Runs `ctr run -d` of `args` (after the image and id) and returns the init pid.
pub fn run_detached(shim: Shim, id: &str, args: &[&str]) -> u32 {
    let e = env();
    let mut a = vec![
        "run",
        "-d",
        "--runtime",
        shim.runtime(),
        e.image.as_str(),
        id,
    ];
    a.extend_from_slice(args);
    ctr(NS, &a).run().ok();
    wait_task_status(NS, id, "RUNNING", Duration::from_secs(15))
}

/// Kills and deletes a ctr/API container (task first) with fixed bounds; never panics.
pub fn cleanup_container(ns: &str, id: &str) {
    let t = Duration::from_secs(20);
    let del = ctr(ns, &["task", "delete", "-f", id])
        .timeout(t)
        .run_unclamped();
    if !del.succeeded() && !del.stderr.contains("not found") {
        eprintln!("cleanup: {}", del.describe());
    }
    let c = ctr(ns, &["container", "delete", id])
        .timeout(t)
        .run_unclamped();
    if !c.succeeded() && !c.stderr.contains("not found") {
        eprintln!("cleanup: {}", c.describe());
    }
}

/// Drop guard: [`cleanup_container`] of its ids (even when the case failed).
pub struct ContainerGuard {
    ns: String,
    ids: Vec<String>,
}

impl ContainerGuard {
    pub fn new(ns: &str, id: &str) -> Self {
        ContainerGuard {
            ns: ns.into(),
            ids: vec![id.into()],
        }
    }
    pub fn add(&mut self, id: &str) {
        self.ids.push(id.into());
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        for id in &self.ids {
            cleanup_container(&self.ns, id);
        }
    }
}

// ---------------------------------------------------------------------------------------
// containerd gRPC and CRI APIs
// ---------------------------------------------------------------------------------------

/// A connection to the isolated containerd's gRPC socket, with its own tokio runtime
/// (one worker, so spawned streams make progress while the case does blocking work).
pub struct Api {
    pub rt: tokio::runtime::Runtime,
    pub channel: Channel,
}

impl Api {
    /// Connects (bounded) to `env().address`.
    pub fn connect() -> Api {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let addr = env().address.clone();
        let limit = bound(Duration::from_secs(10));
        let channel = rt
            .block_on(async {
                tokio::time::timeout(limit, containerd_client::connect(addr.clone())).await
            })
            .unwrap_or_else(|_| panic!("connecting to {} timed out", addr.display()))
            .unwrap_or_else(|e| panic!("connecting to {}: {e:?}", addr.display()));
        Api { rt, channel }
    }

    /// Runs `fut` bounded by `limit` (clamped to the case's deadline); panics naming
    /// `what` when it does not finish in time.
    pub fn call<F: Future>(&self, what: &str, limit: Duration, fut: F) -> F::Output {
        let limit = bound(limit);
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await })
        {
            Ok(v) => v,
            Err(_) => panic!("{what}: no answer within {limit:.1?}"),
        }
    }

    pub fn tasks(&self) -> containerd_client::services::v1::tasks_client::TasksClient<Channel> {
        containerd_client::services::v1::tasks_client::TasksClient::new(self.channel.clone())
    }
    pub fn containers(
        &self,
    ) -> containerd_client::services::v1::containers_client::ContainersClient<Channel> {
        containerd_client::services::v1::containers_client::ContainersClient::new(
            self.channel.clone(),
        )
    }
    pub fn snapshots(
        &self,
    ) -> containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient<Channel>
    {
        containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient::new(
            self.channel.clone(),
        )
    }
    pub fn images(&self) -> containerd_client::services::v1::images_client::ImagesClient<Channel> {
        containerd_client::services::v1::images_client::ImagesClient::new(self.channel.clone())
    }
    pub fn content(
        &self,
    ) -> containerd_client::services::v1::content_client::ContentClient<Channel> {
        containerd_client::services::v1::content_client::ContentClient::new(self.channel.clone())
    }
    pub fn events(&self) -> containerd_client::services::v1::events_client::EventsClient<Channel> {
        containerd_client::services::v1::events_client::EventsClient::new(self.channel.clone())
    }
    pub fn namespaces(
        &self,
    ) -> containerd_client::services::v1::namespaces_client::NamespacesClient<Channel> {
        containerd_client::services::v1::namespaces_client::NamespacesClient::new(
            self.channel.clone(),
        )
    }
    /// CRI v1 runtime service (containerd's CRI plugin serves it on the same socket).
    pub fn cri(&self) -> k8s_cri::v1::runtime_service_client::RuntimeServiceClient<Channel> {
        k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(self.channel.clone())
    }
}

/// A gRPC request in a containerd namespace.
pub fn req<T>(ns: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "containerd-namespace",
        ns.parse().expect("namespace metadata"),
    );
    r
}

/// A CRI pod (sandbox) removed on drop: StopPodSandbox + RemovePodSandbox through CRI,
/// then, whatever CRI said, ctr kill/delete of the sandbox and the listed containers.
/// Runs on its own thread and runtime, with fixed bounds; never panics.
pub struct PodGuard {
    pub pod_id: Option<String>,
    pub containers: Vec<String>,
}

impl PodGuard {
    pub fn new() -> Self {
        PodGuard {
            pod_id: None,
            containers: Vec::new(),
        }
    }
}

impl Default for PodGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// Stops and removes a pod through CRI within `limit`; Err says what failed.
pub fn cri_stop_remove_pod(pod_id: &str, limit: Duration) -> Result<(), String> {
    let addr = env().address.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pod = pod_id.to_string();
    rt.block_on(async move {
        let fut = async {
            let ch = containerd_client::connect(addr)
                .await
                .map_err(|e| format!("connect: {e:?}"))?;
            let mut c = k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(ch);
            c.stop_pod_sandbox(k8s_cri::v1::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .map_err(|e| format!("StopPodSandbox: {e}"))?;
            c.remove_pod_sandbox(k8s_cri::v1::RemovePodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .map_err(|e| format!("RemovePodSandbox: {e}"))?;
            Ok::<(), String>(())
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!("stop+remove of pod {pod} took more than {limit:?}")),
        }
    })
}

/// What [`kubelet_stop_remove`] saw.
#[derive(Debug)]
pub struct StopRemove {
    /// From the first StopPodSandbox to the RemovePodSandbox that succeeded.
    pub took: Duration,
    /// The refusals on the way (`StopPodSandbox: ...` / `RemovePodSandbox: ...`).
    pub refusals: Vec<String>,
}

impl StopRemove {
    /// `N refusal(s)`, and the first one if any: for a case's measured line.
    pub fn refusals_summary(&self) -> String {
        let first = self
            .refusals
            .first()
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default();
        format!("{} refusal(s){first}", self.refusals.len())
    }
}

/// StopPodSandbox + RemovePodSandbox as kubelet does them: a refusal is retried (every
/// 200 ms here; kubelet retries at its next sync) until both succeed or `limit` passes
/// (Err then names the last refusal). containerd 1.7+ refuses RemovePodSandbox while its
/// own cleanup of a dead shim still runs ("container is still running, to stop first").
pub fn kubelet_stop_remove(api: &Api, pod_id: &str, limit: Duration) -> Result<StopRemove, String> {
    let start = Instant::now();
    let end = start + limit;
    let mut refusals = Vec::new();
    loop {
        let left = end
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500));
        let stopped = api.call(
            "StopPodSandbox",
            left,
            api.cri()
                .stop_pod_sandbox(k8s_cri::v1::StopPodSandboxRequest {
                    pod_sandbox_id: pod_id.into(),
                }),
        );
        let r = match stopped {
            Err(s) => Err(format!("StopPodSandbox: {}", s.message())),
            Ok(_) => api
                .call(
                    "RemovePodSandbox",
                    left,
                    api.cri()
                        .remove_pod_sandbox(k8s_cri::v1::RemovePodSandboxRequest {
                            pod_sandbox_id: pod_id.into(),
                        }),
                )
                .map(|_| ())
                .map_err(|s| format!("RemovePodSandbox: {}", s.message())),
        };
        match r {
            Ok(()) => {
                return Ok(StopRemove {
                    took: start.elapsed(),
                    refusals,
                })
            }
            Err(e) if Instant::now() + Duration::from_millis(200) < end => {
                refusals.push(e);
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(format!(
                    "pod {pod_id} not removed within {limit:?} ({} refusals), last: {e}",
                    refusals.len() + 1
                ))
            }
        }
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let Some(pod) = self.pod_id.take() else {
            return;
        };
        let containers = std::mem::take(&mut self.containers);
        let h = thread::spawn(move || {
            if let Err(e) = cri_stop_remove_pod(&pod, Duration::from_secs(40)) {
                eprintln!("cleanup of pod {pod}: {e}");
            }
            for id in containers.iter().chain(std::iter::once(&pod)) {
                let t = ctr(CRI_NS, &["task", "ls", "-q"])
                    .timeout(Duration::from_secs(10))
                    .run_unclamped();
                if t.stdout.lines().any(|l| l.trim() == id) {
                    cleanup_container(CRI_NS, id);
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = h.join();
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(90));
    }
}

// ---------------------------------------------------------------------------------------
// /proc and cgroups
// ---------------------------------------------------------------------------------------

/// `(state, ppid, comm)` of a process.
pub fn proc_stat(pid: i32) -> Option<(char, i32, String)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let mut rest = s[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid, comm))
}

/// The file name of a process's executable (" (deleted)" stripped).
pub fn exe_name(pid: i32) -> Option<String> {
    let p = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let n = p.file_name()?.to_string_lossy().into_owned();
    Some(n.trim_end_matches(" (deleted)").to_string())
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim_end()
                .to_string()
        })
        .unwrap_or_default()
}

/// Every pid on the machine.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_stat(pid), Some((st, _, _)) if st != 'Z' && st != 'X')
}

/// Zombies whose parent runs this kind of shim binary (described).
pub fn shim_zombies(shim: Shim) -> Vec<String> {
    let mut v = Vec::new();
    for pid in all_pids() {
        let Some(('Z', ppid, comm)) = proc_stat(pid) else {
            continue;
        };
        if exe_name(ppid).as_deref() == Some(shim.binary_name()) {
            v.push(format!(
                "zombie pid {pid} ({comm}) of shim pid {ppid} [{}]",
                cmdline(ppid)
            ));
        }
    }
    v
}

/// Panics if a zombie of this kind of shim lasts more than 5 s (a shim must reap).
pub fn assert_no_shim_zombies(shim: Shim) {
    let mut last = Vec::new();
    let ok = poll_quiet(Duration::from_secs(5), || {
        last = shim_zombies(shim);
        last.is_empty()
    });
    if !ok {
        panic!(
            "unreaped zombies whose parent is a {}:\n{}",
            shim.binary_name(),
            last.join("\n")
        );
    }
}

/// Report a case as skipped: printed, and appended as `case<TAB>why` to the file named
/// by `ROBUST_IT_SKIP_FILE` (run-suite.sh counts them, so a skip is never a silent pass).
pub fn skip(case: &str, why: &str) {
    eprintln!("[{case}] skipped: {why}");
    if let Some(path) = std::env::var_os("ROBUST_IT_SKIP_FILE").filter(|p| !p.is_empty()) {
        let line = format!("{case}\t{}\n", why.replace(['\n', '\t'], " "));
        // one short O_APPEND write per line: cases run on parallel threads
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// The bundle dir of a task: `<state>/io.containerd.runtime.v2.task/<ns>/<id>`.
pub fn bundle_dir(ns: &str, id: &str) -> PathBuf {
    env()
        .state_dir
        .join("io.containerd.runtime.v2.task")
        .join(ns)
        .join(id)
}

/// The shim address recorded in a task's bundle: its `address` file, else the `address`
/// of `bootstrap.json` (containerd 2.1's runc shim writes only that one).
pub fn shim_address(ns: &str, id: &str) -> Option<String> {
    bundle_shim_address(&bundle_dir(ns, id))
}

/// The shim address recorded in the bundle dir `dir` (any containerd's state dir):
/// `address`, else `bootstrap.json`'s `address`.
pub fn bundle_shim_address(dir: &Path) -> Option<String> {
    if let Ok(s) = fs::read_to_string(dir.join("address")) {
        return Some(s.trim().to_string());
    }
    let b = fs::read(dir.join("bootstrap.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v.get("address")?.as_str().map(str::to_string)
}

/// Processes running a `containerd-shim*` binary that hold a socket bound to `address`
/// (`unix:///path` or a plain path): the shim daemon serving it.
pub fn socket_holders(address: &str) -> Vec<i32> {
    let path = address.trim_start_matches("unix://");
    let abstract_path = format!("@{}", path.trim_start_matches('\0'));
    let mut inodes = HashSet::new();
    if let Ok(t) = fs::read_to_string("/proc/net/unix") {
        for l in t.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 8 && (f[7] == path || f[7] == abstract_path) {
                inodes.insert(f[6].to_string());
            }
        }
    }
    let mut pids = Vec::new();
    if inodes.is_empty() {
        return pids;
    }
    for pid in all_pids() {
        if !exe_name(pid).is_some_and(|n| n.starts_with("containerd-shim")) {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.filter_map(|e| e.ok()).any(|e| {
            fs::read_link(e.path())
                .ok()
                .and_then(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(|s| inodes.contains(s))
                })
                .unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// The cgroup memory limit of a process: v1 `memory.limit_in_bytes` or v2 `memory.max`
/// (None for "max").
pub fn cgroup_memory_limit(pid: u32) -> Option<u64> {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/<pid>/cgroup");
    for l in cg.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        if ctrls.split(',').any(|c| c == "memory") {
            let p = format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes");
            let v = fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {p}: {e}"));
            return v.trim().parse().ok();
        }
    }
    for l in cg.lines() {
        if let Some(path) = l.strip_prefix("0::") {
            let p = format!("/sys/fs/cgroup{path}/memory.max");
            let v = fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {p}: {e}"));
            return v.trim().parse().ok();
        }
    }
    panic!("no memory cgroup for pid {pid}:\n{cg}");
}

// ---------------------------------------------------------------------------------------
// cgroups a test makes, and host processes it places in them (issue 12's bystanders)
// ---------------------------------------------------------------------------------------

/// v1 controllers a hierarchy can carry (besides `name=...`).
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// One mounted cgroup hierarchy, as the host sees it (mount root `/`).
#[derive(Clone, Debug)]
pub struct CgroupHierarchy {
    /// Its mount point (`/sys/fs/cgroup/pids`, `/sys/fs/cgroup/unified`, ...).
    pub dir: PathBuf,
    pub v2: bool,
    /// v1 controllers and `name=` of the hierarchy (empty for v2).
    pub controllers: Vec<String>,
}

impl CgroupHierarchy {
    /// The directory of cgroup `path` (`/a/b`) in this hierarchy.
    pub fn dir_of(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }
}

/// Every cgroup hierarchy mounted on the host: each v1 one (on a hybrid host, with the
/// controller-less v2 tree too), or the v2 one of a unified host; one entry per
/// hierarchy, even when it is mounted more than once.
pub fn cgroup_hierarchies() -> &'static [CgroupHierarchy] {
    static H: OnceLock<Vec<CgroupHierarchy>> = OnceLock::new();
    H.get_or_init(|| {
        let mi = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
        let mut seen = HashSet::new();
        let mut v = Vec::new();
        for l in mi.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            let Some(dash) = f.iter().position(|x| *x == "-") else {
                continue;
            };
            if dash < 5 || f.len() < dash + 4 || f[3] != "/" {
                continue;
            }
            let v2 = match f[dash + 1] {
                "cgroup2" => true,
                "cgroup" => false,
                _ => continue,
            };
            if !seen.insert(f[2].to_string()) {
                continue;
            }
            let controllers = if v2 {
                Vec::new()
            } else {
                f[dash + 3]
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_string)
                    .collect()
            };
            v.push(CgroupHierarchy {
                dir: PathBuf::from(f[4]),
                v2,
                controllers,
            });
        }
        assert!(!v.is_empty(), "no cgroup hierarchy mounted:\n{mi}");
        v
    })
}

/// The processes of cgroup `path` itself (not of the cgroups below it), from v1 `pids`
/// or else v2.
pub fn cgroup_path_procs(path: &str) -> Vec<i32> {
    let h = cgroup_hierarchies();
    let h = h
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "pids"))
        .or_else(|| h.iter().find(|h| h.v2))
        .unwrap_or(&h[0]);
    fs::read_to_string(h.dir_of(path).join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Moves `pid` into cgroup `path` of every hierarchy.
pub fn move_to_cgroup(pid: i32, path: &str) -> Result<(), String> {
    for h in cgroup_hierarchies() {
        let f = h.dir_of(path).join("cgroup.procs");
        fs::write(&f, pid.to_string())
            .map_err(|e| format!("moving {pid} into {}: {e}", f.display()))?;
    }
    Ok(())
}

/// A cgroup made by a test at `path` (its last component new and unique, parents made
/// when missing and left alone), with what the test makes below it, in every hierarchy.
/// On drop, what still runs in it is SIGKILLed (only processes the test started can be
/// there) and every directory of it is removed, deepest first.
pub struct CgroupTree {
    top: String,
}

impl CgroupTree {
    /// Makes `path` (`/a/b`), which must not exist yet in any hierarchy.
    pub fn new(path: &str) -> Result<CgroupTree, String> {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if !path.starts_with('/')
            || comps.is_empty()
            || comps.iter().any(|c| *c == "." || *c == "..")
        {
            return Err(format!("bad cgroup path {path:?}"));
        }
        let top = format!("/{}", comps.join("/"));
        for h in cgroup_hierarchies() {
            let d = h.dir_of(&top);
            if d.exists() {
                return Err(format!("{} exists already: not ours", d.display()));
            }
        }
        let t = CgroupTree { top };
        t.make("")?;
        Ok(t)
    }

    /// The cgroup path (as in `linux.cgroupsPath`) of `sub` below the top ("" = the top).
    pub fn path(&self, sub: &str) -> String {
        match sub.trim_matches('/') {
            "" => self.top.clone(),
            s => format!("{}/{s}", self.top),
        }
    }

    /// `mkdir -p` of `sub` in every hierarchy (in cpuset, each new level gets its
    /// parent's cpus and mems, or no process could join it); returns its path.
    pub fn make(&self, sub: &str) -> Result<String, String> {
        let path = self.path(sub);
        for h in cgroup_hierarchies() {
            let cpuset = h.controllers.iter().any(|c| c == "cpuset");
            let mut d = h.dir.clone();
            for comp in path.split('/').filter(|c| !c.is_empty()) {
                let parent = d.clone();
                d.push(comp);
                match fs::create_dir(&d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(format!("mkdir {}: {e}", d.display())),
                }
                for f in ["cpuset.cpus", "cpuset.mems"].iter().filter(|_| cpuset) {
                    if fs::read_to_string(d.join(f))
                        .unwrap_or_default()
                        .trim()
                        .is_empty()
                    {
                        let v = fs::read_to_string(parent.join(f)).unwrap_or_default();
                        fs::write(d.join(f), v.trim())
                            .map_err(|e| format!("{}/{f}: {e}", d.display()))?;
                    }
                }
            }
        }
        Ok(path)
    }

    /// Kills what runs in the tree and removes it (bounded); returns what is left.
    pub fn remove(&self) -> Vec<String> {
        let me = std::process::id() as i32;
        let mut left = Vec::new();
        for h in cgroup_hierarchies() {
            let mut dirs = Vec::new();
            let mut stack = vec![h.dir_of(&self.top)];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            stack.push(e.path());
                        }
                    }
                }
                dirs.push(d);
            }
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                let gone = poll_quiet(Duration::from_secs(10), || {
                    let pids: Vec<i32> = fs::read_to_string(d.join("cgroup.procs"))
                        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
                        .unwrap_or_default();
                    for p in pids.into_iter().filter(|p| *p > 1 && *p != me) {
                        // SAFETY: kill(2) of a process in this test's own cgroup tree.
                        unsafe { libc::kill(p, libc::SIGKILL) };
                    }
                    match fs::remove_dir(&d) {
                        Ok(()) => true,
                        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
                    }
                });
                if !gone {
                    left.push(d.display().to_string());
                }
            }
        }
        left
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        let left = self.remove();
        if !left.is_empty() {
            eprintln!("cleanup: cgroups not removed: {left:?}");
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`: the start time, which with the pid names one process.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &s[s.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// A host `sleep` placed in a cgroup (every hierarchy): a bystander. SIGKILLed and
/// reaped on drop, and SIGKILLed when the thread that started it ends.
pub struct HostProcess {
    child: std::process::Child,
    pub pid: i32,
    pub start: u64,
    /// `/proc/<pid>/cgroup` once placed.
    pub cgroups: String,
    pub path: String,
}

impl HostProcess {
    pub fn spawn_in(path: &str) -> Result<HostProcess, String> {
        let mut cmd = Command::new("sleep");
        cmd.arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("spawn sleep: {e}"))?;
        let pid = child.id() as i32;
        // the guard first: a failure below still kills it
        let mut p = HostProcess {
            child,
            pid,
            start: 0,
            cgroups: String::new(),
            path: path.to_string(),
        };
        move_to_cgroup(pid, path)?;
        p.cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let placed = p
            .cgroups
            .lines()
            .filter(|l| l.ends_with(&format!(":{path}")))
            .count();
        if placed != cgroup_hierarchies().len() {
            return Err(format!(
                "{pid} is not in {path} in every hierarchy:\n{}",
                p.cgroups
            ));
        }
        p.start = proc_start_time(pid).ok_or("no start time")?;
        Ok(p)
    }

    pub fn describe(&self) -> String {
        format!("host process {} (sleep) in {}", self.pid, self.path)
    }

    /// Ok when it is alive and untouched: same pid, same start time, same cgroups.
    pub fn check(&mut self) -> Result<(), String> {
        use std::os::unix::process::ExitStatusExt;
        if let Ok(Some(st)) = self.child.try_wait() {
            return Err(match st.signal() {
                Some(s) => format!("{} was killed by signal {s}", self.describe()),
                None => format!("{} exited: {st}", self.describe()),
            });
        }
        if proc_start_time(self.pid) != Some(self.start) {
            return Err(format!("{}: not the same process", self.describe()));
        }
        let cg = fs::read_to_string(format!("/proc/{}/cgroup", self.pid)).unwrap_or_default();
        if cg != self.cgroups {
            return Err(format!(
                "{} was moved: its cgroups were\n{}now\n{cg}",
                self.describe(),
                self.cgroups
            ));
        }
        Ok(())
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
