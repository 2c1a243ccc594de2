//! Events and state you can trust (issue 5; the state half of F1): exits and OOMs are never
//! lost, arrive once, in order, and survive a containerd restart.
//!
//! Every case runs against our shim (`::robust`, asserted) and against containerd's
//! reference shim (`::reference`): the reference's outcome is recorded on stderr as
//! "REFERENCE OUTCOME" lines (run with `--nocapture` to see it) and never asserted, so the
//! two can be compared side by side (docs/events.md).
//!
//! - `events_restart_downtime`: a *private* containerd (never the shared one) is stopped
//!   while containers run; during the downtime one container exits 5, one is OOM-killed and
//!   one CRI pod container exits 7; containerd is restarted. Then: `ctr task ls` says
//!   STOPPED, Tasks.Get gives the exit statuses, CRI ContainerStatus says EXITED 7, and the
//!   Events API delivers every exit exactly once (the OOM before its exit).
//!   To observe *every* event, containerd is restarted with its ttrpc endpoint (the one
//!   shims forward events to) at another path, and the shim's path is linked to it only
//!   once the test's subscription is live: the shim must have kept retrying across the
//!   restart, reconnected, and delivered each event once.
//! - `events_shim_outlives_containerd`: a private containerd stays down longer than the
//!   retry bound of ordinary events (30 s): the shim stays alive and keeps its socket,
//!   keeps retrying the exit (exits are retried until delivered), delivers it after the
//!   restart, and Tasks.Wait / Tasks.Get answer
//!   the exit status that happened meanwhile.
//! - `events_oom_then_exit`: TaskOOM, then TaskExit(137); exactly one TaskOOM.
//! - `events_many_short_containers`: 200 `ctr run --rm` (8 at a time): one /tasks/exit
//!   each, after its /tasks/start, with the right status.
//! - `events_shared_pidns_exec_exit_first`: init in the host pid namespace exits while an
//!   exec runs: the exec's /tasks/exit is published before the init's.

use super::*;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use containerd_client::events::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOom, TaskStart,
};
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    CreateNamespaceRequest, DeleteNamespaceRequest, GetRequest, Namespace, SubscribeRequest,
    WaitRequest,
};
use containerd_client::types::Envelope;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, RunPodSandboxRequest,
    StartContainerRequest,
};
use prost::Message;

const SEC: Duration = Duration::from_secs(1);
/// containerd.v1.types.Status
const STATUS_STOPPED: i32 = 3;
/// The shim's per-event publish retry (crates/shim/src/daemon.rs PUBLISH_RETRY).
const PUBLISH_RETRY: Duration = Duration::from_secs(30);
/// 16 MiB
const OOM_LIMIT: &str = "16777216";
/// Doubles a shell string until the memory cgroup kills it.
const ALLOCATE: &str = "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done";

// ---------------------------------------------------------------------------------------
// Findings: asserted for our shim, recorded for the reference
// ---------------------------------------------------------------------------------------

struct Findings {
    case: &'static str,
    shim: Shim,
    problems: Vec<String>,
}

impl Findings {
    fn new(case: &'static str, shim: Shim) -> Self {
        Findings {
            case,
            shim,
            problems: Vec::new(),
        }
    }
    fn tag(&self) -> String {
        format!("[{}/{}]", self.case, self.shim.label())
    }
    /// Records a problem unless `ok`; returns `ok`.
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if !ok {
            let m = what();
            eprintln!("{} PROBLEM: {m}", self.tag());
            self.problems.push(m);
        }
        ok
    }
    /// A measurement, printed for docs/events.md.
    fn note(&self, m: impl AsRef<str>) {
        eprintln!("{} measured: {}", self.tag(), m.as_ref());
    }
    /// Records a problem when the event stream ended early (containerd went away under
    /// the case: on the shared containerd, someone restarted it).
    fn stream_intact(&mut self, sub: &Sub) {
        self.check(!sub.closed, || {
            "the event subscription ended during the case: containerd went away \
             (on the shared instance: restarted by someone else?); the event checks are void"
                .into()
        });
    }
    /// Our shim: every problem fails the case. The reference: printed, not asserted.
    fn finish(self) {
        match self.shim {
            Shim::Robust => {
                if !self.problems.is_empty() {
                    panic!(
                        "{} {} problem(s):\n  - {}",
                        self.tag(),
                        self.problems.len(),
                        self.problems.join("\n  - ")
                    );
                }
                eprintln!("{} all checks passed", self.tag());
            }
            Shim::Reference => {
                if self.problems.is_empty() {
                    eprintln!(
                        "{} REFERENCE OUTCOME (recorded, not asserted): all checks passed",
                        self.tag()
                    );
                } else {
                    eprintln!(
                        "{} REFERENCE OUTCOME (recorded, not asserted): {} problem(s):\n  - {}",
                        self.tag(),
                        self.problems.len(),
                        self.problems.join("\n  - ")
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// One /tasks/* event, decoded.
#[derive(Debug, Clone)]
struct Ev {
    /// position in the subscription's stream
    seq: usize,
    at: Instant,
    ns: String,
    topic: String,
    cid: String,
    /// TaskExit: the process id (container id for the init); exec-*: the exec id
    id: String,
    pid: u32,
    exit_status: u32,
}

fn decode(env: &Envelope) -> Option<Ev> {
    let any = env.event.as_ref()?;
    let v = any.value.as_slice();
    let (cid, id, pid, exit_status) = match env.topic.as_str() {
        "/tasks/create" => {
            let m = TaskCreate::decode(v).ok()?;
            (m.container_id, String::new(), m.pid, 0)
        }
        "/tasks/start" => {
            let m = TaskStart::decode(v).ok()?;
            (m.container_id, String::new(), m.pid, 0)
        }
        "/tasks/exit" => {
            let m = TaskExit::decode(v).ok()?;
            (m.container_id, m.id, m.pid, m.exit_status)
        }
        "/tasks/oom" => {
            let m = TaskOom::decode(v).ok()?;
            (m.container_id, String::new(), 0, 0)
        }
        "/tasks/delete" => {
            let m = TaskDelete::decode(v).ok()?;
            (m.container_id, m.id, m.pid, m.exit_status)
        }
        "/tasks/exec-added" => {
            let m = TaskExecAdded::decode(v).ok()?;
            (m.container_id, m.exec_id, 0, 0)
        }
        "/tasks/exec-started" => {
            let m = TaskExecStarted::decode(v).ok()?;
            (m.container_id, m.exec_id, m.pid, 0)
        }
        t if t.starts_with("/tasks/") => {
            #[derive(Clone, PartialEq, prost::Message)]
            struct Cid {
                #[prost(string, tag = "1")]
                container_id: String,
            }
            (Cid::decode(v).ok()?.container_id, String::new(), 0, 0)
        }
        _ => return None,
    };
    Some(Ev {
        seq: 0,
        at: Instant::now(),
        ns: env.namespace.clone(),
        topic: env.topic.clone(),
        cid,
        id,
        pid,
        exit_status,
    })
}

/// A live subscription to containerd's Events API (/tasks/* topics).
struct Sub {
    rx: mpsc::Receiver<Envelope>,
    evs: Vec<Ev>,
    closed: bool,
}

impl Sub {
    /// Takes what arrives within `wait`.
    fn pump(&mut self, wait: Duration) {
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(env) => {
                    if let Some(mut ev) = decode(&env) {
                        ev.seq = self.evs.len();
                        self.evs.push(ev);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if !self.closed {
                        eprintln!("event subscription stream ended");
                        self.closed = true;
                    }
                    thread::sleep(left.min(Duration::from_millis(50)));
                    if Instant::now() >= end {
                        return;
                    }
                }
            }
        }
    }
    /// Pumps until `done(events)` or `limit` (clamped to the case); false on expiry.
    fn until(&mut self, limit: Duration, mut done: impl FnMut(&[Ev]) -> bool) -> bool {
        let end = Instant::now() + bound(limit);
        loop {
            if done(&self.evs) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            self.pump(
                Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
            );
        }
    }
    fn of(&self, cid: &str) -> Vec<&Ev> {
        self.evs.iter().filter(|e| e.cid == cid).collect()
    }
}

fn topics(evs: &[&Ev]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            if e.topic == "/tasks/exit" {
                format!("{}({}:{})", e.topic, e.id, e.exit_status)
            } else if e.topic.starts_with("/tasks/exec") {
                format!("{}({})", e.topic, e.id)
            } else {
                e.topic.clone()
            }
        })
        .collect()
}

/// Subscribes to /tasks/* events of the containerd behind `api` and returns once the
/// subscription is known to deliver (a probe namespace's /namespaces/create came through;
/// the probe namespaces are removed again).
fn subscribe(api: &Api, probe_base: &str) -> Sub {
    let (tx, rx) = mpsc::channel::<Envelope>();
    let mut events = api.events();
    api.rt.spawn(async move {
        let filters = vec![
            r#"topic~="^/tasks/""#.to_string(),
            r#"topic=="/namespaces/create""#.to_string(),
        ];
        match events.subscribe(SubscribeRequest { filters }).await {
            Ok(s) => {
                let mut s = s.into_inner();
                while let Ok(Some(m)) = s.message().await {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
            }
            Err(e) => eprintln!("Events.Subscribe: {e}"),
        }
    });
    let mut probes: Vec<String> = Vec::new();
    let mut early: Vec<Envelope> = Vec::new();
    let live = {
        let end = Instant::now() + bound(20 * SEC);
        let mut ok = false;
        while !ok && Instant::now() < end {
            let name = format!("{probe_base}-probe{}", probes.len());
            let r = api.call(
                "Namespaces.Create",
                5 * SEC,
                api.namespaces().create(req(
                    &name,
                    CreateNamespaceRequest {
                        namespace: Some(Namespace {
                            name: name.clone(),
                            labels: Default::default(),
                        }),
                    },
                )),
            );
            if let Err(s) = r {
                eprintln!("Namespaces.Create({name}): {s}");
            } else {
                probes.push(name.clone());
            }
            let until = Instant::now() + Duration::from_millis(300);
            while let Ok(env) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                if env.topic == "/namespaces/create" {
                    ok = true;
                } else {
                    early.push(env);
                }
            }
        }
        ok
    };
    for n in &probes {
        let r = api.call(
            "Namespaces.Delete",
            5 * SEC,
            api.namespaces()
                .delete(req(n, DeleteNamespaceRequest { name: n.clone() })),
        );
        if let Err(s) = r {
            eprintln!("Namespaces.Delete({n}): {s}");
        }
    }
    assert!(
        live,
        "the event subscription did not deliver a probe event within 20 s"
    );
    let mut sub = Sub {
        rx,
        evs: Vec::new(),
        closed: false,
    };
    for env in early {
        if let Some(mut ev) = decode(&env) {
            ev.seq = sub.evs.len();
            sub.evs.push(ev);
        }
    }
    sub
}

/// The /tasks/exit events of process `id` of container `cid`.
fn exits<'a>(evs: &[&'a Ev], cid: &str, id: &str) -> Vec<&'a Ev> {
    evs.iter()
        .copied()
        .filter(|e| e.topic == "/tasks/exit" && e.cid == cid && e.id == id)
        .collect()
}

fn count(evs: &[&Ev], topic: &str) -> usize {
    evs.iter().filter(|e| e.topic == topic).count()
}

// ---------------------------------------------------------------------------------------
// A private containerd (for the cases that stop and restart it)
// ---------------------------------------------------------------------------------------

fn containerd_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../integration/containerd.sh")
}

/// Runs a command under `timeout -k 5 <limit>` (not clamped: usable from Drop).
fn run_bounded(cmd: Command, line: String, limit: Duration) -> Out {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", &format!("{:.1}", limit.as_secs_f64().max(0.5))])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    match c.output() {
        Ok(o) => {
            let code = o.status.code();
            Out {
                cmdline: line,
                timed_out: matches!(code, Some(124) | Some(137))
                    && start.elapsed() + Duration::from_millis(200) >= limit,
                code,
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                elapsed: start.elapsed(),
            }
        }
        Err(e) => Out {
            cmdline: line,
            code: Some(127),
            stdout: String::new(),
            stderr: format!("cannot spawn: {e}"),
            timed_out: false,
            elapsed: start.elapsed(),
        },
    }
}

/// An isolated containerd of its own (integration/containerd.sh with a distinct run dir,
/// bridge and subnet, debug log level), cleaned (`containerd.sh clean`) on drop.
struct Private {
    run_dir: PathBuf,
    bridge: String,
    subnet: String,
    address: PathBuf,
    ttrpc: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
    /// CRI pods to stop and remove before the clean
    pods: Mutex<Vec<String>>,
    /// flock on /run/rit-ev<n>.lock: two test processes (two suite runs at once) never
    /// share a slot; released after the clean (fields drop after `Drop::drop`)
    _lock: Option<fs::File>,
}

impl Private {
    /// Slot `n` (1..=9): /run/rit-ev<n>, bridge robust8<n>, subnet 10.244.8<n>.0/24.
    fn new(n: u8) -> Private {
        let run_dir = PathBuf::from(format!("/run/rit-ev{n}"));
        Private {
            bridge: format!("robust8{n}"),
            subnet: format!("10.244.8{n}.0/24"),
            address: run_dir.join("c.sock"),
            ttrpc: run_dir.join("c.sock.ttrpc"),
            config: run_dir.join("config.toml"),
            log: run_dir.join("containerd.log"),
            pid_file: run_dir.join("containerd.pid"),
            run_dir,
            pods: Mutex::new(Vec::new()),
            _lock: None,
        }
    }

    /// Takes the slot's lock, waiting (bounded) while another test process holds it.
    fn lock(&mut self) {
        use std::os::fd::AsRawFd;
        let path = PathBuf::from(format!("{}.lock", self.run_dir.display()));
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        poll_until(
            &format!(
                "the lock {} (another test process uses the slot)",
                path.display()
            ),
            150 * SEC,
            || {
                // SAFETY: flock on an fd we own
                let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                (r == 0).then_some(())
            },
        );
        self._lock = Some(f);
    }

    fn script(&self, verb: &str, limit: Duration) -> Out {
        let mut c = Command::new("bash");
        c.arg(containerd_sh())
            .arg(verb)
            .env("ROBUST_IT_RUN_DIR", &self.run_dir)
            .env("ROBUST_IT_BRIDGE", &self.bridge)
            .env("ROBUST_IT_SUBNET", &self.subnet)
            .env("ROBUST_IT_LOG_LEVEL", "debug");
        let line = format!(
            "ROBUST_IT_RUN_DIR={} containerd.sh {verb}",
            self.run_dir.display()
        );
        run_bounded(c, line, limit)
    }

    /// Starts a fresh private containerd in slot `n` (whatever an earlier run left there
    /// is cleaned first).
    fn start(n: u8) -> Private {
        let mut p = Private::new(n);
        p.lock();
        let _ = p.script("clean", bound(120 * SEC));
        p.script("start", bound(90 * SEC)).ok();
        p
    }

    /// containerd's pid, if the pid file names a live containerd of this run dir.
    fn pid(&self) -> Option<i32> {
        let pid: i32 = fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmd = cmdline(pid);
        (pid_alive(pid)
            && cmd.contains("containerd")
            && cmd.contains(&format!("--config {}", self.config.display())))
        .then_some(pid)
    }

    /// Stops containerd by its pid file: SIGTERM, then (after 15 s) SIGKILL. Returns how
    /// long it took. Tasks and shims are left alone.
    fn stop(&self) -> Duration {
        let pid = self.pid().expect("the private containerd is not running");
        let t = Instant::now();
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let gone = poll_quiet(bound(15 * SEC), || !pid_alive(pid));
        if !gone {
            eprintln!("private containerd {pid} ignored SIGTERM for 15 s: SIGKILL");
            unsafe { libc::kill(pid, libc::SIGKILL) };
            poll_until("the private containerd to die", 5 * SEC, || {
                (!pid_alive(pid)).then_some(())
            });
        }
        t.elapsed()
    }

    /// Starts containerd again on `config` (in the background, its own session, pid file).
    fn spawn(&self, config: &Path) {
        let script = r#"export PATH="$1/bin:$PATH"; setsid containerd --config "$2" </dev/null >>"$1/containerd.log" 2>&1 & echo $! >"$1/containerd.pid""#;
        let mut c = Command::new("bash");
        c.args(["-c", script, "bash"])
            .arg(&self.run_dir)
            .arg(config);
        run_bounded(c, "spawn containerd".into(), 10 * SEC).ok();
    }

    /// Restarts containerd with its ttrpc endpoint (the one the shims forward events to)
    /// moved to another path; returns that path. The shims' path stays dead until
    /// [`Private::open_events`].
    fn restart_gated(&self) -> PathBuf {
        let gated = self.run_dir.join("gated.ttrpc");
        let cfg = fs::read_to_string(&self.config).expect("read the private config");
        let from = format!("address = \"{}\"", self.ttrpc.display());
        assert!(
            cfg.contains(&from),
            "no `{from}` in {}",
            self.config.display()
        );
        let cfg = cfg.replace(&from, &format!("address = \"{}\"", gated.display()));
        // named so that containerd.sh still recognises this containerd as its own
        let gated_config = PathBuf::from(format!("{}.gated", self.config.display()));
        fs::write(&gated_config, cfg).expect("write the gated config");
        let _ = fs::remove_file(&self.ttrpc);
        let _ = fs::remove_file(&gated);
        self.spawn(&gated_config);
        gated
    }

    /// Links the shims' ttrpc path to the gated one: event delivery can resume.
    fn open_events(&self, gated: &Path) {
        let _ = fs::remove_file(&self.ttrpc);
        std::os::unix::fs::symlink(gated, &self.ttrpc).expect("symlink the ttrpc address");
    }

    /// Waits until containerd's gRPC API answers; returns a connection.
    fn wait_ready(&self, limit: Duration) -> Api {
        poll_until(
            &format!("the private containerd at {}", self.address.display()),
            limit,
            || try_connect(&self.address),
        )
    }

    fn ctr(&self, ns: &str, args: &[&str]) -> Out {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.address)
            .args(["-n", ns])
            .args(args)
            .env_remove("CONTAINERD_NAMESPACE");
        run_bounded(
            c,
            format!("ctr -n {ns} {} (private)", args.join(" ")),
            bound(30 * SEC),
        )
    }

    /// `(pid, STATUS)` from `ctr task ls`.
    fn task(&self, ns: &str, id: &str) -> Option<(u32, String)> {
        let out = self.ctr(ns, &["task", "ls"]).ok();
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.run_dir
            .join("state/io.containerd.runtime.v2.task")
            .join(ns)
            .join(id)
    }

    /// The shim address of a task (`address`, or `bootstrap.json` of 2.1's runc shim).
    fn shim_address(&self, ns: &str, id: &str) -> String {
        bundle_shim_address(&self.bundle(ns, id)).unwrap_or_else(|| {
            panic!("no shim address (address, bootstrap.json) in the bundle of {ns}/{id}")
        })
    }

    /// The shim daemon serving a task (the process holding its bundle's socket).
    fn shim_pid(&self, ns: &str, id: &str) -> i32 {
        let a = self.shim_address(ns, id);
        let h = socket_holders(&a);
        assert_eq!(h.len(), 1, "processes serving {a}: {h:?}");
        h[0]
    }

    /// Appends a marker line to containerd's log; returns it.
    fn mark(&self, what: &str) -> String {
        let m = format!(
            "---- robust-it events {what} {}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("open the private containerd log");
        use std::io::Write;
        writeln!(f, "{m}").expect("write the log marker");
        m
    }

    /// containerd's log after `marker`.
    fn log_after(&self, marker: &str) -> String {
        let all = fs::read_to_string(&self.log).unwrap_or_default();
        match all.rfind(marker) {
            Some(i) => all[i..].to_string(),
            None => String::new(),
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        if self._lock.is_none() {
            return; // the slot is someone else's
        }
        // a stopped containerd cannot kill its tasks: bring it back for the clean
        if self.pid().is_none() {
            let o = self.script("start", 90 * SEC);
            if !o.succeeded() {
                eprintln!(
                    "cleanup: restart of {} failed: {o:?}",
                    self.run_dir.display()
                );
            }
        }
        // a gated restart left the shims' event path closed: open it
        let gated = self.run_dir.join("gated.ttrpc");
        if gated.exists() && fs::symlink_metadata(&self.ttrpc).is_err() {
            let _ = std::os::unix::fs::symlink(&gated, &self.ttrpc);
        }
        let pods = std::mem::take(&mut *self.pods.lock().unwrap_or_else(|e| e.into_inner()));
        for pod in pods {
            if let Err(e) = cri_stop_remove_at(&self.address, &pod, 40 * SEC) {
                eprintln!("cleanup of pod {pod}: {e}");
            }
        }
        // containerd's log outlives the run dir: target/it-logs/rit-ev<n>-<release>.log
        let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/it-logs");
        let name = format!(
            "{}-{}.log",
            self.run_dir
                .file_name()
                .map_or("rit-ev".into(), |n| n.to_string_lossy()),
            containerd_release()
        );
        if fs::create_dir_all(&keep).is_ok() && fs::copy(&self.log, keep.join(&name)).is_ok() {
            eprintln!("the private containerd's log: target/it-logs/{name}");
        }
        let o = self.script("clean", 150 * SEC);
        if !o.succeeded() {
            eprintln!("cleanup: {o:?}");
        }
    }
}

/// One connection attempt (bounded to 2 s) plus a Version call.
fn try_connect(addr: &Path) -> Option<Api> {
    if !addr.exists() {
        return None;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let a = addr.to_path_buf();
    let channel = rt.block_on(async move {
        let ch = tokio::time::timeout(2 * SEC, containerd_client::connect(a))
            .await
            .ok()?
            .ok()?;
        tokio::time::timeout(2 * SEC, VersionClient::new(ch.clone()).version(()))
            .await
            .ok()?
            .ok()?;
        Some(ch)
    })?;
    Some(Api { rt, channel })
}

/// CRI StopPodSandbox + RemovePodSandbox at `addr` within `limit` (never panics).
fn cri_stop_remove_at(addr: &Path, pod: &str, limit: Duration) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let addr = addr.to_path_buf();
    let pod = pod.to_string();
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

/// A host-network pod through `handler`, registered in `p` for cleanup.
fn cri_pod(api: &Api, p: &Private, handler: &str, name: &str) -> (String, PodSandboxConfig) {
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: name.into(),
            namespace: "robust-it".into(),
            attempt: 0,
        }),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod_id = api
        .call(
            "RunPodSandbox",
            60 * SEC,
            api.cri().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }),
        )
        .unwrap_or_else(|s| panic!("RunPodSandbox(handler {handler}): {s}"))
        .into_inner()
        .pod_sandbox_id;
    p.pods.lock().unwrap().push(pod_id.clone());
    (pod_id, config)
}

/// Creates and starts a busybox container running `sh -c script` in a pod.
fn cri_container(
    api: &Api,
    pod_id: &str,
    sandbox: &PodSandboxConfig,
    name: &str,
    script: &str,
) -> String {
    let cfg = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: env().image.clone(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    };
    let cid = api
        .call(
            "CreateContainer",
            30 * SEC,
            api.cri().create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.into(),
                config: Some(cfg),
                sandbox_config: Some(sandbox.clone()),
            }),
        )
        .unwrap_or_else(|s| panic!("CreateContainer({name}) in pod {pod_id}: {s}"))
        .into_inner()
        .container_id;
    api.call(
        "StartContainer",
        30 * SEC,
        api.cri().start_container(StartContainerRequest {
            container_id: cid.clone(),
        }),
    )
    .unwrap_or_else(|s| panic!("StartContainer({name} = {cid}): {s}"));
    cid
}

/// `(status, exit_status)` of a task's init from Tasks.Get.
fn tasks_get(api: &Api, ns: &str, id: &str) -> Result<(i32, u32), String> {
    api.call(
        "Tasks.Get",
        10 * SEC,
        api.tasks().get(req(
            ns,
            GetRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        )),
    )
    .map_err(|s| format!("Tasks.Get({id}): {s}"))
    .and_then(|r| {
        r.into_inner()
            .process
            .map(|p| (p.status, p.exit_status))
            .ok_or_else(|| format!("Tasks.Get({id}): no process"))
    })
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2)
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Lines of `log` containing `needle` (for the report).
fn grep<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// The slot of a private containerd per case and shim (run dirs /run/rit-ev<n>).
fn slot(case: u8, shim: Shim) -> u8 {
    case * 2
        + match shim {
            Shim::Robust => 1,
            Shim::Reference => 2,
        }
        - 2
}

// ---------------------------------------------------------------------------------------
// 1. containerd restart with exits and an OOM during the downtime
// ---------------------------------------------------------------------------------------

/// Waits until the container's shell has its USR1 trap installed (SigCgt has SIGUSR1):
/// a USR1 before the `trap` would kill sh instead of running the trap.
fn wait_trap_ready(pid: u32) {
    poll_until(&format!("pid {pid} to catch SIGUSR1"), 10 * SEC, || {
        let st = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let hex = st.lines().find_map(|l| l.strip_prefix("SigCgt:"))?.trim();
        let mask = u64::from_str_radix(hex, 16).ok()?;
        (mask & (1 << (libc::SIGUSR1 - 1)) != 0).then_some(())
    });
}

/// How long the restart case keeps containerd down: `ROBUST_IT_EVENTS_DOWNTIME` seconds,
/// 20 by default (a slow restart: inside our shim's 30 s per-event retry, past the
/// reference shim's, whose last retry of an event comes 15 s after its first failure).
fn restart_downtime() -> Duration {
    let s: f64 = std::env::var("ROBUST_IT_EVENTS_DOWNTIME")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20.0);
    Duration::from_secs_f64(s.clamp(1.0, 25.0))
}

shim_test!(events_restart_downtime, limit = 240, |shim| {
    let mut f = Findings::new("events_restart_downtime", shim);
    let p = Private::start(slot(1, shim));
    let rt = shim.runtime();
    let img = env().image.as_str();
    let api = p.wait_ready(20 * SEC);

    // A exits 5 on USR1, B allocates past 16 MiB on USR1, C (a CRI container) exits 7.
    let a = unique_id("ev-restart-exit5", shim);
    let b = unique_id("ev-restart-oom", shim);
    let wait_loop = "while :; do sleep 0.1; done";
    p.ctr(
        NS,
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            img,
            &a,
            "sh",
            "-c",
            &format!("trap 'exit 5' USR1; {wait_loop}"),
        ],
    )
    .ok();
    p.ctr(
        NS,
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            "--memory-limit",
            OOM_LIMIT,
            img,
            &b,
            "sh",
            "-c",
            &format!("trap '{ALLOCATE}' USR1; {wait_loop}"),
        ],
    )
    .ok();
    let (pod_id, sandbox) = cri_pod(
        &api,
        &p,
        shim.cri_handler(),
        &unique_id("ev-restart-pod", shim),
    );
    let c = cri_container(
        &api,
        &pod_id,
        &sandbox,
        "exit7",
        &format!("trap 'exit 7' USR1; {wait_loop}"),
    );
    let pa = poll_until("A running", 15 * SEC, || {
        p.task(NS, &a).filter(|t| t.1 == "RUNNING")
    })
    .0;
    let pb = poll_until("B running", 15 * SEC, || {
        p.task(NS, &b).filter(|t| t.1 == "RUNNING")
    })
    .0;
    let pc = poll_until("C running", 15 * SEC, || {
        p.task(CRI_NS, &c).filter(|t| t.1 == "RUNNING")
    })
    .0;
    for pid in [pa, pb, pc] {
        wait_trap_ready(pid);
    }
    let shims = [
        (a.as_str(), p.shim_pid(NS, &a)),
        (b.as_str(), p.shim_pid(NS, &b)),
        (c.as_str(), p.shim_pid(CRI_NS, &c)),
    ];
    drop(api);
    let fd_count = |pid: i32| fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let fds_before: Vec<usize> = shims.iter().map(|(_, pid)| fd_count(*pid)).collect();

    // containerd goes down; the three exits happen while it is away
    let stop_took = p.stop();
    f.note(format!("containerd stopped (SIGTERM) in {stop_took:.2?}"));
    let down_at = Instant::now();
    for pid in [pa, pb, pc] {
        f.check(pid_alive(pid as i32), || {
            format!("container pid {pid} died with containerd")
        });
        signal(pid, libc::SIGUSR1);
    }
    poll_until("the three container inits to exit", 20 * SEC, || {
        [pa, pb, pc]
            .iter()
            .all(|pid| !pid_alive(*pid as i32))
            .then_some(())
    });
    // keep containerd down (a slow restart); the shims must stay up meanwhile
    let downtime = restart_downtime();
    let hold = down_at + downtime;
    let mut shims_ok = true;
    while Instant::now() < hold {
        for (id, pid) in &shims {
            if !pid_alive(*pid) && shims_ok {
                shims_ok = false;
                f.check(false, || {
                    format!("the shim of {id} (pid {pid}) died while containerd was down")
                });
            }
        }
        thread::sleep(Duration::from_millis(100));
    }

    // restart; the shims' event path opens only once our subscription is live
    let marker = p.mark("restart");
    let gated = p.restart_gated();
    let api = p.wait_ready(30 * SEC);
    let up_after = down_at.elapsed();
    let mut sub = subscribe(&api, &unique_id("ev-restart", shim));
    p.open_events(&gated);
    let opened = Instant::now();
    f.note(format!(
        "containerd down {up_after:.1?} (held {downtime:?}; the exits at +~0.2 s); event path opened {:.1?} after the stop",
        down_at.elapsed()
    ));

    let want: [(&str, u32, &str); 3] = [
        (a.as_str(), 5, NS),
        (b.as_str(), 137, NS),
        (c.as_str(), 7, CRI_NS),
    ];
    let all = sub.until(25 * SEC, |evs| {
        want.iter().all(|(id, _, _)| {
            evs.iter()
                .any(|e| e.topic == "/tasks/exit" && e.cid == *id && e.id == *id)
        })
    });
    let delivered_in = opened.elapsed();
    sub.pump(3 * SEC); // duplicates, if any, would come now
                       // Regression (found by the soak): every failed reconnect while containerd was down
                       // leaked a socket (ttrpc 0.10's Client::connect does not close it on failure).
    for ((id, pid), before) in shims.iter().zip(&fds_before) {
        if !pid_alive(*pid) {
            continue;
        }
        let after = fd_count(*pid);
        f.check(after <= before + 4, || {
            format!(
                "the shim of {id} (pid {pid}) held {before} fds before the outage, {after} after"
            )
        });
    }
    f.check(all, || {
        format!(
            "not every exit arrived within 25 s of the event path opening; seen: {:?}",
            want.iter()
                .map(|(id, _, _)| (id.to_string(), topics(&sub.of(id))))
                .collect::<Vec<_>>()
        )
    });
    if all {
        f.note(format!(
            "all exits delivered {delivered_in:.2?} after the event path opened"
        ));
    }
    for (id, code, ns) in want {
        let evs = sub.of(id);
        let ex = exits(&evs, id, id);
        f.check(ex.len() == 1, || {
            format!(
                "{ns}/{id}: {} /tasks/exit events (want 1): {:?}",
                ex.len(),
                topics(&evs)
            )
        });
        if let Some(e) = ex.first() {
            f.check(e.exit_status == code, || {
                format!("{id}: TaskExit exit_status {} (want {code})", e.exit_status)
            });
            f.check(e.ns == ns, || {
                format!("{id}: TaskExit in namespace {}", e.ns)
            });
        }
        let deletes: Vec<&&Ev> = evs.iter().filter(|e| e.topic == "/tasks/delete").collect();
        if let (Some(d), Some(e)) = (deletes.first(), ex.first()) {
            f.check(e.seq < d.seq, || {
                format!("{id}: /tasks/delete before /tasks/exit: {:?}", topics(&evs))
            });
        }
        let ooms: Vec<&&Ev> = evs.iter().filter(|e| e.topic == "/tasks/oom").collect();
        if id == b {
            f.check(ooms.len() == 1, || {
                format!(
                    "{id}: {} /tasks/oom events (want 1): {:?}",
                    ooms.len(),
                    topics(&evs)
                )
            });
            if let (Some(o), Some(e)) = (ooms.first(), ex.first()) {
                f.check(o.seq < e.seq, || {
                    format!("{id}: TaskOOM after TaskExit: {:?}", topics(&evs))
                });
            }
        } else {
            f.check(ooms.is_empty(), || {
                format!("{id}: unexpected /tasks/oom: {:?}", topics(&evs))
            });
        }
        eprintln!(
            "[events_restart_downtime/{}] events of {id}: {:?}",
            shim.label(),
            topics(&evs)
        );
    }

    // state: ctr task ls, Tasks.Get, CRI ContainerStatus
    for (id, code) in [(&a, 5u32), (&b, 137)] {
        let t = p.task(NS, id);
        f.check(t.as_ref().map(|t| t.1.as_str()) == Some("STOPPED"), || {
            format!("ctr task ls: {id} is {t:?} (want STOPPED)")
        });
        match tasks_get(&api, NS, id) {
            Ok((st, ex)) => {
                f.check(st == STATUS_STOPPED && ex == code, || {
                    format!("Tasks.Get({id}): status {st}, exit_status {ex} (want STOPPED={STATUS_STOPPED}, {code})")
                });
            }
            Err(e) => {
                f.check(false, || e);
            }
        }
    }
    let mut last = None;
    let cri_ok = poll_quiet(bound(20 * SEC), || {
        let r = api.call(
            "ContainerStatus",
            5 * SEC,
            api.cri().container_status(ContainerStatusRequest {
                container_id: c.clone(),
                verbose: false,
            }),
        );
        last = Some(match r {
            Ok(r) => r
                .into_inner()
                .status
                .map(|s| (s.state, s.exit_code, s.reason))
                .ok_or_else(|| "no status".to_string()),
            Err(s) => Err(s.to_string()),
        });
        matches!(&last, Some(Ok((st, _, _))) if *st == ContainerState::ContainerExited as i32)
    });
    f.check(cri_ok, || {
        format!("CRI ContainerStatus({c}) never EXITED: {last:?}")
    });
    // CRI learns the status at its recovery (loadContainer: a Stopped task's exit status),
    // not from the event (CRI 1.6 to 2.1 subscribes to /tasks/oom and /images/ only):
    // "Error" with the real code, never 255 "Unknown" (the task deleted as a leaked shim)
    if let Some(Ok((_, code, reason))) = &last {
        f.note(format!(
            "CRI ContainerStatus({c}) after the restart: EXITED, exit_code {code}, reason {reason:?}"
        ));
        f.check(*code == 7 && reason == "Error", || {
            format!(
                "CRI ContainerStatus({c}): exit_code {code}, reason {reason:?} (want 7, \"Error\")"
            )
        });
    }

    // containerd's own log is read for the shims' lines only: its line per forwarded
    // event is at debug level on 1.6 and at trace level from 1.7 on (events/exchange
    // Forward), so delivery is counted on the subscription above, on every release
    let log = p.log_after(&marker);
    for needle in [
        "giving up",
        "evicting",
        "event delivery failed",
        "forward event",
    ] {
        let lines = grep(&log, needle);
        if !lines.is_empty() {
            f.note(format!(
                "shim log `{needle}`: {} line(s), first: {}",
                lines.len(),
                lines[0]
            ));
        }
    }
    f.check(
        grep(&log, "giving up").is_empty() && grep(&log, "evicting").is_empty(),
        || "a shim gave up on an event".into(),
    );
    f.stream_intact(&sub);
    drop(sub);
    drop(api);
    f.finish();
    drop(p);
});

// ---------------------------------------------------------------------------------------
// 5. a shim that loses containerd for longer than its retry keeps serving
// ---------------------------------------------------------------------------------------

shim_test!(events_shim_outlives_containerd, limit = 180, |shim| {
    let mut f = Findings::new("events_shim_outlives_containerd", shim);
    let p = Private::start(slot(2, shim));
    let api = p.wait_ready(20 * SEC);
    let id = unique_id("ev-outage", shim);
    p.ctr(
        NS,
        &[
            "run",
            "-d",
            "--runtime",
            shim.runtime(),
            &env().image,
            &id,
            "sh",
            "-c",
            "trap 'exit 9' USR1; while :; do sleep 0.1; done",
        ],
    )
    .ok();
    let pid = poll_until("the task running", 15 * SEC, || {
        p.task(NS, &id).filter(|t| t.1 == "RUNNING")
    })
    .0;
    wait_trap_ready(pid);
    let shim_pid = p.shim_pid(NS, &id);
    let shim_addr = p.shim_address(NS, &id);
    drop(api);

    p.stop();
    let down = Instant::now();
    signal(pid, libc::SIGUSR1);
    poll_until("the init to exit", 10 * SEC, || {
        (!pid_alive(pid as i32)).then_some(())
    });
    // longer than the shim's retry bound of ordinary events: an exit is still
    // retried until containerd takes it
    let outage = PUBLISH_RETRY + 5 * SEC;
    let mut alive = true;
    while down.elapsed() < outage {
        if !pid_alive(shim_pid) || !socket_holders(shim_addr.trim()).contains(&shim_pid) {
            alive = false;
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    f.check(alive, || {
        format!(
            "the shim (pid {shim_pid}) died or dropped its socket {:.1?} into the outage",
            down.elapsed()
        )
    });
    // restart; the shim's event path opens only once our subscription is live, so the
    // exit it kept retrying is seen on the Events API (on every containerd release)
    let marker = p.mark("restart");
    let gated = p.restart_gated();
    let api = p.wait_ready(30 * SEC);
    f.note(format!("containerd down {:.1?}", down.elapsed()));
    let mut sub = subscribe(&api, &unique_id("ev-outage", shim));
    p.open_events(&gated);
    let opened = Instant::now();
    let arrived = sub.until(15 * SEC, |evs| {
        evs.iter()
            .any(|e| e.topic == "/tasks/exit" && e.cid == id && e.id == id)
    });
    sub.pump(2 * SEC); // a duplicate would come now
    let evs = sub.of(&id);
    let ex = exits(&evs, &id, &id);
    if arrived {
        f.note(format!(
            "the exit arrived on the Events API {:.2?} after the event path opened",
            opened.elapsed().saturating_sub(2 * SEC)
        ));
    }
    f.check(ex.len() == 1 && ex[0].exit_status == 9, || {
        format!(
            "/tasks/exit of {id} on the Events API after the restart: {:?} (want exactly one, status 9)",
            topics(&evs)
        )
    });

    let t = Instant::now();
    let waited = api.call(
        "Tasks.Wait",
        15 * SEC,
        api.tasks().wait(req(
            NS,
            WaitRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            },
        )),
    );
    match waited {
        Ok(w) => {
            let w = w.into_inner();
            f.note(format!(
                "Tasks.Wait after the restart answered in {:.2?}: exit_status {}",
                t.elapsed(),
                w.exit_status
            ));
            f.check(w.exit_status == 9, || {
                format!("Tasks.Wait({id}): exit_status {} (want 9)", w.exit_status)
            });
        }
        Err(s) => {
            f.check(false, || format!("Tasks.Wait({id}) after the restart: {s}"));
        }
    }
    match tasks_get(&api, NS, &id) {
        Ok((st, ex)) => {
            f.check(st == STATUS_STOPPED && ex == 9, || {
                format!("Tasks.Get({id}): status {st}, exit_status {ex} (want STOPPED, 9)")
            });
        }
        Err(e) => {
            f.check(false, || e);
        }
    }
    let tl = p.task(NS, &id);
    f.check(tl.as_ref().map(|t| t.1.as_str()) == Some("STOPPED"), || {
        format!("ctr task ls: {id} is {tl:?} (want STOPPED)")
    });

    // what the shim said while containerd was away (read by containerd from the log FIFO)
    let needle = match shim {
        Shim::Robust => "event delivered after retries",
        Shim::Reference => "evicting", // "evicting <topic> from queue because of retry count"
    };
    let mut lines = Vec::new();
    let logged = poll_quiet(bound(10 * SEC), || {
        let log = p.log_after(&marker);
        lines = grep(&log, needle).into_iter().map(str::to_string).collect();
        !lines.is_empty()
    });
    if shim == Shim::Robust {
        f.check(
            logged
                && lines.iter().any(|l| {
                    l.contains("topic=/tasks/exit") && l.contains(&format!("id={id}"))
                }),
            || format!("no `{needle}` line with topic=/tasks/exit id={id} in the containerd log: {lines:?}"),
        );
    }
    if let Some(l) = lines.first() {
        f.note(format!("shim log: {l}"));
    } else {
        f.note(format!("no `{needle}` line in the containerd log"));
    }
    // the publisher works after the outage: the delete's event comes through
    let del = p.ctr(NS, &["task", "delete", &id]);
    f.check(del.succeeded(), || {
        format!("ctr task delete after the restart: {del:?}")
    });
    let deleted = sub.until(10 * SEC, |evs| {
        evs.iter()
            .any(|e| e.topic == "/tasks/delete" && e.cid == id)
    });
    f.check(deleted, || {
        format!(
            "no /tasks/delete of {id} on the Events API after the restart: {:?}",
            topics(&sub.of(&id))
        )
    });
    f.stream_intact(&sub);
    let log = p.log_after(&marker);
    for n in [
        "event delivery failed",
        "cleaning leaked shim process",
        "exited",
    ] {
        f.note(format!(
            "`{n}` lines in the containerd log after the restart: {}",
            grep(&log, n).len()
        ));
    }
    drop(sub);
    drop(api);
    f.finish();
    drop(p);
});

// ---------------------------------------------------------------------------------------
// 2. OOM: TaskOOM then TaskExit(137), once
// ---------------------------------------------------------------------------------------

shim_test!(events_oom_then_exit, limit = 90, |shim| {
    let mut f = Findings::new("events_oom_then_exit", shim);
    let api = Api::connect();
    let id = unique_id("ev-oom", shim);
    let _g = ContainerGuard::new(NS, &id);
    let mut sub = subscribe(&api, &id);
    let t = Instant::now();
    let out = ctr(
        NS,
        &[
            "run",
            "--rm",
            "--runtime",
            shim.runtime(),
            "--memory-limit",
            OOM_LIMIT,
            &env().image,
            &id,
            "sh",
            "-c",
            &format!("sleep 1; {ALLOCATE}"),
        ],
    )
    .run();
    f.check(out.code == Some(137), || {
        format!(
            "ctr run --rm exited {:?} (want 137): {}",
            out.code,
            out.stderr.trim()
        )
    });
    f.note(format!("ctr run --rm took {:.2?}", t.elapsed()));
    sub.until(15 * SEC, |evs| {
        evs.iter()
            .any(|e| e.cid == id && e.topic == "/tasks/delete")
    });
    sub.pump(Duration::from_millis(500));
    let evs = sub.of(&id);
    let seq = topics(&evs);
    f.note(format!("events: {seq:?}"));
    let ooms: Vec<&&Ev> = evs.iter().filter(|e| e.topic == "/tasks/oom").collect();
    let ex = exits(&evs, &id, &id);
    f.check(ooms.len() == 1, || {
        format!("{} /tasks/oom (want 1): {seq:?}", ooms.len())
    });
    f.check(ex.len() == 1, || {
        format!("{} /tasks/exit (want 1): {seq:?}", ex.len())
    });
    if let Some(e) = ex.first() {
        f.check(e.exit_status == 137, || {
            format!("TaskExit exit_status {} (want 137)", e.exit_status)
        });
        if let Some(o) = ooms.first() {
            f.check(o.seq < e.seq, || format!("TaskOOM after TaskExit: {seq:?}"));
            f.note(format!(
                "TaskOOM {:?} before TaskExit",
                e.at.saturating_duration_since(o.at)
            ));
        }
    }
    f.stream_intact(&sub);
    f.check(
        count(&evs, "/tasks/create") == 1
            && count(&evs, "/tasks/start") == 1
            && count(&evs, "/tasks/delete") == 1,
        || format!("create/start/delete not once each: {seq:?}"),
    );
    f.finish();
});

// ---------------------------------------------------------------------------------------
// 3. 200 short containers, 8 at a time: one exit each, after its start
// ---------------------------------------------------------------------------------------

/// Removes whatever is left of the ids starting with `base` (one listing, not 200 calls).
struct PrefixGuard {
    base: String,
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let ls = |what: &str| -> Vec<String> {
            ctr(NS, &[what, "ls", "-q"])
                .timeout(15 * SEC)
                .run_unclamped()
                .stdout
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with(&format!("{}-", self.base)))
                .map(str::to_string)
                .collect()
        };
        let mut left = ls("task");
        left.extend(ls("container"));
        left.sort();
        left.dedup();
        if !left.is_empty() {
            eprintln!(
                "cleanup: {} leftover containers of {}",
                left.len(),
                self.base
            );
        }
        for id in left {
            cleanup_container(NS, &id);
        }
    }
}

shim_test!(events_many_short_containers, limit = 400, |shim| {
    const N: usize = 200;
    const PARALLEL: usize = 8;
    let mut f = Findings::new("events_many_short_containers", shim);
    let api = Api::connect();
    let base = unique_id("ev-many", shim);
    let _g = PrefixGuard { base: base.clone() };
    let mut sub = subscribe(&api, &base);
    let id_of = |i: usize| format!("{base}-{i}");
    let code_of = |i: usize| (i % 10) as u32;

    let next = Arc::new(AtomicUsize::new(0));
    // (container index, exit code of its `ctr run`, how long it took, its stderr)
    type Outcome = (usize, Option<i32>, Duration, String);
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    // leave time for the checks and the cleanup
    let stop_at = Instant::now() + remaining().saturating_sub(90 * SEC);
    let started = Instant::now();
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (next, results, base, image, rt) = (
                next.clone(),
                results.clone(),
                base.clone(),
                env().image.clone(),
                shim.runtime(),
            );
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= N || Instant::now() >= stop_at {
                    return;
                }
                let id = format!("{base}-{i}");
                let code = i % 10;
                let script = format!("exit {code}");
                let mut args = vec!["run", "--rm", "--runtime", rt, image.as_str(), id.as_str()];
                if code == 0 {
                    args.push("true");
                } else {
                    args.extend(["sh", "-c", script.as_str()]);
                }
                let t = Instant::now();
                let out = ctr(NS, &args).timeout(30 * SEC).run_unclamped();
                results
                    .lock()
                    .unwrap()
                    .push((i, out.code, t.elapsed(), out.stderr));
            })
        })
        .collect();
    // keep draining the subscription while the workers run
    while workers.iter().any(|w| !w.is_finished()) {
        sub.pump(Duration::from_millis(200));
    }
    for w in workers {
        let _ = w.join();
    }
    let wall = started.elapsed();
    let results = results.lock().unwrap().clone();
    f.check(results.len() == N, || {
        format!("only {} of {N} runs done in time", results.len())
    });
    let mut times: Vec<Duration> = results.iter().map(|r| r.2).collect();
    times.sort();
    if !times.is_empty() {
        f.note(format!(
            "{} ctr run --rm ({PARALLEL} at a time) in {wall:.1?}: per run median {:.0?}, p95 {:.0?}, max {:.0?}",
            results.len(),
            times[times.len() / 2],
            times[times.len() * 95 / 100],
            times[times.len() - 1]
        ));
    }
    let bad_runs: Vec<String> = results
        .iter()
        .filter(|(i, c, _, _)| *c != Some(code_of(*i) as i32))
        .map(|(i, c, _, e)| {
            format!(
                "{}: ctr exit {c:?} (want {}) {}",
                id_of(*i),
                code_of(*i),
                e.trim()
            )
        })
        .collect();
    f.check(bad_runs.is_empty(), || {
        format!(
            "{} runs with a wrong exit code: {:?}",
            bad_runs.len(),
            &bad_runs[..bad_runs.len().min(10)]
        )
    });

    let done: Vec<usize> = results.iter().map(|r| r.0).collect();
    let t = Instant::now();
    let complete = sub.until(30 * SEC, |evs| {
        let mut exited: HashMap<&str, ()> = HashMap::new();
        for e in evs.iter().filter(|e| e.topic == "/tasks/exit") {
            exited.insert(e.cid.as_str(), ());
        }
        done.iter().all(|i| exited.contains_key(id_of(*i).as_str()))
    });
    sub.pump(SEC);
    f.note(format!(
        "last exit event {:.2?} after the last run returned",
        t.elapsed()
    ));
    f.check(complete, || {
        "not every run's /tasks/exit arrived within 30 s".into()
    });

    let mut by_id: HashMap<&str, Vec<&Ev>> = HashMap::new();
    for e in &sub.evs {
        if e.cid.starts_with(&format!("{base}-")) {
            by_id.entry(e.cid.as_str()).or_default().push(e);
        }
    }
    let mut problems = Vec::new();
    for i in &done {
        let id = id_of(*i);
        let evs = by_id.get(id.as_str()).cloned().unwrap_or_default();
        let ex = exits(&evs, &id, &id);
        let starts: Vec<&&Ev> = evs.iter().filter(|e| e.topic == "/tasks/start").collect();
        let seq = topics(&evs);
        if ex.len() != 1 {
            // what the shim said about delivering them (retries explain duplicates)
            let said: Vec<String> = fs::read_to_string(&env().log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(id.as_str()) && l.contains("event"))
                .map(str::to_string)
                .collect();
            problems.push(format!(
                "{id}: {} /tasks/exit: {seq:?}; the shim's event log lines: {said:?}",
                ex.len()
            ));
        } else if ex[0].exit_status != code_of(*i) {
            problems.push(format!(
                "{id}: exit_status {} (want {}): {seq:?}",
                ex[0].exit_status,
                code_of(*i)
            ));
        }
        if starts.len() != 1 {
            // each start's pid and place in the stream: one start sent twice, or two starts
            let detail: Vec<String> = starts
                .iter()
                .map(|e| format!("pid {} seq {} ns {}", e.pid, e.seq, e.ns))
                .collect();
            problems.push(format!(
                "{id}: {} /tasks/start ({detail:?}): {seq:?}",
                starts.len()
            ));
        } else if let Some(e) = ex.first() {
            if e.seq < starts[0].seq {
                problems.push(format!("{id}: /tasks/exit before /tasks/start: {seq:?}"));
            }
        }
    }
    f.stream_intact(&sub);
    f.note(format!(
        "{} containers checked, {} with a wrong event sequence",
        done.len(),
        problems.len()
    ));
    f.check(problems.is_empty(), || {
        format!(
            "{} event problems, first: {:?}",
            problems.len(),
            &problems[..problems.len().min(10)]
        )
    });
    f.finish();
});

// ---------------------------------------------------------------------------------------
// 4. shared pid namespace: the exec's exit before the init's
// ---------------------------------------------------------------------------------------

shim_test!(events_shared_pidns_exec_exit_first, limit = 90, |shim| {
    let mut f = Findings::new("events_shared_pidns_exec_exit_first", shim);
    let api = Api::connect();
    let id = unique_id("ev-pidns", shim);
    let exec_id = format!("ex{}", std::process::id());
    let _g = ContainerGuard::new(NS, &id);
    let mut sub = subscribe(&api, &id);
    // the host pid namespace, by the test process's own path (/proc/1 is unreadable here)
    let pidns = format!("pid:/proc/{}/ns/pid", std::process::id());
    ctr(
        NS,
        &[
            "run",
            "-d",
            "--runtime",
            shim.runtime(),
            "--with-ns",
            &pidns,
            &env().image,
            &id,
            "sh",
            "-c",
            "trap 'exit 3' USR1; while :; do sleep 0.1; done",
        ],
    )
    .run()
    .ok();
    let init = wait_task_status(NS, &id, "RUNNING", 15 * SEC);
    wait_trap_ready(init);
    ctr(
        NS,
        &[
            "task",
            "exec",
            "-d",
            "--exec-id",
            &exec_id,
            &id,
            "sleep",
            "60",
        ],
    )
    .run()
    .ok();
    let started = sub.until(10 * SEC, |evs| {
        evs.iter()
            .any(|e| e.cid == id && e.topic == "/tasks/exec-started" && e.id == exec_id)
    });
    assert!(
        started,
        "no /tasks/exec-started for {exec_id}: {:?}",
        topics(&sub.of(&id))
    );
    let exec_pid = sub
        .of(&id)
        .iter()
        .find(|e| e.topic == "/tasks/exec-started")
        .map(|e| e.pid)
        .unwrap_or(0);
    f.check(pid_alive(exec_pid as i32), || {
        format!("exec pid {exec_pid} not alive before the init's exit")
    });

    let t = Instant::now();
    signal(init, libc::SIGUSR1);
    let both = sub.until(30 * SEC, |evs| {
        let mine: Vec<&Ev> = evs.iter().filter(|e| e.cid == id).collect();
        !exits(&mine, &id, &id).is_empty() && !exits(&mine, &id, &exec_id).is_empty()
    });
    let took = t.elapsed();
    sub.pump(Duration::from_millis(500));
    let evs = sub.of(&id);
    let seq = topics(&evs);
    f.note(format!("events: {seq:?}"));
    f.check(both, || format!("not both exits within 30 s: {seq:?}"));
    let ie = exits(&evs, &id, &id);
    let ee = exits(&evs, &id, &exec_id);
    f.check(ie.len() == 1 && ee.len() == 1, || {
        format!("exits not once each: {seq:?}")
    });
    if let (Some(i), Some(e)) = (ie.first(), ee.first()) {
        f.note(format!(
            "init exit {} and exec exit {} published {took:.2?} after the init's signal",
            i.exit_status, e.exit_status
        ));
        f.check(e.seq < i.seq, || {
            format!("the init's /tasks/exit came before the exec's: {seq:?}")
        });
        f.check(i.exit_status == 3, || {
            format!("init exit_status {} (want 3)", i.exit_status)
        });
    }
    f.check(!pid_alive(exec_pid as i32), || {
        format!("exec pid {exec_pid} still alive after both exits")
    });
    f.stream_intact(&sub);
    f.finish();
});
