//! F4 / F5 against the real containerd: a shim daemon killed with SIGKILL while its
//! container is created, running or stopped, with bundle files removed before
//! containerd's dead-shim cleanup (`<shim> delete`) runs; a host process holding the
//! rootfs busy at Task delete and at shim delete; bad input to `delete`; the node
//! `sweep`.
//!
//! How the files are removed "before containerd reacts": the shim is SIGSTOPped, the
//! files are deleted, then it is SIGKILLed; containerd sees the connection drop and
//! runs `<shim> -id <id> -bundle <bundle> delete` at once.
//!
//! Our shim is asserted: afterwards no mount under the bundle, no bundle directory,
//! no runc state, no container process, and a new task of the same container starts.
//! The reference (containerd-shim-runc-v2) is observed, not asserted: what it does is
//! printed and appended to `target/dead-shim-observed-<containerd release>.tsv`
//! (docs/cleanup.md has the side-by-side table), and its leftovers are cleaned by hand
//! so the suite leaves nothing behind.

use super::*;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::{
    CreateNamespaceRequest, CreateTaskRequest, DeleteNamespaceRequest, Namespace, SubscribeRequest,
};
use containerd_client::types::Envelope;
use prost::Message as _;

const SEC: Duration = Duration::from_secs(1);
/// The default runc root parent (containerd's and ours).
const RUNC_ROOT: &str = "/run/containerd/runc";
/// The bundle files whose every combination is removed.
const FILES: [&str; 4] = ["runtime", "init.pid", "options.json", "config.json"];
/// Our delete must finish well inside containerd's 5 s cleanup kill.
const DELETE_BOUND: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------

/// Where the reference's outcomes are appended: one file per containerd release
/// (`target/dead-shim-observed-<release>.tsv`).
fn observed_file() -> PathBuf {
    let release = containerd_release();
    repo_dir().join(format!("target/dead-shim-observed-{release}.tsv"))
}

fn state_root() -> PathBuf {
    env().state_dir.join("io.containerd.runtime.v2.task")
}

pub(super) fn signal(pid: i32, sig: i32) {
    assert!(pid > 1, "refusing to signal pid {pid}");
    // SAFETY: plain kill(2).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The shim daemon serving a task: a containerd-shim process holding its socket and
/// naming the container on its command line.
pub(super) fn shim_pid(ns: &str, id: &str) -> i32 {
    let addr = poll_until("the shim's address file", 5 * SEC, || shim_address(ns, id));
    let want = format!("-id {id} ");
    let pids = socket_holders(&addr);
    pids.iter()
        .copied()
        .find(|p| format!("{} ", cmdline(*p)).contains(&want))
        .unwrap_or_else(|| panic!("no shim process for {id} among {pids:?} holding {addr}"))
}

/// Processes of the container: its pids cgroup (v1) or unified cgroup (v2).
fn container_pids(init: u32) -> Vec<i32> {
    let Ok(cg) = fs::read_to_string(format!("/proc/{init}/cgroup")) else {
        return Vec::new();
    };
    let dir = cg
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            c.split(',')
                .any(|c| c == "pids")
                .then(|| format!("/sys/fs/cgroup/pids{p}"))
        })
        .or_else(|| {
            cg.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| format!("/sys/fs/cgroup{p}")))
        });
    dir.and_then(|d| fs::read_to_string(format!("{d}/cgroup.procs")).ok())
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

pub(super) fn log_lines_for(off: u64, id: &str) -> Vec<String> {
    log_since(off)
        .lines()
        .filter(|l| l.contains(id))
        .map(str::to_string)
        .collect()
}

/// `took=` of our delete's "cleanup finished" line for `id` (escaped inside
/// containerd's "cleanup warnings" line).
fn our_delete_took(lines: &[String], id: &str) -> Option<Duration> {
    let l = lines
        .iter()
        .find(|l| l.contains("cleanup finished") && l.contains(id))?;
    let from = l.find("cleanup finished")?;
    let rest = &l[from..];
    let t = rest.split("took=").nth(1)?;
    let tok: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == 'µ')
        .collect();
    parse_debug_duration(&tok)
}

/// What our `delete` wrote on stderr for `id`, line by line. containerd 1.6 and 1.7 log
/// it as `msg="cleanup warnings <stderr>"`, 2.x as `msg="warnings while cleaning up dead
/// shim" ... warnings="<stderr>"`; both quoted (`\"`, `\n`, `\\`).
pub(super) fn our_delete_output(lines: &[String], id: &str) -> Vec<String> {
    const V1: &str = "msg=\"cleanup warnings ";
    const V2: &str = "msg=\"warnings while cleaning up dead shim\"";
    const V2_VALUE: &str = " warnings=\"";
    let want = format!("id={id} ");
    let mut out = Vec::new();
    for l in lines {
        let start = match (l.find(V1), l.contains(V2), l.find(V2_VALUE)) {
            (Some(s), _, _) => s + V1.len(),
            (None, true, Some(s)) => s + V2_VALUE.len(),
            _ => continue,
        };
        let mut text = String::new();
        let mut it = l[start..].chars();
        while let Some(c) = it.next() {
            match c {
                '"' => break,
                '\\' => match it.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some(c) => text.push(c),
                    None => break,
                },
                c => text.push(c),
            }
        }
        out.extend(
            text.lines()
                .filter(|t| t.contains(&want))
                .map(str::to_string),
        );
    }
    out
}

fn parse_debug_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1e3,
        "µs" | "us" => n / 1e6,
        "ns" => n / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// `timeout -k 2 <secs> <cmd>`: a bounded command; (exit code, stdout, stderr).
pub(super) fn run_bounded(cmd: &mut Command, secs: u64) -> (Option<i32>, Vec<u8>, String) {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut c = Command::new("timeout");
    c.args(["-k", "2", &secs.to_string()])
        .arg(prog)
        .args(args)
        .stdin(Stdio::null());
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    let o = c.output().expect("spawn timeout");
    (
        o.status.code(),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A host process whose cwd is `dir` (it keeps a mount there busy); killed on drop.
struct Holder(Child);

impl Holder {
    fn new(dir: &Path) -> Holder {
        Holder(
            Command::new("sleep")
                .arg("300")
                .current_dir(dir)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn the holder"),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes a directory tree on drop (a custom runtime root), never across mounts.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        for m in mounts_under(&self.0).iter().rev() {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&self.0)
            .status();
    }
}

/// What is left of a bundle the reference could not clean: our own delete on it
/// (it copes with what the reference left), then the bundle and containerd's work
/// dir removed the way containerd would have. Only for a bundle no live shim uses.
/// Never panics.
fn clean_leftover_by_hand(ns: &str, id: &str, pids: &[i32]) {
    let b = bundle_dir(ns, id);
    if b.exists() {
        let (code, _, err) = run_bounded(
            Command::new(our_binary())
                .args(["-namespace", ns, "-id", id, "-bundle"])
                .arg(&b)
                .arg("delete")
                .current_dir(&b),
            10,
        );
        if code != Some(0) {
            eprintln!("hand cleanup of {id}: our delete said {code:?}: {err}");
        }
    }
    kill_pids(pids);
    for m in mounts_under(&b).iter().rev() {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
    let work = env()
        .root_dir
        .join("io.containerd.runtime.v2.task")
        .join(ns)
        .join(id);
    for d in [&b, &work] {
        if d.exists() && mounts_under(d).is_empty() {
            let _ = Command::new("rm")
                .args(["-rf", "--one-file-system"])
                .arg(d)
                .status();
        }
    }
}

/// SIGKILL the processes of a container that outlived its cleanup.
fn kill_pids(pids: &[i32]) {
    for p in pids {
        if pid_alive(*p) {
            signal(*p, libc::SIGKILL);
        }
    }
}

/// The container id (field 1) of every /tasks/* event.
#[derive(Clone, PartialEq, prost::Message)]
struct TaskEventId {
    #[prost(string, tag = "1")]
    container_id: String,
}

/// containerd.events.TaskExit (the fields we check).
#[derive(Clone, PartialEq, prost::Message)]
struct TaskExit {
    #[prost(string, tag = "1")]
    container_id: String,
    #[prost(uint32, tag = "3")]
    pid: u32,
    #[prost(uint32, tag = "4")]
    exit_status: u32,
}

/// containerd's events, from now on: returns once the subscription is known to
/// deliver (the create of a probe namespace came through).
pub(super) fn subscribe_tasks(api: &Api) -> std::sync::mpsc::Receiver<Envelope> {
    let (tx, rx) = std::sync::mpsc::channel::<Envelope>();
    let mut events = api.events();
    api.rt.spawn(async move {
        if let Ok(s) = events.subscribe(SubscribeRequest { filters: vec![] }).await {
            let mut s = s.into_inner();
            while let Ok(Some(m)) = s.message().await {
                if tx.send(m).is_err() {
                    break;
                }
            }
        }
    });
    let base = unique_id("probe", Shim::Robust);
    let mut n = 0;
    poll_until("the event subscription to deliver", 20 * SEC, || {
        let name = format!("{base}-{n}");
        n += 1;
        let created = api.call(
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
        let end = Instant::now() + Duration::from_millis(300);
        let mut seen = false;
        while let Ok(env) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            if env.topic == "/namespaces/create" {
                seen = true;
                break;
            }
        }
        if created.is_ok() {
            let _ = api.call(
                "Namespaces.Delete",
                5 * SEC,
                api.namespaces()
                    .delete(req(&name, DeleteNamespaceRequest { name: name.clone() })),
            );
        }
        seen.then_some(())
    });
    rx
}

/// The next event of `topic` for container `id` within `limit`.
fn next_event(
    rx: &std::sync::mpsc::Receiver<Envelope>,
    topic: &str,
    id: &str,
    limit: Duration,
) -> Option<TaskExit> {
    let end = Instant::now() + bound(limit);
    while let Ok(env) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        let Some(any) = env.event.as_ref() else {
            continue;
        };
        if env.topic != topic
            || !TaskEventId::decode(any.value.as_slice()).is_ok_and(|e| e.container_id == id)
        {
            continue;
        }
        // the pid and status only mean something in a /tasks/exit
        return Some(TaskExit::decode(any.value.as_slice()).unwrap_or_default());
    }
    None
}

// ---------------------------------------------------------------------------------
// one scenario: create, stop the shim, remove files, kill it, observe
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Created,
    Running,
    Stopped,
}

#[derive(Clone, Debug)]
struct Scenario {
    state: St,
    /// Bundle files removed.
    remove: Vec<&'static str>,
    /// Also remove the runtime's state dir (`<root>/<ns>/<id>`).
    runc_state: bool,
    /// Remove everything in the bundle but `rootfs`.
    only_rootfs: bool,
    /// The container uses a custom runc root.
    custom_root: bool,
}

impl Scenario {
    fn new(state: St, remove: &[&'static str]) -> Scenario {
        Scenario {
            state,
            remove: remove.to_vec(),
            runc_state: false,
            only_rootfs: false,
            custom_root: false,
        }
    }
    fn label(&self) -> String {
        let mut parts: Vec<String> = self.remove.iter().map(|s| format!("-{s}")).collect();
        if self.runc_state {
            parts.push("-runc-state-dir".into());
        }
        if self.only_rootfs {
            parts.push("only rootfs left".into());
        }
        if self.custom_root {
            parts.insert(0, "custom runc root".into());
        }
        let what = if parts.is_empty() {
            "nothing removed".to_string()
        } else {
            parts.join(" ")
        };
        format!("{:?}: {what}", self.state).to_lowercase()
    }
}

/// What happened after the shim was killed.
#[derive(Debug)]
struct Observed {
    label: String,
    id: String,
    /// The `what` of each bundle file removed, as our delete names it.
    missing: Vec<&'static str>,
    /// containerd's view of the shim delete: "ok" or its error.
    delete: String,
    /// Our delete's own timing (from its log), when it logged one.
    took: Option<Duration>,
    /// SIGKILL of the shim until containerd dropped the task.
    settled: Duration,
    bundle_left: bool,
    mounts_left: Vec<String>,
    runtime_state_left: bool,
    alive: Vec<i32>,
    /// A new task of the same container: started, or why not (None: not tried).
    restart: Option<Result<(), String>>,
    /// The /tasks/exit containerd published after its cleanup: (pid, exit status).
    exit_event: Option<(u32, u32)>,
    /// The init pid before the kill.
    init: u32,
}

impl Observed {
    fn summary(&self) -> String {
        let mut left = Vec::new();
        if self.bundle_left {
            left.push("bundle".to_string());
        }
        if !self.mounts_left.is_empty() {
            left.push("rootfs mount".into());
        }
        if self.runtime_state_left {
            left.push("runc state".into());
        }
        if !self.alive.is_empty() {
            left.push(format!("{} live process(es)", self.alive.len()));
        }
        format!(
            "delete={} took={} exit={} left=[{}] restart={}",
            self.delete,
            self.took
                .map(|t| format!("{:.0}ms", t.as_secs_f64() * 1e3))
                .unwrap_or_else(|| "-".into()),
            match self.exit_event {
                Some((pid, st)) if pid == self.init => format!("{st}/pid=init"),
                Some((pid, st)) => format!("{st}/pid={pid}"),
                None => "-".into(),
            },
            left.join(", "),
            match &self.restart {
                None => "-".to_string(),
                Some(Ok(())) => "ok".to_string(),
                Some(Err(e)) => format!("FAILED ({e})"),
            }
        )
    }

    fn record(&self, shim: Shim) {
        let line = format!(
            "{}\t{}\t{}\t{:.2}s\n",
            shim.label(),
            self.label,
            self.summary(),
            self.settled.as_secs_f64()
        );
        eprint!("[dead-shim observed] {line}");
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(observed_file())
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn assert_clean(&self, shim: Shim, log: &[String]) {
        let ctx = || {
            format!(
                "[{}] {}\ncontainerd log:\n{}",
                self.label,
                self.summary(),
                log.join("\n")
            )
        };
        assert_eq!(
            self.delete,
            "ok",
            "{} shim delete failed: {}",
            shim.label(),
            ctx()
        );
        assert!(!self.bundle_left, "bundle dir left: {}", ctx());
        assert!(
            self.mounts_left.is_empty(),
            "mounts left {:?}: {}",
            self.mounts_left,
            ctx()
        );
        assert!(!self.runtime_state_left, "runc state dir left: {}", ctx());
        assert!(
            self.alive.is_empty(),
            "container processes alive {:?}: {}",
            self.alive,
            ctx()
        );
        if let Some(Err(e)) = &self.restart {
            panic!(
                "a new task of the same container did not start: {e}: {}",
                ctx()
            );
        }
        let took = self
            .took
            .unwrap_or_else(|| panic!("our delete logged no timing: {}", ctx()));
        // Each bundle file that was gone: one warning, naming the container.
        let ours = our_delete_output(log, &self.id);
        for what in &self.missing {
            let n = ours
                .iter()
                .filter(|l| {
                    l.contains(
                        "level=warning msg=\"cleanup: bundle input unusable; assumed instead\"",
                    ) && l.contains(&format!(" id={} ", self.id))
                        && l.contains(&format!(" what=\"{what} missing\""))
                })
                .count();
            assert_eq!(n, 1, "warnings for {what:?} missing: {}", ctx());
        }
        assert!(took < DELETE_BOUND, "our delete took {took:?}: {}", ctx());
        assert!(
            self.settled < 8 * SEC,
            "containerd settled after {:?}: {}",
            self.settled,
            ctx()
        );
        if let Some((pid, status)) = self.exit_event {
            assert_eq!(status, 137, "exit status reported: {}", ctx());
            assert_eq!(pid, self.init, "pid reported (never -1): {}", ctx());
        } else {
            panic!("no /tasks/exit after the cleanup: {}", ctx());
        }
    }
}

fn run_cmd_args(state: St) -> Vec<&'static str> {
    match state {
        St::Stopped => vec!["sh", "-c", "exit 3"],
        // a child too: the kill must reach every process of the container
        _ => vec!["sh", "-c", "sleep 1000 & sleep 1001; wait"],
    }
}

/// Create the container and its task in `sc.state`; returns the init pid.
fn create(shim: Shim, id: &str, sc: &Scenario, extra: &[String]) -> u32 {
    let e = env();
    let mut args: Vec<String> = vec![if sc.state == St::Created {
        "container"
    } else {
        "run"
    }
    .into()];
    if sc.state == St::Created {
        args.push("create".into());
    } else {
        args.push("-d".into());
    }
    args.extend(["--runtime".to_string(), shim.runtime().to_string()]);
    args.extend(extra.iter().cloned());
    // ctr 1.6's `container create` would take the command's `-c` for its own
    // `--config` flag.
    args.push("--".into());
    args.push(e.image.clone());
    args.push(id.to_string());
    args.extend(run_cmd_args(sc.state).into_iter().map(String::from));
    ctr(NS, &args).run().ok();
    match sc.state {
        St::Running => wait_task_status(NS, id, "RUNNING", 15 * SEC),
        St::Stopped => wait_task_status(NS, id, "STOPPED", 15 * SEC),
        St::Created => {
            let api = Api::connect();
            let mounts = api
                .call(
                    "Snapshots.Mounts",
                    10 * SEC,
                    api.snapshots().mounts(req(
                        NS,
                        MountsRequest {
                            snapshotter: "overlayfs".into(),
                            key: id.to_string(),
                        },
                    )),
                )
                .unwrap_or_else(|s| panic!("Snapshots.Mounts({id}): {s}"))
                .into_inner()
                .mounts;
            let created = api
                .call(
                    "Tasks.Create",
                    30 * SEC,
                    api.tasks().create(req(
                        NS,
                        CreateTaskRequest {
                            container_id: id.to_string(),
                            rootfs: mounts,
                            ..Default::default()
                        },
                    )),
                )
                .unwrap_or_else(|s| panic!("Tasks.Create({id}): {s}"))
                .into_inner();
            wait_task_status(NS, id, "CREATED", 10 * SEC);
            created.pid
        }
    }
}

/// Wait until containerd has run its dead-shim cleanup of `id` and dropped the task.
pub(super) fn wait_cleanup(id: &str, b: &Path, off: u64) -> (String, Vec<String>) {
    let delete = poll_until(
        &format!("containerd's dead-shim cleanup of {id}"),
        15 * SEC,
        || {
            let lines = log_lines_for(off, id);
            if let Some(l) = lines
                .iter()
                .find(|l| l.contains("failed to clean up after shim disconnected"))
            {
                let err = l
                    .split("error=")
                    .nth(1)
                    .unwrap_or(l)
                    .replace(&b.display().to_string(), "<bundle>");
                let err = err.split(" id=").next().unwrap_or(&err);
                let tail: String = err
                    .chars()
                    .rev()
                    .take(160)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Some(format!("FAILED ({})", tail.trim_matches('"')));
            }
            let started = lines
                .iter()
                .any(|l| l.contains("cleaning up after shim disconnected"));
            (started && !b.exists()).then(|| "ok".to_string())
        },
    );
    poll_until(&format!("containerd to drop task {id}"), 10 * SEC, || {
        task_status(NS, id).is_none().then_some(())
    });
    (delete, log_lines_for(off, id))
}

fn observe(shim: Shim, case: &str, sc: &Scenario) -> (Observed, Vec<String>) {
    let id = unique_id(case, shim);
    let b = bundle_dir(NS, &id);
    let mut extra = Vec::new();
    let mut root_parent = PathBuf::from(RUNC_ROOT);
    let _root_guard = if sc.custom_root {
        let base = PathBuf::from(format!(
            "/run/robust-it-dead-{}-{}",
            shim.label(),
            std::process::id()
        ));
        root_parent = base.join("runc");
        fs::create_dir_all(&root_parent).unwrap();
        match shim {
            Shim::Robust => {
                let cfg = base.join("robust.toml");
                fs::write(
                    &cfg,
                    format!("[runtime]\nroot = \"{}\"\n", root_parent.display()),
                )
                .unwrap();
                extra.extend([
                    "--runtime-config-path".to_string(),
                    cfg.display().to_string(),
                ]);
            }
            Shim::Reference => {
                extra.extend(["--runc-root".to_string(), root_parent.display().to_string()]);
            }
        }
        Some(DirGuard(base))
    } else {
        None
    };
    // after the root guard: dropped first, while the custom root still exists
    let _g = ContainerGuard::new(NS, &id);
    let state_dir = root_parent.join(NS).join(&id);

    let api = Api::connect();
    let events = subscribe_tasks(&api);
    let init = create(shim, &id, sc, &extra);
    // The subscription delivers (the task's create went through it): the exit
    // published after the cleanup will be seen.
    let subscribed = next_event(&events, "/tasks/create", &id, 10 * SEC).is_some();
    if sc.state == St::Stopped {
        // the real exit (status 3) first: the one after the cleanup is what we check
        next_event(&events, "/tasks/exit", &id, 10 * SEC);
    }
    while events.try_recv().is_ok() {}
    let pids: Vec<i32> = match sc.state {
        St::Stopped => Vec::new(),
        _ => {
            let mut p = container_pids(init);
            if p.is_empty() {
                p.push(init as i32);
            }
            p
        }
    };
    assert!(
        state_dir.exists(),
        "runc state dir {} missing before the kill",
        state_dir.display()
    );

    let sp = shim_pid(NS, &id);
    signal(sp, libc::SIGSTOP);
    for f in &sc.remove {
        let _ = fs::remove_file(b.join(f));
    }
    if sc.only_rootfs {
        for e in fs::read_dir(&b).unwrap().flatten() {
            if e.file_name() != "rootfs" {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    if sc.runc_state {
        fs::remove_dir_all(&state_dir).unwrap();
    }
    let off = log_offset();
    let t0 = Instant::now();
    signal(sp, libc::SIGKILL);
    let (delete, log) = wait_cleanup(&id, &b, off);
    let settled = t0.elapsed();
    let exit_event = if subscribed {
        next_event(&events, "/tasks/exit", &id, 5 * SEC).map(|e| (e.pid, e.exit_status))
    } else {
        None
    };
    // SIGKILLed processes go quickly; pid 1 reaps them lazily (zombies do not count).
    poll_quiet(3 * SEC, || pids.iter().all(|p| !pid_alive(*p)));

    let removed: Vec<&str> = if sc.only_rootfs {
        vec![
            "runtime",
            "init.pid",
            "options.json",
            "config.json",
            "address",
        ]
    } else {
        sc.remove.clone()
    };
    let mut o = Observed {
        label: sc.label(),
        id: id.clone(),
        missing: removed
            .iter()
            .map(|f| match *f {
                "runtime" => "runtime file",
                "address" => "address file",
                other => other,
            })
            .collect(),
        delete,
        took: our_delete_took(&log, &id),
        settled,
        bundle_left: b.exists(),
        mounts_left: mounts_under(&b),
        runtime_state_left: state_dir.exists(),
        alive: pids.iter().copied().filter(|p| pid_alive(*p)).collect(),
        restart: None,
        exit_event,
        init,
    };
    let start = ctr(NS, &["task", "start", "-d", "--null-io", &id])
        .timeout(20 * SEC)
        .run();
    o.restart = Some(if start.succeeded() {
        Ok(())
    } else {
        Err(start.stderr.trim().chars().take(200).collect())
    });
    if shim == Shim::Reference {
        // What the reference left: the old processes always go; the bundle and the
        // runc state only when no new task took their place.
        kill_pids(&o.alive);
        if !start.succeeded() && (o.bundle_left || o.runtime_state_left) {
            clean_leftover_by_hand(NS, &id, &pids);
            if state_dir.exists() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(root_parent.join(NS))
                    .args(["delete", "--force", &id])
                    .status();
            }
        }
    }
    (o, log)
}

fn check(shim: Shim, case: &str, sc: &Scenario) {
    let (o, log) = observe(shim, case, sc);
    o.record(shim);
    if shim == Shim::Robust {
        o.assert_clean(shim, &log);
    }
}

// ---------------------------------------------------------------------------------
// the cases
// ---------------------------------------------------------------------------------

// Running container, shim SIGKILLed, every combination of runtime / init.pid /
// options.json / config.json removed first.
shim_test!(killed_running_every_file_combination, limit = 420, |shim| {
    for mask in 0u32..16 {
        let remove: Vec<&'static str> = FILES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, f)| *f)
            .collect();
        check(shim, "dead-run", &Scenario::new(St::Running, &remove));
    }
});

// Running container: the runtime's state dir gone too, the address file gone, only
// the rootfs left, and a custom runc root whose options.json is gone.
shim_test!(killed_running_state_gone, limit = 300, |shim| {
    let mut sc = Scenario::new(St::Running, &[]);
    sc.runc_state = true;
    check(shim, "dead-state", &sc);
    let mut sc = Scenario::new(St::Running, &["runtime", "options.json"]);
    sc.runc_state = true;
    check(shim, "dead-state", &sc);
    check(
        shim,
        "dead-state",
        &Scenario::new(St::Running, &["address"]),
    );
    let mut sc = Scenario::new(St::Running, &[]);
    sc.only_rootfs = true;
    check(shim, "dead-state", &sc);
    let mut sc = Scenario::new(St::Running, &["options.json"]);
    sc.custom_root = true;
    check(shim, "dead-state", &sc);
});

// Created (never started) task.
shim_test!(killed_created, limit = 300, |shim| {
    for remove in [&[][..], &["runtime"], &FILES[..]] {
        check(shim, "dead-created", &Scenario::new(St::Created, remove));
    }
    let mut sc = Scenario::new(St::Created, &[]);
    sc.only_rootfs = true;
    check(shim, "dead-created", &sc);
});

// Stopped (exited, not deleted) task.
shim_test!(killed_stopped, limit = 300, |shim| {
    for remove in [&[][..], &["runtime"], &FILES[..]] {
        check(shim, "dead-stopped", &Scenario::new(St::Stopped, remove));
    }
    let mut sc = Scenario::new(St::Stopped, &[]);
    sc.only_rootfs = true;
    check(shim, "dead-stopped", &sc);
});

// containerd runs `<shim> delete` after every shim exit, a normal Task Delete included,
// and logs whatever it writes on stderr as `level=warning msg="cleanup warnings ..."`.
// After a healthy `ctr run --rm` there is nothing to act on: our shim adds no warning
// about the container to containerd's log, only containerd's own "cleaning up after shim
// disconnected" (logged for every shim, the Go shim's too). The reference is observed:
// its delete writes a line that names no container.
shim_test!(healthy_run_rm_logs_no_warning, limit = 90, |shim| {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Sets the flag when dropped (a failing body too), so the lister ends.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let e = env();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // `ctr task ls` meanwhile, as a node agent would: containerd then asks the
        // shim for the state of a task still being created (an answer, not a warning).
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                ctr(NS, &["task", "ls", "-q"]).timeout(10 * SEC).run();
            }
        });
        let _stop = StopOnDrop(&stop);
        for _ in 0..3 {
            let id = unique_id("quiet", shim);
            let _g = ContainerGuard::new(NS, &id);
            let b = bundle_dir(NS, &id);
            let off = log_offset();
            ctr(
                NS,
                &[
                    "run",
                    "--rm",
                    "--runtime",
                    shim.runtime(),
                    &e.image,
                    &id,
                    "true",
                ],
            )
            .run()
            .code_is(0);
            // containerd ran the shim's delete (it logs "cleaning up" first, waits for
            // the delete, then removes the bundle)
            poll_until(
                &format!("containerd's cleanup after the shim of {id} exited"),
                15 * SEC,
                || {
                    (log_lines_for(off, &id)
                        .iter()
                        .any(|l| l.contains("cleaning up after shim disconnected"))
                        && !b.exists())
                    .then_some(())
                },
            );
            let lines = log_lines_for(off, &id);
            let warnings: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains("level=warning") || l.contains("level=error"))
                .filter(|l| !l.contains("msg=\"cleaning up after shim disconnected\""))
                .collect();
            match shim {
                Shim::Robust => assert!(
                    warnings.is_empty(),
                    "warnings about {id} after a healthy run --rm:\n{}",
                    lines.join("\n")
                ),
                Shim::Reference => {
                    eprintln!(
                        "[quiet observed] reference {id}: {} warning(s)",
                        warnings.len()
                    )
                }
            }
        }
    });
});

// F5 at Task delete: a host process holds its cwd in the rootfs. Ours: the delete
// completes within the unmount bound and the log names the holder.
shim_test!(busy_rootfs_task_delete, limit = 120, |shim| {
    let id = unique_id("busy-task", shim);
    let _g = ContainerGuard::new(NS, &id);
    let b = bundle_dir(NS, &id);
    run_detached(shim, &id, &["sleep", "1000"]);
    let holder = Holder::new(&b.join("rootfs"));
    let hp = holder.pid();
    ctr(NS, &["task", "kill", "-s", "SIGKILL", &id]).run().ok();
    wait_task_status(NS, &id, "STOPPED", 15 * SEC);
    let off = log_offset();
    let t = Instant::now();
    let del = ctr(NS, &["task", "delete", &id]).timeout(30 * SEC).run();
    let took = t.elapsed();
    let log = log_since(off);
    let named = log
        .lines()
        .any(|l| l.contains(&format!("{hp}(sleep)")) && l.contains(&id));
    let line = format!(
        "{}\tbusy rootfs (holder cwd) at Task delete\tdelete={} took={:.0}ms holder named={named} mounts left={}\t-\n",
        shim.label(),
        if del.succeeded() { "ok".to_string() } else { format!("FAILED ({})", del.stderr.trim()) },
        took.as_secs_f64() * 1e3,
        mounts_under(&b).len()
    );
    eprint!("[dead-shim observed] {line}");
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(observed_file())
    {
        let _ = f.write_all(line.as_bytes());
    }
    if shim == Shim::Robust {
        assert!(
            del.succeeded(),
            "Task delete with a busy rootfs: {}",
            del.stderr
        );
        // the service's unmount bound (2 s by default) plus the runtime's delete
        assert!(took < 5 * SEC, "Task delete took {took:?}");
        assert!(named, "the log does not name holder {hp}(sleep):\n{log}");
        assert!(
            mounts_under(&b).is_empty(),
            "mounts left: {:?}",
            mounts_under(&b)
        );
        poll_until("the bundle dir to go", 5 * SEC, || {
            (!b.exists()).then_some(())
        });
    }
    drop(holder);
});

// F5 at shim delete: the shim is SIGKILLed while a host process holds the rootfs.
// Ours: containerd's cleanup (`<shim> delete`) completes within its bound, detaches
// lazily, and names the holder in containerd's log.
shim_test!(busy_rootfs_shim_delete, limit = 120, |shim| {
    let id = unique_id("busy-shim", shim);
    let _g = ContainerGuard::new(NS, &id);
    let b = bundle_dir(NS, &id);
    let api = Api::connect();
    let events = subscribe_tasks(&api);
    let init = run_detached(shim, &id, &["sleep", "1000"]);
    let subscribed = next_event(&events, "/tasks/create", &id, 10 * SEC).is_some();
    let pids = container_pids(init);
    let holder = Holder::new(&b.join("rootfs"));
    let hp = holder.pid();
    let sp = shim_pid(NS, &id);
    let off = log_offset();
    let t0 = Instant::now();
    signal(sp, libc::SIGKILL);
    let (delete, log) = wait_cleanup(&id, &b, off);
    let settled = t0.elapsed();
    let exit_event = subscribed
        .then(|| next_event(&events, "/tasks/exit", &id, 5 * SEC))
        .flatten()
        .map(|e| (e.pid, e.exit_status));
    poll_quiet(3 * SEC, || pids.iter().all(|p| !pid_alive(*p)));
    let named = log.iter().any(|l| l.contains(&format!("{hp}(sleep)")));
    let o = Observed {
        label: "running: busy rootfs (holder cwd) at shim delete".into(),
        id: id.clone(),
        missing: Vec::new(),
        delete,
        took: our_delete_took(&log, &id),
        settled,
        bundle_left: b.exists(),
        mounts_left: mounts_under(&b),
        runtime_state_left: Path::new(RUNC_ROOT).join(NS).join(&id).exists(),
        alive: pids.iter().copied().filter(|p| pid_alive(*p)).collect(),
        restart: None,
        exit_event,
        init,
    };
    o.record(shim);
    if shim == Shim::Robust {
        o.assert_clean(shim, &log);
        assert!(
            named,
            "containerd's log does not name holder {hp}(sleep):\n{}",
            log.join("\n")
        );
    } else {
        eprintln!("[dead-shim observed] ref holder named in the log: {named}");
        drop(holder);
        clean_leftover_by_hand(NS, &id, &pids);
    }
});

/// `containerd-shim-robust-v2 sweep ...` (bounded): (exit code, stdout table, stderr).
pub(super) fn sweep(args: &[&str]) -> (Option<i32>, String, String) {
    let root = state_root();
    let (code, out, err) = run_bounded(
        Command::new(our_binary())
            .arg("sweep")
            .arg("--state-dir")
            .arg(&root)
            .args(args),
        20,
    );
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

pub(super) fn table_row<'a>(table: &'a str, id: &str) -> Option<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(id))
}

// The node sweep on a real leftover. Ours: a bundle whose cleanup containerd could
// not run (its directory was out of the way at the time) is found, cleaned and
// removed; a live container is left alone; a dry run changes nothing; a second run
// finds nothing. The reference's leftover (runtime file missing) is listed as not
// ours and left alone.
shim_test!(sweep_leftovers, limit = 150, |shim| {
    let left = unique_id("sweep-left", shim);
    let live = unique_id("sweep-live", shim);
    let mut g = ContainerGuard::new(NS, &left);
    g.add(&live);
    let b = bundle_dir(NS, &left);
    let init = run_detached(shim, &left, &["sleep", "1000"]);
    let pids = container_pids(init);
    run_detached(shim, &live, &["sleep", "1000"]);
    let sp = shim_pid(NS, &left);
    let off = log_offset();
    let runc_state = Path::new(RUNC_ROOT).join(NS).join(&left);
    match shim {
        Shim::Robust => {
            // containerd's cleanup cannot run in a bundle that is not there: move it
            // aside while the shim dies, then put it back.
            signal(sp, libc::SIGSTOP);
            let hidden = b.with_file_name(format!(".{left}.aside"));
            fs::rename(&b, &hidden).unwrap();
            signal(sp, libc::SIGKILL);
            let failed = poll_quiet(10 * SEC, || {
                log_lines_for(off, &left)
                    .iter()
                    .any(|l| l.contains("failed to clean up after shim disconnected"))
            });
            fs::rename(&hidden, &b).unwrap();
            assert!(failed, "containerd's cleanup did not fail as arranged");
        }
        Shim::Reference => {
            signal(sp, libc::SIGSTOP);
            fs::remove_file(b.join("runtime")).unwrap();
            signal(sp, libc::SIGKILL);
            poll_quiet(10 * SEC, || {
                log_lines_for(off, &left)
                    .iter()
                    .any(|l| l.contains("failed to clean up after shim disconnected"))
            });
        }
    }
    poll_until("containerd to drop the task", 10 * SEC, || {
        task_status(NS, &left).is_none().then_some(())
    });
    // What containerd's failed cleanup left
    let left_over = |b: &Path| {
        (
            b.exists(),
            !mounts_under(b).is_empty(),
            runc_state.exists(),
            pids.iter().any(|p| pid_alive(*p)),
        )
    };
    let (bundle_left, mounts_left, state_left, procs_left) = left_over(&b);
    match shim {
        // A real leftover: bundle, rootfs mount, runc state, live processes.
        Shim::Robust => assert!(
            bundle_left && mounts_left && state_left && procs_left,
            "not the leftover arranged: bundle {bundle_left}, rootfs mounts {mounts_left}, \
             runc state {state_left}, live processes {procs_left}"
        ),
        // containerd 1.6's cleanup with the runc shim fails without `runtime` and leaves
        // all of it; later releases clean more by themselves (docs/cleanup.md)
        Shim::Reference => {
            let release = containerd_release();
            eprintln!(
                "[dead-shim observed] ref, containerd {release}, cleanup with `runtime` removed left: \
                 bundle {bundle_left}, rootfs mounts {mounts_left}, runc state {state_left}, \
                 live processes {procs_left}"
            );
            if !bundle_left {
                // nothing for the sweep to find: it must not list the id
                let (_, table, _) = sweep(&["--namespace", NS, "--dry-run", "--min-age", "0"]);
                assert!(table_row(&table, &left).is_none(), "{table}");
                clean_leftover_by_hand(NS, &left, &pids);
                return;
            }
        }
    }

    // dry run over the whole namespace: lists, changes nothing
    let (code, table, err) = sweep(&["--namespace", NS, "--dry-run", "--min-age", "0"]);
    eprintln!("sweep --dry-run:\n{table}");
    let row =
        table_row(&table, &left).unwrap_or_else(|| panic!("no row for {left}:\n{table}\n{err}"));
    let live_row =
        table_row(&table, &live).unwrap_or_else(|| panic!("no row for {live}:\n{table}"));
    assert!(live_row.contains("alive"), "{live_row}");
    assert!(b.exists() && !mounts_under(&b).is_empty() && runc_state.exists());
    assert!(pids.iter().any(|p| pid_alive(*p)));
    // the live container, swept by id: left alone
    let (code_live, t_live, _) = sweep(&["--namespace", NS, "--id", &live, "--min-age", "0"]);
    assert_eq!(code_live, Some(0), "{t_live}");
    assert!(
        table_row(&t_live, &live).is_some_and(|r| r.contains("alive") && r.contains("skip")),
        "{t_live}"
    );
    assert_eq!(
        task_status(NS, &live).map(|s| s.1).as_deref(),
        Some("RUNNING")
    );

    // the leftover, for real
    let t = Instant::now();
    let (code2, table2, err2) = sweep(&["--namespace", NS, "--id", &left, "--min-age", "0"]);
    let took = t.elapsed();
    eprintln!("sweep --id {left}:\n{table2}");
    let row2 =
        table_row(&table2, &left).unwrap_or_else(|| panic!("no row for {left}:\n{table2}\n{err2}"));
    match shim {
        Shim::Robust => {
            assert_eq!(code, Some(0), "dry run: {err}");
            assert!(row.contains("would clean"), "{row}");
            assert_eq!(code2, Some(0), "sweep: {table2}\n{err2}");
            assert!(row2.contains("ok: bundle removed"), "{row2}\n{err2}");
            assert!(took < 5 * SEC, "sweep took {took:?}");
            assert!(!b.exists(), "bundle left");
            assert!(mounts_under(&b).is_empty());
            assert!(!runc_state.exists(), "runc state left");
            assert!(
                poll_quiet(3 * SEC, || pids.iter().all(|p| !pid_alive(*p))),
                "processes left"
            );
            // again: nothing to do
            let (code3, table3, _) = sweep(&["--namespace", NS, "--id", &left, "--min-age", "0"]);
            assert_eq!(code3, Some(0));
            assert!(table_row(&table3, &left).is_none(), "{table3}");
            // the same container runs again
            ctr(NS, &["task", "start", "-d", "--null-io", &left])
                .timeout(20 * SEC)
                .run()
                .ok();
            wait_task_status(NS, &left, "RUNNING", 15 * SEC);
        }
        Shim::Reference => {
            eprintln!("[dead-shim observed] ref leftover in sweep: {row2}");
            assert!(row2.contains("not our shim"), "{row2}");
            // left alone
            assert_eq!(
                left_over(&b),
                (bundle_left, mounts_left, state_left, procs_left),
                "the sweep touched a bundle that is not our shim's"
            );
            clean_leftover_by_hand(NS, &left, &pids);
        }
    }
});

// Bad input to `delete` and `sweep`: refused with a clear error, nothing touched. Our
// shim only (this is about our command line).
#[test]
fn delete_refuses_bad_input() {
    run_case(
        "dead_shim::delete_refuses_bad_input",
        Shim::Robust,
        60,
        |_| {
            let bin = our_binary();
            let tmp = PathBuf::from(format!("/run/robust-it-badinput-{}", std::process::id()));
            let _g = DirGuard(tmp.clone());
            let ns_dir = tmp.join(NS);
            fs::create_dir_all(&ns_dir).unwrap();
            let real = ns_dir.join("c1");
            fs::create_dir_all(real.join("rootfs")).unwrap();
            let mounts_before = mounts_under(Path::new("/")).len();
            let del = |id: &str, bundle: &Path| {
                run_bounded(
                    Command::new(&bin)
                        .args(["-namespace", NS, "-id", id, "-bundle"])
                        .arg(bundle)
                        .arg("delete")
                        .current_dir(&tmp),
                    10,
                )
            };
            for (id, bundle, want) in [
                ("../c1", real.clone(), "invalid container id"),
                ("/c1", real.clone(), "invalid container id"),
                ("c1", PathBuf::from("default/c1"), "not absolute"),
                ("c1", ns_dir.join("../default/c1"), "\"..\""),
                ("c2", real.clone(), "does not end in the container id"),
            ] {
                let (code, out, err) = del(id, &bundle);
                assert_ne!(code, Some(0), "{id} {bundle:?} accepted: {err}");
                assert!(out.is_empty(), "a response was printed for refused input");
                assert!(
                    err.contains("refusing to clean up") && err.contains(want),
                    "{id} {bundle:?}: {err}"
                );
            }
            // A bundle that is a symlink to /: refused.
            let link = ns_dir.join("c3");
            std::os::unix::fs::symlink("/", &link).unwrap();
            let (code, _, err) = del("c3", &link);
            assert_ne!(code, Some(0));
            assert!(err.contains("symlink"), "{err}");
            // A real bundle whose rootfs is a symlink to /: cleaned, nothing outside touched,
            // pid 0 and exit status 137 in the response.
            let id = unique_id("badinput-rootfs", Shim::Robust);
            let b = ns_dir.join(&id);
            fs::create_dir_all(&b).unwrap();
            std::os::unix::fs::symlink("/", b.join("rootfs")).unwrap();
            let (code, out, err) = del(&id, &b);
            assert_eq!(code, Some(0), "{err}");
            assert!(err.contains("rootfs is a symlink"), "{err}");
            let resp = DeleteResponse::decode(out.as_slice()).expect("a DeleteResponse");
            assert_eq!(resp.exit_status, 137);
            assert_eq!(resp.pid, 0);
            assert!(Path::new("/etc/passwd").exists());
            assert_eq!(mounts_under(Path::new("/")).len(), mounts_before);
            assert!(fs::symlink_metadata(b.join("rootfs"))
                .unwrap()
                .file_type()
                .is_symlink());
            // sweep: a state dir with .. is refused
            let (code, _, err) = run_bounded(
                Command::new(&bin)
                    .args(["sweep", "--dry-run", "--state-dir"])
                    .arg(tmp.join("default/..")),
                10,
            );
            assert_ne!(code, Some(0));
            assert!(err.contains("\"..\""), "{err}");
        },
    );
}

/// containerd.task.v2.DeleteResponse (the fields we check).
#[derive(Clone, PartialEq, prost::Message)]
struct DeleteResponse {
    #[prost(uint32, tag = "1")]
    pid: u32,
    #[prost(uint32, tag = "2")]
    exit_status: u32,
}
