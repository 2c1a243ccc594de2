//! gVisor (runsc) through our shim only (there is no reference runsc shim here): ctr
//! lifecycle, a CRI pod through the `gvisor` handler, F2 (a pod whose containers ignore
//! SIGTERM is removed within its bound) and dead-shim cleanup of runsc sandboxes.
//!
//! Every case first checks that runsc can run on this machine at all (a trivial
//! `ctr run --rm` through runsc; if that fails, `runsc do true` decides): only when runsc
//! itself cannot start a sandbox is the case skipped (printed, not failed). A failure of
//! the `ctr run` while `runsc do` works is a shim failure and fails the case.
//! The CRI cases need a `gvisor` handler in the isolated containerd (see docs/gvisor.md);
//! without one they are skipped with that message.

use super::*;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest,
};

pub(super) const SEC: Duration = Duration::from_secs(1);
/// The CRI runtime handler of runsc through our shim.
pub(super) const HANDLER: &str = "gvisor";
/// StopPodSandbox + RemovePodSandbox of a runsc pod must finish within this.
pub(super) const STOP_REMOVE_BOUND: Duration = Duration::from_secs(20);
/// The StopContainer timeout (grace) of the F2 case.
const F2_GRACE_SECS: i64 = 2;
/// What is left of a dead shim's runsc sandbox must be gone within this.
const DEAD_SHIM_CLEANUP_BOUND: Duration = Duration::from_secs(20);
/// StopPodSandbox + RemovePodSandbox of a pod whose shim was killed, retried as kubelet
/// does. containerd 1.7+ publishes a dead shim's exits before it drops the task, so CRI's
/// first handling of each exit meets the closed connection ("ttrpc: closed") and is
/// retried by CRI's event backoff (1 s, doubling); until it succeeds RemovePodSandbox is
/// refused. One retry is the rule (about 2 s here); the bound leaves room for CRI's
/// second and third on a loaded machine (1 + 2 + 4 + 8 s), which kubelet would wait for.
const DEAD_POD_STOP_REMOVE_BOUND: Duration = Duration::from_secs(45);

/// The shipped runsc config (runtime-config/runsc.toml: platform ptrace, network none).
pub(super) fn runsc_config() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime-config/runsc.toml");
    fs::canonicalize(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// runsc's root for a containerd namespace (the shim's default).
pub(super) fn runsc_root(ns: &str) -> PathBuf {
    PathBuf::from("/run/containerd/runsc").join(ns)
}

/// `ctr run` arguments selecting runsc through our shim.
pub(super) fn run_args<'a>(cfg: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "--runtime",
        "io.containerd.robust.v2",
        "--runtime-config-path",
        cfg,
    ];
    a.extend_from_slice(extra);
    a
}

/// Whether runsc can run here: `Ok(())`, or `Err(why)` to skip. Panics when runsc works
/// but the trivial run through our shim does not (that is our failure, not the machine's).
fn runsc_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            if Command::new("runsc").arg("--version").output().is_err() {
                return Err("runsc is not installed".into());
            }
            let cfg = runsc_config();
            let cfg = cfg.to_string_lossy().into_owned();
            let id = unique_id("gv-probe", Shim::Robust);
            let img = env().image.clone();
            let out = ctr(NS, &run_args(&cfg, &["--rm", &img, &id, "true"]))
                .timeout(Duration::from_secs(60))
                .run_unclamped();
            if out.succeeded() {
                return Ok(());
            }
            cleanup_container(NS, &id);
            let direct = Command::new("timeout")
                .args([
                    "-k",
                    "5",
                    "60",
                    "runsc",
                    "--platform=ptrace",
                    "--network=none",
                ])
                .args(["do", "true"])
                .output();
            match direct {
                Ok(o) if o.status.success() => Err(format!(
                    "SHIM FAILURE: runsc works (`runsc do true` ok) but a trivial run through \
                     the shim failed: {}\n{}",
                    out.stdout, out.stderr
                )),
                Ok(o) => Err(format!(
                    "runsc cannot start a sandbox on this machine: `ctr run --rm` through runsc \
                     failed ({}) and `runsc --platform=ptrace --network=none do true` failed: {}",
                    out.stderr.trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("cannot run runsc: {e}")),
            }
        })
        .clone()
}

/// Returns false (after printing why) when the case must be skipped; panics on a shim
/// failure found by the probe.
pub(super) fn runsc_or_skip(case: &str) -> bool {
    match runsc_available() {
        Ok(()) => true,
        Err(e) if e.starts_with("SHIM FAILURE") => panic!("{e}"),
        Err(e) => {
            skip(case, &e);
            false
        }
    }
}

/// Processes of runsc (runsc, runsc-sandbox, runsc-gofer) whose command line names one
/// of `ids` (as `pgrep -af runsc | grep ID` would), described.
pub(super) fn runsc_processes(ids: &[String]) -> Vec<String> {
    let mut v = Vec::new();
    for pid in all_pids() {
        if pid as u32 == std::process::id() {
            continue;
        }
        let cl = cmdline(pid);
        let first = cl.split_whitespace().next().unwrap_or("");
        let is_runsc = first.rsplit('/').next().unwrap_or("").starts_with("runsc")
            || exe_name(pid).is_some_and(|n| n.starts_with("runsc"));
        if is_runsc && pid_alive(pid) && ids.iter().any(|id| cl.contains(id.as_str())) {
            v.push(format!(
                "{pid}: {}",
                cl.chars().take(300).collect::<String>()
            ));
        }
    }
    v
}

/// Entries of runsc's root for `ns` that name one of `ids`.
fn runsc_state(ns: &str, ids: &[String]) -> Vec<String> {
    fs::read_dir(runsc_root(ns))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| ids.iter().any(|id| n.contains(id.as_str())))
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points under the bundles of `ids`.
fn bundle_mounts(ns: &str, ids: &[String]) -> Vec<String> {
    let bundles: Vec<String> = ids
        .iter()
        .map(|id| bundle_dir(ns, id).to_string_lossy().into_owned())
        .collect();
    mount_points()
        .into_iter()
        .filter(|mp| bundles.iter().any(|b| mp.starts_with(b.as_str())))
        .collect()
}

/// Polls until nothing of runsc is left for `ids` (processes, state, mounts) and returns
/// how long that took; panics naming what is left after `limit`.
pub(super) fn assert_runsc_gone(ns: &str, ids: &[String], limit: Duration) -> Duration {
    runsc_gone_within(ns, ids, limit).unwrap_or_else(|e| panic!("{e}"))
}

/// How long what runsc left for `ids` (processes, state, bundle mounts) took to go, or
/// what was still there after `limit`.
pub(super) fn runsc_gone_within(
    ns: &str,
    ids: &[String],
    limit: Duration,
) -> Result<Duration, String> {
    let t = Instant::now();
    let mut left = Vec::new();
    let ok = poll_quiet(bound(limit), || {
        left.clear();
        left.extend(
            runsc_processes(ids)
                .into_iter()
                .map(|p| format!("process {p}")),
        );
        left.extend(
            runsc_state(ns, ids)
                .into_iter()
                .map(|s| format!("state {}", runsc_root(ns).join(s).display())),
        );
        left.extend(
            bundle_mounts(ns, ids)
                .into_iter()
                .map(|m| format!("mount {m}")),
        );
        left.is_empty()
    });
    if !ok {
        return Err(format!(
            "{:.1?} after the end, runsc leftovers for {ids:?}:\n{}",
            t.elapsed(),
            left.join("\n")
        ));
    }
    Ok(t.elapsed())
}

/// containerd's warnings and errors about `ids` since `off` (CRI's event handling, the
/// dead-shim cleanup, what our `delete` wrote), the last `n` of them: what a failure
/// message needs to name the cause.
fn containerd_complaints(off: u64, ids: &[String], n: usize) -> String {
    let lines: Vec<String> = log_since(off)
        .lines()
        .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        .filter(|l| l.contains("level=warn") || l.contains("level=error"))
        .map(|l| l.chars().take(400).collect())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The pid of the shim daemon serving a task (the one process holding its socket).
pub(super) fn shim_pid_of(ns: &str, id: &str) -> i32 {
    let addr = shim_address(ns, id)
        .unwrap_or_else(|| panic!("no address in {}", bundle_dir(ns, id).display()));
    // A child the daemon is forking holds the socket until its exec (CLOEXEC): wait,
    // bounded, for the one holder.
    let mut h = socket_holders(&addr);
    let t = Instant::now();
    while h.len() > 1 && t.elapsed() < 2 * SEC {
        std::thread::sleep(Duration::from_millis(20));
        h = socket_holders(&addr);
    }
    assert_eq!(h.len(), 1, "holders of the shim socket {addr}: {h:?}");
    assert_eq!(
        exe_name(h[0]).as_deref(),
        Some("containerd-shim-robust-v2"),
        "the shim of {id}: {}",
        cmdline(h[0])
    );
    h[0]
}

pub(super) fn kill9(pid: i32) {
    // SAFETY: plain kill(2) of a pid we just identified as the shim daemon.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid}: {}", std::io::Error::last_os_error());
}

/// Waits (bounded) until the task `id` is deleted and containerd's cleanup of it is over:
/// its bundle is gone and no `containerd-shim-robust-v2 ... -id <id> ... delete` runs
/// (containerd 1.6 to 2.1 run that delete after every task delete of a grouped shim).
pub(super) fn wait_task_cleaned(ns: &str, id: &str, limit: Duration) {
    let arg = format!(" -id {id} ");
    poll_until(
        &format!("the task {ns}/{id} deleted and containerd's cleanup of it over"),
        limit,
        || {
            let cleaning = all_pids().into_iter().any(|p| {
                let c = format!("{} ", cmdline(p));
                c.contains("containerd-shim-robust-v2")
                    && c.contains(&arg)
                    && c.ends_with(" delete ")
            });
            (!bundle_dir(ns, id).exists() && !cleaning).then_some(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// ctr
// ---------------------------------------------------------------------------------------

robust_test!(
    /// `ctr run --rm` through runsc: exit code 7 and stdout delivered, nothing left.
    gvisor_ctr_run_rm_exit_code,
    limit = 120,
    |shim| {
        if !runsc_or_skip("gvisor_ctr_run_rm_exit_code") {
            return;
        }
        let cfg = runsc_config().to_string_lossy().into_owned();
        let id = unique_id("gv-rm", shim);
        let _g = ContainerGuard::new(NS, &id);
        let img = env().image.clone();
        let out = ctr(
            NS,
            &run_args(&cfg, &["--rm", &img, &id, "sh", "-c", "echo out-$((3+4)); exit 7"]),
        )
        .timeout(60 * SEC)
        .run()
        .code_is(7);
        assert_eq!(out.stdout.trim(), "out-7", "stdout of the runsc container");
        eprintln!("ctr run --rm (exit 7) through runsc: {:.1?}", out.elapsed);
        let ids = vec![id.clone()];
        assert_runsc_gone(NS, &ids, 10 * SEC);
        assert!(!bundle_dir(NS, &id).exists(), "bundle of {id} left");
    }
);

robust_test!(
    /// Detached runsc container: exec (output and exit code), an exec of a missing binary
    /// fails with runsc's message, SIGTERM kill, delete: nothing of runsc left.
    gvisor_ctr_detached_exec_kill_delete,
    limit = 150,
    |shim| {
        if !runsc_or_skip("gvisor_ctr_detached_exec_kill_delete") {
            return;
        }
        let cfg = runsc_config().to_string_lossy().into_owned();
        let id = unique_id("gv-det", shim);
        let _g = ContainerGuard::new(NS, &id);
        let img = env().image.clone();
        let t = Instant::now();
        ctr(
            NS,
            &run_args(
                &cfg,
                &[
                    "-d",
                    &img,
                    &id,
                    "sh",
                    "-c",
                    "trap 'exit 0' TERM; while :; do sleep 1; done",
                ],
            ),
        )
        .timeout(60 * SEC)
        .run()
        .ok();
        wait_task_status(NS, &id, "RUNNING", 30 * SEC);
        eprintln!("detached runsc container RUNNING after {:.1?}", t.elapsed());
        assert!(
            !runsc_state(NS, std::slice::from_ref(&id)).is_empty(),
            "no runsc state under {} for {id}",
            runsc_root(NS).display()
        );

        let ex = ctr(
            NS,
            &[
                "task", "exec", "--exec-id", "e1", &id, "sh", "-c", "echo hi-$$; exit 3",
            ],
        )
        .timeout(30 * SEC)
        .run()
        .code_is(3);
        assert!(
            ex.stdout.trim().starts_with("hi-"),
            "exec stdout: {:?}",
            ex.stdout
        );
        eprintln!("exec (exit 3): {:.1?}", ex.elapsed);

        let miss = ctr(
            NS,
            &["task", "exec", "--exec-id", "e2", &id, "/no-such-binary-gv"],
        )
        .timeout(30 * SEC)
        .run()
        .failed();
        let msg = format!("{}{}", miss.stdout, miss.stderr);
        assert!(
            msg.contains("/no-such-binary-gv") && msg.contains("no such file or directory"),
            "exec of a missing binary: runsc's message expected, got: {msg}"
        );
        eprintln!("exec of a missing binary failed in {:.1?}: {}", miss.elapsed, msg.lines().last().unwrap_or(""));
        // the container survives a failed exec
        wait_task_status(NS, &id, "RUNNING", 5 * SEC);
        let ex = ctr(NS, &["task", "exec", "--exec-id", "e3", &id, "true"])
            .timeout(30 * SEC)
            .run();
        ex.ok();

        let t = Instant::now();
        ctr(NS, &["task", "kill", &id]).run().ok();
        wait_task_status(NS, &id, "STOPPED", 15 * SEC);
        eprintln!("SIGTERM -> STOPPED in {:.1?}", t.elapsed());
        ctr(NS, &["task", "delete", &id]).timeout(30 * SEC).run().ok();
        ctr(NS, &["container", "delete", &id]).run().ok();
        let gone = assert_runsc_gone(NS, std::slice::from_ref(&id), 10 * SEC);
        eprintln!("runsc leftovers gone {gone:.1?} after delete");
        assert!(!bundle_dir(NS, &id).exists(), "bundle of {id} left");
    }
);

robust_test!(
    /// `ctr run -t` through runsc. This runsc gives no terminal at all (even `runsc do tty`
    /// prints "not a tty"): checked first, and then the case is skipped, never failed.
    gvisor_ctr_tty,
    limit = 90,
    |shim| {
        if !runsc_or_skip("gvisor_ctr_tty") {
            return;
        }
        let probe = Command::new("timeout")
            .args(["-k", "5", "30", "script", "-qec"])
            .arg("runsc --platform=ptrace --network=none do tty")
            .arg("/dev/null")
            .output();
        match &probe {
            Ok(o) if String::from_utf8_lossy(&o.stdout).contains("not a tty") => {
                skip(
                    "gvisor_ctr_tty",
                    "this runsc gives no terminal (`runsc do tty` under script prints \
                     \"not a tty\"): known limit, see docs/gvisor.md",
                );
                return;
            }
            Ok(_) => {}
            Err(e) => {
                skip(
                    "gvisor_ctr_tty",
                    &format!("cannot run `script` to check runsc's tty: {e}"),
                );
                return;
            }
        }
        let cfg = runsc_config().to_string_lossy().into_owned();
        let id = unique_id("gv-tty", shim);
        let _g = ContainerGuard::new(NS, &id);
        let img = env().image.clone();
        let out = ctr(NS, &run_args(&cfg, &["--rm", "-t", &img, &id, "tty"]))
            .timeout(60 * SEC)
            .run_pty(24, 80)
            .ok();
        assert!(out.stdout.contains("/dev/pts/"), "tty output: {:?}", out.stdout);
    }
);

/// `ctr run -d` through runsc of `id` running `cmd`, as the `kind` ("sandbox" or
/// "container") of the pod `pod`, by CRI's annotations (timeout 60 s).
fn run_in_pod(cfg: &str, pod: &str, kind: &str, id: &str, cmd: &[&str]) -> Ctr {
    let kind = format!("io.kubernetes.cri.container-type={kind}");
    let pod = format!("io.kubernetes.cri.sandbox-id={pod}");
    let img = env().image.clone();
    let mut a = vec!["-d", "--annotation", &kind, "--annotation", &pod, &img, id];
    a.extend_from_slice(cmd);
    ctr(NS, &run_args(cfg, &a)).timeout(60 * SEC)
}

robust_test!(
    /// F3 on gVisor: an app container of a pod whose init binary does not exist. runsc
    /// creates it (the gofer starts), then its start fails; a forced delete must end it at
    /// once (regression: the kill escalated for 4 s, as nothing ran to exit) and leave no
    /// gofer (regression: runsc's delete of a never-started container left it running,
    /// found by the soak) and no runsc state.
    gvisor_ctr_missing_init_leaves_nothing,
    limit = 120,
    |shim| {
        if !runsc_or_skip("gvisor_ctr_missing_init_leaves_nothing") {
            return;
        }
        let cfg = runsc_config().to_string_lossy().into_owned();
        let pod = unique_id("gv-mipod", shim);
        let app = unique_id("gv-miapp", shim);
        let _g1 = ContainerGuard::new(NS, &app);
        let _g2 = ContainerGuard::new(NS, &pod);
        for (id, kind, cmd) in [(&pod, "sandbox", "sleep"), (&app, "container", "/no-such-init")] {
            let out = run_in_pod(&cfg, &pod, kind, id, &[cmd, "1000"]).run_unclamped();
            if id == &pod {
                assert!(out.succeeded(), "pod sandbox: {}", out.stderr);
                wait_task_status(NS, id, "RUNNING", 30 * SEC);
            } else {
                assert!(!out.succeeded(), "the start of a missing init succeeded");
                assert!(out.stderr.contains("no-such-init"), "error names the binary: {}", out.stderr);
            }
        }
        let t = Instant::now();
        ctr(NS, &["task", "delete", "-f", &app]).timeout(20 * SEC).run().ok();
        let took = t.elapsed();
        eprintln!("forced delete of the never-started container: {took:.1?}");
        assert!(took < 2 * SEC, "forced delete took {took:?}");
        let gone = assert_runsc_gone(NS, std::slice::from_ref(&app), 5 * SEC);
        eprintln!("its gofer and state gone {gone:.1?} after the delete");
        // the pod lives on (regression: containerd's cleanup of the app container, our
        // `delete`, killed the pod's sandbox: its recorded init pid is the sandbox's)
        wait_task_cleaned(NS, &app, 10 * SEC);
        let ex = ctr(NS, &["task", "exec", "--exec-id", "alive", &pod, "true"])
            .timeout(30 * SEC)
            .run();
        assert!(
            ex.succeeded(),
            "the pod's sandbox no longer serves after the app container's delete: {ex:?}"
        );
        assert_eq!(
            task_status(NS, &pod).map(|t| t.1).as_deref(),
            Some("RUNNING"),
            "the pod's sandbox task"
        );
    }
);

robust_test!(
    /// An app container of a gVisor pod reports the sandbox's pid as its own. When its
    /// shim connection closes after a normal delete, containerd runs the `delete` action
    /// for it: that cleanup must never kill the sandbox by that pid (regression: the
    /// ownership record confirmed the pid by its start time and the cleanup SIGKILLed the
    /// sandbox, taking the whole pod down; found by the runsc soak, 22 pods in 69 cycles).
    gvisor_ctr_app_delete_leaves_the_sandbox,
    limit = 120,
    |shim| {
        if !runsc_or_skip("gvisor_ctr_app_delete_leaves_the_sandbox") {
            return;
        }
        let cfg = runsc_config().to_string_lossy().into_owned();
        let pod = unique_id("gv-adpod", shim);
        let app = unique_id("gv-adapp", shim);
        let _g1 = ContainerGuard::new(NS, &app);
        let _g2 = ContainerGuard::new(NS, &pod);
        let out = run_in_pod(&cfg, &pod, "sandbox", &pod, &["sleep", "1000"]).run_unclamped();
        assert!(out.succeeded(), "pod sandbox: {}", out.stderr);
        let sandbox = wait_task_status(NS, &pod, "RUNNING", 30 * SEC) as i32;
        let out = run_in_pod(&cfg, &pod, "container", &app, &["sh", "-c", "exit 0"]).run_unclamped();
        assert!(out.succeeded(), "app container: {}", out.stderr);
        wait_task_status(NS, &app, "STOPPED", 30 * SEC);
        let off = log_offset();
        ctr(NS, &["task", "delete", &app]).timeout(20 * SEC).run().ok();
        // containerd runs the delete action once it sees the app's connection close
        let want = format!("msg=\"shim disconnected\" id={app}");
        poll_until("containerd to see the app's shim connection close", 10 * SEC, || {
            log_since(off).contains(&want).then_some(())
        });
        let killed = poll_quiet(3 * SEC, || !pid_alive(sandbox));
        assert!(!killed, "the sandbox (pid {sandbox}) died after the app container's delete");
        assert_eq!(
            task_status(NS, &pod).map(|(p, s)| (p as i32, s)),
            Some((sandbox, "RUNNING".to_string())),
            "the pod sandbox's task after the app container's delete"
        );
    }
);

/// `cpuacct.usage` (ns) of `ctr task metrics ID`.
fn metrics_cpu_ns(id: &str) -> u64 {
    let out = ctr(NS, &["task", "metrics", id])
        .timeout(20 * SEC)
        .run()
        .ok();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("cpuacct.usage "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no cpuacct.usage in `ctr task metrics {id}`: {}",
                out.stdout
            )
        })
}

robust_test!(
    /// Task Stats of the containers of one gVisor pod are each container's own (from
    /// `runsc events --stats`), not the total of the sandbox cgroup they all share: of two
    /// app containers, the one that spins reports over 5x the CPU of the one that sleeps.
    /// (This runsc reports memory and pids for the whole sandbox; CPU per container.)
    gvisor_ctr_stats_per_container,
    limit = 120,
    |shim| {
        if !runsc_or_skip("gvisor_ctr_stats_per_container") {
            return;
        }
        let cfg = runsc_config().to_string_lossy().into_owned();
        // runsc resolves ids by prefix: no id may be a prefix of another
        let pod = unique_id("gv-stpod", shim);
        let idle = unique_id("gv-stidle", shim);
        let busy = unique_id("gv-stbusy", shim);
        let _g1 = ContainerGuard::new(NS, &idle);
        let _g2 = ContainerGuard::new(NS, &busy);
        let _g3 = ContainerGuard::new(NS, &pod);
        let spin = "while :; do :; done";
        for (id, kind, cmd) in [
            (&pod, "sandbox", "sleep 1000"),
            (&idle, "container", "sleep 1000"),
            (&busy, "container", spin),
        ] {
            run_in_pod(&cfg, &pod, kind, id, &["sh", "-c", cmd]).run().ok();
            wait_task_status(NS, id, "RUNNING", 30 * SEC);
        }
        let (cpu_idle, cpu_busy) = poll_until("the busy container's CPU", 30 * SEC, || {
            let (i, b) = (metrics_cpu_ns(&idle), metrics_cpu_ns(&busy));
            (b >= 1_000_000_000).then_some((i, b))
        });
        eprintln!("cpuacct.usage: idle container {cpu_idle} ns, busy container {cpu_busy} ns");
        assert!(
            cpu_idle * 5 < cpu_busy,
            "the idle container reports {cpu_idle} ns of CPU, the busy one {cpu_busy} ns: \
             these are not per-container numbers"
        );
    }
);

robust_test!(
    /// Kill -9 of the shim daemon of a runsc container: containerd's dead-shim cleanup (our
    /// `delete`) leaves no runsc sandbox/gofer process, no runsc state, no mount.
    gvisor_ctr_dead_shim_cleanup,
    limit = 120,
    |shim| {
        if !runsc_or_skip("gvisor_ctr_dead_shim_cleanup") {
            return;
        }
        let cfg = runsc_config().to_string_lossy().into_owned();
        let id = unique_id("gv-dead", shim);
        let _g = ContainerGuard::new(NS, &id);
        let img = env().image.clone();
        ctr(
            NS,
            &run_args(&cfg, &["-d", &img, &id, "sh", "-c", "while :; do sleep 1; done"]),
        )
        .timeout(60 * SEC)
        .run()
        .ok();
        wait_task_status(NS, &id, "RUNNING", 30 * SEC);
        let ids = vec![id.clone()];
        let before = runsc_processes(&ids);
        assert!(
            before.iter().any(|p| p.contains("runsc-sandbox")),
            "no runsc-sandbox process for {id}: {before:#?}"
        );
        let pid = shim_pid_of(NS, &id);
        kill9(pid);
        let t = Instant::now();
        let took = assert_runsc_gone(NS, &ids, DEAD_SHIM_CLEANUP_BOUND);
        eprintln!(
            "shim {pid} killed: runsc sandbox, state and mounts gone in {took:.1?} ({:.1?})",
            t.elapsed()
        );
    }
);

// ---------------------------------------------------------------------------------------
// CRI (handler gvisor)
// ---------------------------------------------------------------------------------------

/// The namespace options kubelet gives a host-network pod and its containers, with pid
/// namespace mode `pid`.
pub(super) fn kubelet_namespaces(pid: NamespaceMode) -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: pid as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The pod's config; `pid` is its pid namespace mode: `Container` (kubelet's default) or
/// `Pod` (`shareProcessNamespace: true`).
pub(super) fn pod_config(name: &str, pid: NamespaceMode) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: name.into(),
            namespace: "robust-it".into(),
            attempt: 0,
        }),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(kubelet_namespaces(pid)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs a runsc pod through the `gvisor` handler with one busybox container per command,
/// pod and containers in pid namespace mode `pid` (as kubelet sets both); `None` (skip,
/// printed) when this containerd has no `gvisor` handler.
fn run_gvisor_pod(
    api: &Api,
    case: &str,
    name: &str,
    commands: &[&str],
    pid: NamespaceMode,
    guard: &mut PodGuard,
) -> Option<(String, Vec<String>)> {
    let containers: Vec<ContainerConfig> = commands
        .iter()
        .enumerate()
        .map(|(i, cmd)| app_container(&format!("c{}", i + 1), cmd, pid))
        .collect();
    run_gvisor_pod_with(api, case, pod_config(name, pid), containers, guard)
}

/// A busybox app container `name` running `sh -c cmd`, with kubelet's namespace options.
pub(super) fn app_container(name: &str, cmd: &str, pid: NamespaceMode) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: env().image.clone(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), cmd.to_string()],
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces(pid)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs a runsc pod of `config` through the `gvisor` handler and creates and starts
/// `containers` in it, in order; `None` (skip, printed) when this containerd has no
/// `gvisor` handler.
pub(super) fn run_gvisor_pod_with(
    api: &Api,
    case: &str,
    config: PodSandboxConfig,
    containers: Vec<ContainerConfig>,
    guard: &mut PodGuard,
) -> Option<(String, Vec<String>)> {
    let mut cri = api.cri();
    let t = Instant::now();
    let r = api.call(
        "RunPodSandbox",
        90 * SEC,
        cri.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: HANDLER.into(),
        }),
    );
    let pod_id = match r {
        Ok(r) => r.into_inner().pod_sandbox_id,
        Err(s) if s.message().contains("no runtime for") => {
            skip(
                case,
                &format!(
                    "the isolated containerd has no `{HANDLER}` CRI handler ({}); add it to \
                     integration/containerd.sh (see docs/gvisor.md)",
                    s.message()
                ),
            );
            return None;
        }
        Err(s) => panic!("RunPodSandbox(handler {HANDLER}): {s}"),
    };
    guard.pod_id = Some(pod_id.clone());
    eprintln!("RunPodSandbox (runsc) {:.1?}", t.elapsed());
    let mut ids = Vec::new();
    for cfg in containers {
        ids.push(start_in_pod(api, &pod_id, &config, cfg, guard));
    }
    eprintln!(
        "runsc pod with {} containers up in {:.1?}",
        ids.len(),
        t.elapsed()
    );
    Some((pod_id, ids))
}

/// Creates and starts one more container in the running pod `pod_id`.
pub(super) fn start_in_pod(
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
            api.cri().create_container(CreateContainerRequest {
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
        api.cri().start_container(StartContainerRequest {
            container_id: cid.clone(),
        }),
    )
    .unwrap_or_else(|s| panic!("StartContainer({name} = {cid}) in runsc pod: {s}"));
    cid
}

/// StopPodSandbox + RemovePodSandbox within `limit`, a refusal retried as kubelet does
/// (`kubelet_stop_remove`): when a pod's last container dies with its sandbox (an OOM
/// kill), containerd 2.1 refuses RemovePodSandbox ("container is still running") until
/// CRI has handled that container's exit, about 0.1 s. Returns how long they took.
pub(super) fn stop_remove(api: &Api, pod_id: &str, limit: Duration) -> Duration {
    let r = kubelet_stop_remove(api, pod_id, limit)
        .unwrap_or_else(|e| panic!("stop + remove of the runsc pod: {e}"));
    eprintln!(
        "runsc pod: StopPodSandbox + RemovePodSandbox {:.1?}, {}",
        r.took,
        r.refusals_summary()
    );
    r.took
}

const SLEEPER: &str = "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done";

robust_test!(
    /// A runsc pod (handler gvisor) with two containers in one shim: ExecSync, bounded
    /// stop + remove, then no runsc process, no runsc state, no mount for its ids.
    gvisor_cri_pod_lifecycle,
    limit = 180,
    |shim| {
        if !runsc_or_skip("gvisor_cri_pod_lifecycle") {
            return;
        }
        let api = Api::connect();
        let name = unique_id("gv-pod", shim);
        let mut guard = PodGuard::new();
        let Some((pod_id, ids)) = run_gvisor_pod(
            &api,
            "gvisor_cri_pod_lifecycle",
            &name,
            &[SLEEPER, SLEEPER],
            NamespaceMode::Container,
            &mut guard,
        ) else {
            return;
        };
        let mut all = vec![pod_id.clone()];
        all.extend(ids.iter().cloned());
        let shim_pid = shim_pid_of(CRI_NS, &pod_id);
        for id in &ids {
            assert_eq!(shim_pid_of(CRI_NS, id), shim_pid, "one shim per pod");
        }
        assert!(
            runsc_processes(&all).iter().any(|p| p.contains("runsc-sandbox")),
            "no runsc-sandbox for pod {pod_id}"
        );
        let mut cri = api.cri();
        for (i, cid) in ids.iter().enumerate() {
            let t = Instant::now();
            let r = api
                .call(
                    "ExecSync",
                    30 * SEC,
                    cri.exec_sync(ExecSyncRequest {
                        container_id: cid.clone(),
                        cmd: vec!["echo".into(), "hi".into()],
                        timeout: 20,
                    }),
                )
                .unwrap_or_else(|s| panic!("ExecSync(echo hi) in c{}: {s}", i + 1))
                .into_inner();
            assert_eq!(
                (String::from_utf8_lossy(&r.stdout).as_ref(), r.exit_code),
                ("hi\n", 0),
                "ExecSync echo hi in c{}: {r:?}",
                i + 1
            );
            eprintln!("ExecSync echo hi (c{}): {:.1?}", i + 1, t.elapsed());
        }
        let r = api
            .call(
                "ExecSync",
                30 * SEC,
                cri.exec_sync(ExecSyncRequest {
                    container_id: ids[1].clone(),
                    cmd: vec!["sh".into(), "-c".into(), "echo err >&2; exit 3".into()],
                    timeout: 20,
                }),
            )
            .unwrap_or_else(|s| panic!("ExecSync(exit 3): {s}"))
            .into_inner();
        assert_eq!(r.exit_code, 3, "ExecSync exit 3: {r:?}");
        assert_eq!(String::from_utf8_lossy(&r.stderr).trim(), "err");

        stop_remove(&api, &pod_id, STOP_REMOVE_BOUND);
        guard.pod_id = None;
        let gone = assert_runsc_gone(CRI_NS, &all, 10 * SEC);
        eprintln!("runsc leftovers gone {gone:.1?} after RemovePodSandbox");
        poll_until(&format!("the pod's shim {shim_pid} to exit"), 10 * SEC, || {
            (!pid_alive(shim_pid)).then_some(())
        });
        for id in &all {
            poll_until(&format!("bundle of {id} to go"), 5 * SEC, || {
                (!bundle_dir(CRI_NS, id).exists()).then_some(())
            });
        }
    }
);

/// F2 body: a runsc pod whose two containers ignore SIGTERM; StopContainer (timeout 2 s)
/// of each, then StopPodSandbox + RemovePodSandbox, all within the grace + the bound.
/// With `check_siblings`, stopping the first container must leave the second running.
fn f2_pod(shim: Shim, case: &str, check_siblings: bool, pid: NamespaceMode) {
    if !runsc_or_skip(case) {
        return;
    }
    let api = Api::connect();
    let name = unique_id(if check_siblings { "gv-sib" } else { "gv-f2" }, shim);
    let mut guard = PodGuard::new();
    let stubborn = "trap \"\" TERM; while :; do sleep 1; done";
    let Some((pod_id, ids)) =
        run_gvisor_pod(&api, case, &name, &[stubborn, stubborn], pid, &mut guard)
    else {
        return;
    };
    let mut all = vec![pod_id.clone()];
    all.extend(ids.iter().cloned());
    let shim_pid = shim_pid_of(CRI_NS, &pod_id);
    let mut cri = api.cri();
    let limit = Duration::from_secs(F2_GRACE_SECS as u64) * ids.len() as u32 + STOP_REMOVE_BOUND;
    let t = Instant::now();
    for (i, cid) in ids.iter().enumerate() {
        let s = Instant::now();
        api.call(
            "StopContainer",
            limit,
            cri.stop_container(StopContainerRequest {
                container_id: cid.clone(),
                timeout: F2_GRACE_SECS,
            }),
        )
        .unwrap_or_else(|st| panic!("StopContainer({cid}, timeout {F2_GRACE_SECS}): {st}"));
        let stop_took = s.elapsed();
        eprintln!(
            "StopContainer c{} (SIGTERM ignored, grace {F2_GRACE_SECS}s): {stop_took:.1?}",
            i + 1,
        );
        if check_siblings {
            // it ignores SIGTERM: a stop shorter than the grace means it was already dead
            assert!(
                stop_took >= Duration::from_secs(F2_GRACE_SECS as u64),
                "StopContainer(c{} = {cid}) took {stop_took:?}, less than its grace of \
                 {F2_GRACE_SECS}s for a container that ignores SIGTERM: it was no longer running",
                i + 1
            );
            // CRI deletes the stopped container's task; containerd then runs our
            // `delete` for it (regression: that killed the pod's sandbox)
            if i + 1 < ids.len() {
                wait_task_cleaned(CRI_NS, cid, 15 * SEC);
            }
        }
        for (j, other) in ids.iter().enumerate().skip(i + 1) {
            let st = api
                .call(
                    "ContainerStatus",
                    10 * SEC,
                    cri.container_status(ContainerStatusRequest {
                        container_id: other.clone(),
                        verbose: false,
                    }),
                )
                .unwrap_or_else(|s| panic!("ContainerStatus({other}): {s}"))
                .into_inner()
                .status
                .expect("ContainerStatus without status");
            let running = st.state == ContainerState::ContainerRunning as i32;
            eprintln!(
                "after StopContainer c{}: c{} {} (exit code {})",
                i + 1,
                j + 1,
                if running {
                    "still running"
                } else {
                    "NOT running"
                },
                st.exit_code
            );
            if check_siblings {
                assert!(
                    running,
                    "after StopContainer(c{} = {cid}) the pod's other container c{} = {other} \
                     is no longer running: state {}, exit code {}, finished_at {}",
                    i + 1,
                    j + 1,
                    st.state,
                    st.exit_code,
                    st.finished_at
                );
            }
        }
    }
    let rest = limit.saturating_sub(t.elapsed()).max(SEC);
    stop_remove(&api, &pod_id, rest);
    guard.pod_id = None;
    let total = t.elapsed();
    eprintln!(
        "runsc pod, SIGTERM ignored: StopContainer x{} + StopPodSandbox + RemovePodSandbox \
         {total:.1?} (bound {limit:?})",
        ids.len()
    );
    assert!(total <= limit, "took {total:?}, bound {limit:?}");
    let gone = assert_runsc_gone(CRI_NS, &all, 10 * SEC);
    eprintln!("runsc leftovers gone {gone:.1?} after RemovePodSandbox");
    poll_until(
        &format!("the pod's shim {shim_pid} to exit"),
        10 * SEC,
        || (!pid_alive(shim_pid)).then_some(()),
    );
}

robust_test!(
    /// F2: a runsc pod whose containers ignore SIGTERM. StopContainer (timeout 2 s) of each,
    /// then StopPodSandbox + RemovePodSandbox: all within the graces + the bound, and
    /// nothing of runsc left (the sandbox included).
    gvisor_cri_f2_sigterm_ignored,
    limit = 180,
    |shim| {
        f2_pod(
            shim,
            "gvisor_cri_f2_sigterm_ignored",
            false,
            NamespaceMode::Container,
        );
    }
);

robust_test!(
    /// Stopping one container of a runsc pod (SIGTERM ignored, so escalated to SIGKILL)
    /// ends that container only: the pod's other container keeps running.
    gvisor_cri_stop_one_keeps_siblings,
    limit = 180,
    |shim| {
        f2_pod(
            shim,
            "gvisor_cri_stop_one_keeps_siblings",
            true,
            NamespaceMode::Container,
        );
    }
);

robust_test!(
    /// The same in a pod sharing one pid namespace (`shareProcessNamespace: true`). Regression:
    /// runsc made the first app container the init of the shared namespace, so stopping it
    /// killed every container of the pod (2 runs in 3); the shim now places such containers
    /// in the sandbox's pid namespace, where the pause container is pid 1, as with runc.
    gvisor_cri_stop_one_keeps_siblings_shared_pidns,
    limit = 180,
    |shim| {
        f2_pod(
            shim,
            "gvisor_cri_stop_one_keeps_siblings_shared_pidns",
            true,
            NamespaceMode::Pod,
        );
    }
);

robust_test!(
    /// Kill -9 of the shim of a runsc pod: containerd's dead-shim cleanup (our `delete`)
    /// leaves no runsc-sandbox/runsc-gofer process, no runsc state, no mount.
    gvisor_cri_dead_shim_cleanup,
    limit = 180,
    |shim| {
        if !runsc_or_skip("gvisor_cri_dead_shim_cleanup") {
            return;
        }
        let api = Api::connect();
        let name = unique_id("gv-podkill", shim);
        let mut guard = PodGuard::new();
        let Some((pod_id, ids)) = run_gvisor_pod(
            &api,
            "gvisor_cri_dead_shim_cleanup",
            &name,
            &[SLEEPER, SLEEPER],
            NamespaceMode::Container,
            &mut guard,
        ) else {
            return;
        };
        let mut all = vec![pod_id.clone()];
        all.extend(ids.iter().cloned());
        let before = runsc_processes(&all);
        assert!(
            before.iter().any(|p| p.contains("runsc-sandbox")),
            "no runsc-sandbox for pod {pod_id}: {before:#?}"
        );
        let pid = shim_pid_of(CRI_NS, &pod_id);
        let off = log_offset();
        let killed = Instant::now();
        kill9(pid);
        let took = runsc_gone_within(CRI_NS, &all, DEAD_SHIM_CLEANUP_BOUND).unwrap_or_else(|e| {
            panic!(
                "pod shim {pid} killed: {e}\ncontainerd said:\n{}",
                containerd_complaints(off, &all, 8)
            )
        });
        eprintln!("pod shim {pid} killed: runsc sandbox, state and mounts gone in {took:.1?}");
        // then the pod still stops and goes through CRI within the bound, retried as
        // kubelet does: containerd 1.7+ refuses RemovePodSandbox until CRI has handled the
        // exits of its own dead-shim cleanup (our `delete` of each task; docs/gvisor.md)
        let r = kubelet_stop_remove(&api, &pod_id, DEAD_POD_STOP_REMOVE_BOUND).unwrap_or_else(|e| {
            panic!(
                "the runsc pod of a dead shim: {e}\ncontainerd said:\n{}",
                containerd_complaints(off, &all, 8)
            )
        });
        guard.pod_id = None;
        eprintln!(
            "runsc pod of a dead shim: stopped and removed {:.1?} after the kill ({:.1?} of \
             StopPodSandbox + RemovePodSandbox, {})",
            killed.elapsed(),
            r.took,
            r.refusals_summary()
        );
    }
);
