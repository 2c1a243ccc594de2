//! gVisor pods as Kubernetes users see them through CRI (handler `gvisor`, issue 17): an
//! app container's output in its CRI log file, ExecSync with a timeout, and an OOM kill.
//!
//! Each case runs through our shim only (there is no reference runsc shim here) and is
//! skipped, printed, only when runsc itself cannot run on the machine (see `gvisor`).
//! What runsc does and why the shim does what it does: docs/gvisor.md.

use super::dead_shim::{log_lines_for, our_delete_output};
use super::gvisor::{
    app_container, assert_runsc_gone, pod_config, run_gvisor_pod_with, runsc_or_skip,
    runsc_processes, runsc_root, stop_remove, wait_task_cleaned, SEC, STOP_REMOVE_BOUND,
};
use super::*;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use containerd_client::types::Envelope;
use k8s_cri::v1::{
    ContainerConfig, ContainerState, ContainerStatusRequest, ExecSyncRequest,
    LinuxContainerResources, NamespaceMode, PodSandboxConfig,
};
use prost::Message as _;

/// Generates one `#[test]` (our shim only) for a runsc case.
macro_rules! gv_test {
    ($(#[$meta:meta])* $name:ident, limit = $secs:expr, |$shim:ident| $body:block) => {
        $(#[$meta])*
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($shim: Shim) $body
            #[test]
            fn robust() {
                run_case(module_path!(), Shim::Robust, $secs, body)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

/// `(state, exit code, reason)` of a CRI container.
fn status(api: &Api, cid: &str) -> (i32, i32, String) {
    let st = api
        .call(
            "ContainerStatus",
            10 * SEC,
            api.cri().container_status(ContainerStatusRequest {
                container_id: cid.into(),
                verbose: false,
            }),
        )
        .unwrap_or_else(|s| panic!("ContainerStatus({cid}): {s}"))
        .into_inner()
        .status
        .unwrap_or_else(|| panic!("ContainerStatus({cid}) without a status"));
    (st.state, st.exit_code, st.reason)
}

const RUNNING: i32 = ContainerState::ContainerRunning as i32;
const EXITED: i32 = ContainerState::ContainerExited as i32;

/// Waits (bounded) until CRI reports `cid` exited; returns `(exit code, reason)`.
fn wait_exited(api: &Api, what: &str, cid: &str, limit: Duration) -> (i32, String) {
    poll_until(
        &format!("{what} ({cid}) to be reported exited"),
        limit,
        || {
            let (state, code, reason) = status(api, cid);
            (state == EXITED).then_some((code, reason))
        },
    )
}

/// A directory of this case, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(case: &str) -> TempDir {
        let d = env().run_dir.join(unique_id(case, Shim::Robust));
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `(stream, line)` pairs of a CRI log file (`<time> <stream> <P|F> <text>`, partial
/// lines joined); empty while the file does not exist.
fn cri_log(path: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut partial: std::collections::HashMap<String, String> = Default::default();
    for l in text.lines() {
        let mut f = l.splitn(4, ' ');
        let (_, Some(stream), Some(tag)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let msg = f.next().unwrap_or("");
        let acc = partial.entry(stream.to_string()).or_default();
        acc.push_str(msg);
        if tag == "F" {
            out.push((stream.to_string(), std::mem::take(acc)));
        }
    }
    out
}

/// Waits (bounded) until the CRI log `path` holds every `(stream, line)` of `want`;
/// panics with what it holds.
fn wait_log(path: &Path, want: &[(&str, &str)], limit: Duration) {
    let mut got = Vec::new();
    let ok = poll_quiet(bound(limit), || {
        got = cri_log(path);
        want.iter()
            .all(|(s, l)| got.iter().any(|(gs, gl)| gs == s && gl == l))
    });
    assert!(
        ok,
        "CRI log {} should hold {want:?} within {limit:?}; it holds {got:?}",
        path.display()
    );
}

/// Commands of the processes of container `id` in its runsc sandbox (`runsc ps`).
fn sandbox_commands(id: &str) -> Vec<String> {
    let out = Command::new("timeout")
        .args(["-k", "2", "10", "runsc", "--root"])
        .arg(runsc_root(CRI_NS))
        .args(["ps", id])
        .output()
        .unwrap_or_else(|e| panic!("runsc ps {id}: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

/// containerd.events.TaskExit / TaskOOM (the fields we check; a TaskOOM has field 1 only).
#[derive(Clone, PartialEq, prost::Message)]
struct TaskEvent {
    #[prost(string, tag = "1")]
    container_id: String,
    #[prost(string, tag = "2")]
    id: String,
    #[prost(uint32, tag = "4")]
    exit_status: u32,
}

/// Appends the `/tasks/exit` and `/tasks/oom` events received so far to `into`, in
/// order, as `(topic, event)`.
fn drain_events(rx: &Receiver<Envelope>, into: &mut Vec<(String, TaskEvent)>) {
    while let Ok(env) = rx.try_recv() {
        keep_task_event(env, into);
    }
}

/// The same, for everything received during `window`.
fn collect_events(rx: &Receiver<Envelope>, into: &mut Vec<(String, TaskEvent)>, window: Duration) {
    let end = Instant::now() + bound(window);
    while let Ok(env) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        keep_task_event(env, into);
    }
}

fn keep_task_event(env: Envelope, into: &mut Vec<(String, TaskEvent)>) {
    if env.topic != "/tasks/exit" && env.topic != "/tasks/oom" {
        return;
    }
    if let Some(any) = env.event.as_ref() {
        if let Ok(e) = TaskEvent::decode(any.value.as_slice()) {
            into.push((env.topic.clone(), e));
        }
    }
}

/// Events of container `cid` (its init's and its execs'), in order.
fn events_of<'a>(all: &'a [(String, TaskEvent)], cid: &str) -> Vec<&'a (String, TaskEvent)> {
    all.iter().filter(|(_, e)| e.container_id == cid).collect()
}

// ---------------------------------------------------------------------------------------
// container logs
// ---------------------------------------------------------------------------------------

gv_test!(
    /// The output of a pod's app containers reaches their CRI log files, stdout and stderr
    /// apart: a short-lived one (exits 0) and a long-running one (read while it runs).
    /// Regression (issue 17): runsc gives a sub-container the stdio of `runsc start`, and
    /// the shim gave that call none, so the log files stayed empty. And healthy containers
    /// leave no warning: our `delete`, which containerd runs after each task delete, writes
    /// nothing for them (it warned, for every app container of a runsc pod, that it would
    /// not kill through the sandbox's cgroup).
    gvisor_cri_container_logs,
    limit = 180,
    |shim| {
        let case = "gvisor_cri_container_logs";
        if !runsc_or_skip(case) {
            return;
        }
        let api = Api::connect();
        let off = log_offset();
        let logs = TempDir::new("gv-logs");
        let mut guard = PodGuard::new();
        let mut config = pod_config(&unique_id("gv-logs", shim), NamespaceMode::Container);
        config.log_directory = logs.0.to_string_lossy().into_owned();
        let with_log = |name: &str, cmd: &str| ContainerConfig {
            log_path: format!("{name}.log"),
            ..app_container(name, cmd, NamespaceMode::Container)
        };
        let containers = vec![
            with_log("short", "echo hello World; echo oops-short >&2"),
            with_log(
                "long",
                "echo started-long; echo err-long >&2; while :; do sleep 1; done",
            ),
        ];
        let Some((pod_id, ids)) = run_gvisor_pod_with(&api, case, config, containers, &mut guard)
        else {
            return;
        };
        let (short, long) = (&ids[0], &ids[1]);

        let (code, reason) = wait_exited(&api, "the short-lived container", short, 30 * SEC);
        assert_eq!(code, 0, "short-lived container: exit {code} ({reason})");
        let t = Instant::now();
        wait_log(
            &logs.0.join("short.log"),
            &[("stdout", "hello World"), ("stderr", "oops-short")],
            10 * SEC,
        );
        eprintln!("short-lived container's log complete {:.1?} after its exit was seen", t.elapsed());

        let t = Instant::now();
        wait_log(
            &logs.0.join("long.log"),
            &[("stdout", "started-long"), ("stderr", "err-long")],
            20 * SEC,
        );
        eprintln!("long-running container's log lines seen in {:.1?}", t.elapsed());
        let (state, code, reason) = status(&api, long);
        assert_eq!(
            state, RUNNING,
            "the long-running container should still run (exit {code}, {reason})"
        );
        // each line in its own stream only
        for (file, line, stream) in [
            ("short.log", "hello World", "stdout"),
            ("short.log", "oops-short", "stderr"),
            ("long.log", "started-long", "stdout"),
            ("long.log", "err-long", "stderr"),
        ] {
            let got = cri_log(&logs.0.join(file));
            let streams: BTreeSet<&str> = got
                .iter()
                .filter(|(_, l)| l == line)
                .map(|(s, _)| s.as_str())
                .collect();
            assert_eq!(
                streams,
                BTreeSet::from([stream]),
                "{file}: {line:?} should be on {stream} only: {got:?}"
            );
        }

        let mut all = vec![pod_id.clone()];
        all.extend(ids.iter().cloned());
        stop_remove(&api, &pod_id, STOP_REMOVE_BOUND);
        guard.pod_id = None;
        assert_runsc_gone(CRI_NS, &all, 10 * SEC);
        for id in &ids {
            wait_task_cleaned(CRI_NS, id, 15 * SEC);
            let out = our_delete_output(&log_lines_for(off, id), id);
            assert!(
                out.is_empty(),
                "our delete wrote, for the healthy app container {id}:\n{}",
                out.join("\n")
            );
        }
    }
);

// ---------------------------------------------------------------------------------------
// ExecSync with a timeout
// ---------------------------------------------------------------------------------------

/// How long after an ExecSync timed out the exec'd process may still be in the sandbox:
/// CRI's kill (SIGKILL) plus the shim's `kill_grace` (2 s) with room for a busy machine.
const EXEC_KILL_BOUND: Duration = Duration::from_secs(10);

gv_test!(
    /// ExecSync of `sleep 60` with a 1 s timeout: CRI answers the timeout, and the exec'd
    /// process is gone from the sandbox within the kill bound; its exit is published once.
    /// Regression (issue 17): the shim killed the host `runsc exec` process, which only
    /// waits for the process in the sandbox and forwards no signal: the sleep ran on.
    gvisor_cri_exec_sync_timeout_kills,
    limit = 180,
    |shim| {
        let case = "gvisor_cri_exec_sync_timeout_kills";
        if !runsc_or_skip(case) {
            return;
        }
        let api = Api::connect();
        let mut guard = PodGuard::new();
        let config = pod_config(&unique_id("gv-xtmo", shim), NamespaceMode::Container);
        // an init that runs no `sleep` of its own
        let containers = vec![app_container("c1", "exec tail -f /dev/null", NamespaceMode::Container)];
        let Some((pod_id, ids)) = run_gvisor_pod_with(&api, case, config, containers, &mut guard)
        else {
            return;
        };
        let cid = &ids[0];
        let events = super::dead_shim::subscribe_tasks(&api);

        let t = Instant::now();
        let r = api.call(
            "ExecSync",
            30 * SEC,
            api.cri().exec_sync(ExecSyncRequest {
                container_id: cid.clone(),
                cmd: vec!["sleep".into(), "60".into()],
                timeout: 1,
            }),
        );
        let took = t.elapsed();
        match &r {
            Err(s) => eprintln!("ExecSync(sleep 60, timeout 1 s): {:?} {:?} after {took:.1?}", s.code(), s.message()),
            Ok(resp) => eprintln!("ExecSync(sleep 60, timeout 1 s): {:?} after {took:.1?}", resp.get_ref()),
        }
        assert!(
            r.as_ref().is_err_and(|s| s.message().contains("timeout")),
            "ExecSync of `sleep 60` with a 1 s timeout should fail with the timeout: {r:?}"
        );
        assert!(took < EXEC_KILL_BOUND + SEC, "ExecSync took {took:?}");

        let t = Instant::now();
        let mut left = Vec::new();
        let gone = poll_quiet(bound(EXEC_KILL_BOUND), || {
            left = sandbox_commands(cid);
            !left.iter().any(|c| c == "sleep")
        });
        assert!(
            gone,
            "the exec'd `sleep 60` still runs in the sandbox {EXEC_KILL_BOUND:?} after the \
             ExecSync timeout: runsc ps {cid}: {left:?}"
        );
        eprintln!("exec'd sleep gone from the sandbox {:.1?} after ExecSync returned", t.elapsed());
        let waiters: Vec<String> = runsc_processes(std::slice::from_ref(cid))
            .into_iter()
            .filter(|p| p.contains(" exec "))
            .collect();
        assert!(waiters.is_empty(), "host runsc exec processes left: {waiters:?}");

        // its exit was published once: watched for twice the shim's kill_grace
        let mut seen = Vec::new();
        collect_events(&events, &mut seen, 4 * SEC);
        let exec_exits: Vec<_> = events_of(&seen, cid)
            .into_iter()
            .filter(|(t, e)| t == "/tasks/exit" && e.id != *cid)
            .collect();
        assert_eq!(
            exec_exits.len(),
            1,
            "the timed-out exec's exit should be published once: {exec_exits:?}"
        );
        eprintln!("exec exit published once, status {}", exec_exits[0].1.exit_status);

        // the container is unharmed: another ExecSync works
        let r = api
            .call(
                "ExecSync",
                30 * SEC,
                api.cri().exec_sync(ExecSyncRequest {
                    container_id: cid.clone(),
                    cmd: vec!["echo".into(), "still-here".into()],
                    timeout: 20,
                }),
            )
            .unwrap_or_else(|s| panic!("ExecSync(echo) after the timed-out one: {s}"))
            .into_inner();
        assert_eq!(String::from_utf8_lossy(&r.stdout), "still-here\n");
        assert_eq!(status(&api, cid).0, RUNNING);

        let mut all = vec![pod_id.clone()];
        all.extend(ids.iter().cloned());
        stop_remove(&api, &pod_id, STOP_REMOVE_BOUND);
        guard.pod_id = None;
        assert_runsc_gone(CRI_NS, &all, 10 * SEC);
    }
);

// ---------------------------------------------------------------------------------------
// OOM
// ---------------------------------------------------------------------------------------

/// The pod cgroup's memory limit, as kubelet sets it on a pod whose containers all have
/// limits (their sum) plus a RuntimeClass overhead for the sandbox.
const POD_MEMORY: u64 = 256 << 20;

/// Sets the memory limit of cgroup `path` (v1 `memory.limit_in_bytes`, v2 `memory.max`).
fn set_memory_limit(path: &str, bytes: u64) {
    let mut set = false;
    for h in cgroup_hierarchies() {
        let file = if h.v2 {
            "memory.max"
        } else if h.controllers.iter().any(|c| c == "memory") {
            "memory.limit_in_bytes"
        } else {
            continue;
        };
        let f = h.dir_of(path).join(file);
        if h.v2 && !f.exists() {
            continue;
        }
        fs::write(&f, bytes.to_string()).unwrap_or_else(|e| panic!("write {}: {e}", f.display()));
        set = true;
    }
    assert!(set, "no memory controller for cgroup {path}");
}

fn with_memory_limit(mut c: ContainerConfig, bytes: i64) -> ContainerConfig {
    let linux = c.linux.get_or_insert_with(Default::default);
    linux.resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: bytes,
        ..Default::default()
    });
    c
}

gv_test!(
    /// A runsc pod in a pod cgroup with a memory limit (as kubelet makes it): an app
    /// container allocating past it is reported exited 137 with reason OOMKilled, its
    /// TaskOOM before its TaskExit; a container that had already exited keeps its exit 0,
    /// Completed, and gets no TaskOOM. gVisor ends the whole sandbox on such an OOM kill
    /// (docs/gvisor.md): a sibling still running then is reported OOMKilled too, and one
    /// that survived would have to keep running.
    gvisor_cri_oom_killed,
    limit = 240,
    |shim| {
        let case = "gvisor_cri_oom_killed";
        if !runsc_or_skip(case) {
            return;
        }
        let api = Api::connect();
        let tree = CgroupTree::new(&format!("/{}", unique_id("gv-oom-pod", shim)))
            .unwrap_or_else(|e| panic!("pod cgroup: {e}"));
        set_memory_limit(&tree.path(""), POD_MEMORY);
        let mut guard = PodGuard::new();
        let mut config: PodSandboxConfig =
            pod_config(&unique_id("gv-oom", shim), NamespaceMode::Container);
        if let Some(l) = config.linux.as_mut() {
            l.cgroup_parent = tree.path("");
        }
        let pid = NamespaceMode::Container;
        let containers = vec![
            with_memory_limit(app_container("done", "echo done", pid), 32 << 20),
            with_memory_limit(
                app_container("sibling", "while :; do sleep 1; done", pid),
                32 << 20,
            ),
        ];
        let Some((pod_id, mut ids)) =
            run_gvisor_pod_with(&api, case, config.clone(), containers, &mut guard)
        else {
            return;
        };
        let (code, reason) = wait_exited(&api, "the container that exits at once", &ids[0], 30 * SEC);
        assert_eq!((code, reason.as_str()), (0, "Completed"));
        let events = super::dead_shim::subscribe_tasks(&api);

        // the hog: 64 MiB of its own (which gVisor does not enforce), then 600 MB in one go
        let hog = with_memory_limit(
            app_container(
                "hog",
                "echo allocating; dd if=/dev/zero of=/dev/null bs=600M count=1; echo survived",
                pid,
            ),
            64 << 20,
        );
        let t = Instant::now();
        ids.push(start_in_pod(&api, &pod_id, &config, hog, &mut guard));
        let (done, sibling, hog) = (&ids[0], &ids[1], &ids[2]);

        let (code, reason) = wait_exited(&api, "the container over the pod's memory limit", hog, 90 * SEC);
        eprintln!("hog: exit {code}, reason {reason:?}, {:.1?} after its start", t.elapsed());
        assert_eq!(
            (code, reason.as_str()),
            (137, "OOMKilled"),
            "the container whose allocation passed the pod's memory limit"
        );

        let (state, code, reason) = status(&api, sibling);
        let sibling_died = state != RUNNING;
        if sibling_died {
            // the OOM kill ended the sandbox, and with it the sibling
            let (code, reason) = wait_exited(&api, "the sibling", sibling, 30 * SEC);
            eprintln!("sibling ended with the sandbox: exit {code}, reason {reason:?}");
            assert_eq!((code, reason.as_str()), (137, "OOMKilled"), "the sibling the OOM kill ended");
        } else {
            eprintln!("sibling still running (exit {code}, {reason:?})");
        }
        assert_eq!(
            {
                let (s, c, r) = status(&api, done);
                (s, c, r)
            },
            (EXITED, 0, "Completed".to_string()),
            "the container that had exited before the OOM keeps its status"
        );

        // events: TaskOOM before TaskExit(137) for the OOM-killed; none for `done`
        let mut seen = Vec::new();
        let mut check = |cid: &str, what: &str| {
            poll_until(&format!("TaskOOM then TaskExit of {what}"), 20 * SEC, || {
                drain_events(&events, &mut seen);
                let ev = events_of(&seen, cid);
                let exit = ev.iter().position(|(t, e)| t == "/tasks/exit" && e.id == cid)?;
                let oom = ev.iter().position(|(t, _)| t == "/tasks/oom");
                Some((oom, exit, ev[exit].1.exit_status))
            })
        };
        let (oom, exit, st) = check(hog, "the hog");
        assert!(oom.is_some_and(|o| o < exit), "the hog: TaskOOM must come before its TaskExit");
        assert_eq!(st, 137);
        if sibling_died {
            let (oom, exit, st) = check(sibling, "the sibling");
            assert!(oom.is_some_and(|o| o < exit), "the sibling: TaskOOM before TaskExit");
            assert_eq!(st, 137);
        }
        drain_events(&events, &mut seen);
        let done_ooms: Vec<_> = events_of(&seen, done)
            .into_iter()
            .filter(|(t, _)| t == "/tasks/oom")
            .collect();
        assert!(done_ooms.is_empty(), "no TaskOOM for the container that had exited: {done_ooms:?}");

        let mut all = vec![pod_id.clone()];
        all.extend(ids.iter().cloned());
        stop_remove(&api, &pod_id, STOP_REMOVE_BOUND);
        guard.pod_id = None;
        assert_runsc_gone(CRI_NS, &all, 10 * SEC);
        let left = tree.remove();
        assert!(left.is_empty(), "pod cgroups left: {left:?}");
    }
);

/// Creates and starts one more container in the running pod `pod_id`.
fn start_in_pod(
    api: &Api,
    pod_id: &str,
    config: &PodSandboxConfig,
    c: ContainerConfig,
    guard: &mut PodGuard,
) -> String {
    let name = c
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let cid = api
        .call(
            "CreateContainer",
            60 * SEC,
            api.cri()
                .create_container(k8s_cri::v1::CreateContainerRequest {
                    pod_sandbox_id: pod_id.into(),
                    config: Some(c),
                    sandbox_config: Some(config.clone()),
                }),
        )
        .unwrap_or_else(|s| panic!("CreateContainer({name}) in runsc pod {pod_id}: {s}"))
        .into_inner()
        .container_id;
    guard.containers.push(cid.clone());
    api.call(
        "StartContainer",
        60 * SEC,
        api.cri()
            .start_container(k8s_cri::v1::StartContainerRequest {
                container_id: cid.clone(),
            }),
    )
    .unwrap_or_else(|s| panic!("StartContainer({name} = {cid}): {s}"));
    cid
}
