//! The checks after every cycle and at the end, and the clean-up of what they find (so
//! one leftover is reported once and does not spill into the next cycles).

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use robust_integration::{pid_alive, poll_quiet, proc_start_time};

use crate::client::{self, RUNNING};
use crate::ctx::{Ctx, SEC};
use crate::host::fds_rss;
use crate::report::{trend, Sample};

/// How long a started process's exit may take to be published after its cycle ended.
const EXIT_WAIT: Duration = Duration::from_secs(10);
/// How long leftovers get to disappear (asynchronous cleanups) before they count.
const SETTLE: Duration = Duration::from_secs(5);

pub fn after_cycle(ctx: &mut Ctx) {
    if ctx.events.closed() {
        ctx.violation(
            "event-stream",
            "-",
            "the event subscription ended outside a containerd restart; resubscribing",
        );
        ctx.resubscribe();
    }
    zombies(ctx);
    exits(ctx, false);
    leftovers(ctx);
    records(ctx);
    pod(ctx);
    bystanders(ctx);
}

fn zombies(ctx: &mut Ctx) {
    let mut last = Vec::new();
    if !poll_quiet(SETTLE, || {
        last = ctx.host.shim_zombies();
        last.is_empty()
    }) {
        for z in last {
            ctx.violation("zombie", "-", format!("{z} (unreaped for {SETTLE:?})"));
        }
    }
}

/// The exits of the processes of this cycle (or, `all`, of the whole run: duplicates that
/// came late).
pub fn exits(ctx: &mut Ctx, all: bool) {
    let cycle = ctx.cycle;
    let pending: Vec<usize> = (0..ctx.expects.len())
        .filter(|&i| {
            let e = &ctx.expects[i];
            // a process is due once its container is gone (the pod's at the end)
            all || (!e.checked && e.cycle <= cycle && !ctx.live.contains(&e.cid))
        })
        .collect();
    let end = Instant::now() + EXIT_WAIT;
    poll_quiet(EXIT_WAIT, || {
        pending.iter().all(|&i| {
            let e = &ctx.expects[i];
            !e.started || !ctx.events.exits(&e.cid, &e.id).is_empty()
        }) || Instant::now() >= end
    });
    for i in pending {
        let e = ctx.expects[i].clone();
        let st = ctx.events.exits(&e.cid, &e.id);
        let saved_cycle = ctx.cycle;
        let saved_fault = std::mem::replace(&mut ctx.fault, e.fault.clone());
        ctx.cycle = e.cycle;
        let who = if e.id == e.cid {
            "init".to_string()
        } else {
            format!("exec {}", e.id)
        };
        if all && e.checked {
            // only what changed since its cycle: a late duplicate
            if st.len() > e.seen.max(1) {
                ctx.violation(
                    "exit-duplicate",
                    &e.cid,
                    format!(
                        "{who}: {} /tasks/exit by the end of the run (statuses {st:?})",
                        st.len()
                    ),
                );
            }
        } else {
            if !e.started {
                ctx.report.unstarted_exits.1 += 1;
                if !st.is_empty() {
                    ctx.report.unstarted_exits.0 += 1;
                }
            }
            if e.started && st.is_empty() {
                ctx.violation(
                    "exit-missing",
                    &e.cid,
                    format!("{who}: no /tasks/exit within {EXIT_WAIT:?} after its cycle"),
                );
            }
            if st.len() > 1 {
                ctx.violation(
                    "exit-duplicate",
                    &e.cid,
                    format!(
                        "{who}: {} /tasks/exit published (statuses {st:?})",
                        st.len()
                    ),
                );
            }
            if let (Some(want), Some(got)) = (e.status, st.first()) {
                if *got != want {
                    ctx.violation(
                        "exit-status",
                        &e.cid,
                        format!("{who}: /tasks/exit says {got}, the process exited {want}"),
                    );
                }
            }
            if e.oom && e.id == e.cid {
                let seq = ctx.events.sequence(&e.cid);
                let ooms = seq.iter().filter(|s| *s == "oom").count();
                let first_oom = seq.iter().position(|s| s == "oom");
                let exit = seq.iter().position(|s| *s == format!("exit:{}", e.cid));
                if ooms != 1 || first_oom.zip(exit).is_none_or(|(o, x)| o > x) {
                    ctx.violation(
                        "oom-event",
                        &e.cid,
                        format!("events of the OOM-killed container: {seq:?}"),
                    );
                }
            }
        }
        ctx.cycle = saved_cycle;
        ctx.fault = saved_fault;
        ctx.expects[i].checked = true;
        ctx.expects[i].seen = st.len();
    }
}

/// Mounts, bundles, runtime state, cgroups, stray runtime processes and shims of
/// containers that are gone; each is reported once, then cleaned up.
fn leftovers(ctx: &mut Ctx) {
    let live = ctx.live.clone();
    let pod_shim = ctx.pod.as_ref().map(|p| p.shim);
    type Found = Vec<(&'static str, String)>;
    let scan = |ctx: &Ctx| -> Found {
        let h = &ctx.host;
        let mut v: Found = Vec::new();
        v.extend(h.mounts_left(&live).into_iter().map(|m| ("mount", m)));
        v.extend(h.bundles_left(&live).into_iter().map(|m| ("bundle", m)));
        v.extend(
            h.runtime_state_left(&live)
                .into_iter()
                .map(|m| ("runtime-state", m)),
        );
        v.extend(h.cgroups_left(&live).into_iter().map(|m| ("cgroup", m)));
        v.extend(
            h.stray_processes(&live)
                .into_iter()
                .map(|m| ("stray-process", m)),
        );
        for (pid, id, exe) in h.shims() {
            if !live.contains(&id) && Some(pid) != pod_shim {
                v.push(("stray-shim", format!("{pid} ({exe}) -id {id}")));
            }
        }
        v
    };
    let mut found = Vec::new();
    poll_quiet(SETTLE, || {
        found = scan(ctx);
        found.is_empty()
    });
    for (kind, what) in found {
        let id = guess_id(&what, ctx.seed);
        if ctx.reported.insert(format!("{kind} {what}")) {
            ctx.violation(
                kind,
                &id,
                format!("{what} (still there {SETTLE:?} after the cycle)"),
            );
        }
        clean_up(ctx, kind, &what, &id);
    }
}

/// The container id a leftover's description names (`s<seed>-...`), or "-".
fn guess_id(what: &str, seed: u64) -> String {
    let p = format!("s{seed}-");
    what.split(|c: char| c.is_whitespace() || c == '/' || c == ':' || c == '(' || c == ',')
        .find(|w| w.starts_with(&p))
        .map(|w| w.trim_end_matches("_sandbox").to_string())
        .unwrap_or_else(|| "-".into())
}

fn clean_up(ctx: &mut Ctx, kind: &str, what: &str, id: &str) {
    let first = what.split_whitespace().next().unwrap_or("");
    match kind {
        "mount" => {
            if let Ok(c) = std::ffi::CString::new(first) {
                // SAFETY: umount2 of a path string we own
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        "bundle"
            if ctx
                .host
                .mounts_left(&HashSet::new())
                .iter()
                .all(|m| !m.starts_with(first)) =>
        {
            let _ = fs::remove_dir_all(first);
        }
        "runtime-state" => {
            let (bin, root) = if first.starts_with(&ctx.host.runsc_root.display().to_string()) {
                ("runsc", ctx.host.runsc_root.clone())
            } else {
                ("runc", ctx.host.runc_root.clone())
            };
            let _ = Command::new("timeout")
                .args(["-k", "2", "10", bin])
                .args(if bin == "runsc" {
                    vec!["--platform=ptrace", "--network=none"]
                } else {
                    vec![]
                })
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", id])
                .output();
            let p = Path::new(first);
            if p.is_dir() {
                let _ = fs::remove_dir_all(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
        "cgroup" => {
            if let Ok(t) = fs::read_to_string(Path::new(first).join("cgroup.procs")) {
                for p in t.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                    // SAFETY: kill(2) of a process in a cgroup of a deleted soak container
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            poll_quiet(2 * SEC, || {
                fs::remove_dir(first).is_ok() || !Path::new(first).exists()
            });
        }
        "stray-process" | "stray-shim" => {
            if let Ok(pid) = first.parse::<i32>() {
                // SAFETY: kill(2) of a runtime process or shim of the soak's namespace
                unsafe { libc::kill(pid, libc::SIGKILL) };
                poll_quiet(2 * SEC, || !pid_alive(pid));
            }
        }
        _ => {}
    }
}

/// Tasks, containers and active snapshots containerd still holds for gone containers.
fn records(ctx: &mut Ctx) {
    let ns = ctx.ns();
    let live = ctx.live.clone();
    let r = ctx.rpc(
        "Tasks.List",
        "-",
        ctx.bound("Tasks.List"),
        client::list_tasks(ctx.ch.clone(), ns.clone()),
    );
    let mut left: Vec<(String, String)> = Vec::new();
    if let Some(tasks) = ctx.must("Tasks.List", "-", r) {
        for (id, pid, st) in tasks {
            if !live.contains(&id) {
                left.push((id, format!("task (pid {pid}, {})", client::status_name(st))));
            }
        }
    }
    let r = ctx.rpc(
        "Containers.List",
        "-",
        ctx.bound("Containers.List"),
        client::list_containers(ctx.ch.clone(), ns.clone()),
    );
    if let Some(cs) = ctx.must("Containers.List", "-", r) {
        for id in cs.into_iter().filter(|id| !live.contains(id)) {
            left.push((id, "container record".into()));
        }
    }
    let r = ctx.rpc(
        "Snapshots.List",
        "-",
        ctx.bound("Snapshots.List"),
        client::list_snapshots(ctx.ch.clone(), ns),
    );
    if let Some(ss) = ctx.must("Snapshots.List", "-", r) {
        for id in ss.into_iter().filter(|id| !live.contains(id)) {
            left.push((id, "active snapshot".into()));
        }
    }
    let mut ids = HashSet::new();
    for (id, what) in left {
        if ctx.reported.insert(format!("record {id} {what}")) {
            ctx.violation(
                "containerd-record",
                &id,
                format!("containerd still holds its {what}"),
            );
        }
        ids.insert(id);
    }
    for id in ids {
        ctx.force_remove(&id);
    }
}

/// The long-lived pod: its container still RUNNING with the same pid, its shim the same
/// process; sampled for fds and RSS.
fn pod(ctx: &mut Ctx) {
    let Some((id, pid, shim)) = ctx.pod.as_ref().map(|p| (p.id.clone(), p.pid, p.shim)) else {
        return;
    };
    let mut problem = None;
    match ctx.get(&id, "") {
        Ok((p, st, ex)) if st != RUNNING || p != pid => {
            problem = Some(format!(
                "the pod container is {} (pid {p}, exit {ex}); it was RUNNING as pid {pid}",
                client::status_name(st)
            ))
        }
        Ok(_) => {}
        Err(f) => problem = Some(format!("Tasks.Get of the pod: {}", f.describe())),
    }
    if problem.is_none() && !pid_alive(shim) {
        problem = Some(format!("its shim daemon {shim} is gone"));
    }
    if let Some(p) = problem {
        ctx.violation("pod-disturbed", &id, p);
        ctx.force_remove(&id);
        ctx.pod = None;
        ctx.report.notes.push(format!(
            "the pod was recreated after cycle {} (daemon samples restart there)",
            ctx.cycle
        ));
        ctx.report.samples.clear();
        if let Err(e) = crate::start_pod(ctx) {
            ctx.violation("harness", "-", format!("recreating the pod: {e}"));
        }
        return;
    }
    if let Some((fds, rss_kib)) = fds_rss(shim) {
        if ctx.verbose {
            ctx.log(format!(
                "pod shim {shim}: {fds} fds ({}), RSS {rss_kib} KiB",
                fd_kinds(shim)
            ));
        }
        ctx.report.samples.push(Sample {
            cycle: ctx.cycle,
            fds,
            rss_kib,
        });
    }
}

/// The bystanders: the host process and the container's init alive with the same pid and
/// start time (and the host process in the same cgroups), the container RUNNING. When
/// one was harmed, both are made again (so each later harm counts too).
fn bystanders(ctx: &mut Ctx) {
    let Some(b) = ctx.bystanders.as_mut() else {
        return;
    };
    let (id, pid, start) = (b.id.clone(), b.pid, b.start);
    let mut harmed: Vec<(String, String)> = Vec::new();
    if let Err(e) = b.host.check() {
        harmed.push(("-".into(), e));
    }
    match ctx.get(&id, "") {
        Ok((p, st, ex)) if st != RUNNING || p != pid => harmed.push((
            id.clone(),
            format!(
                "the bystander container is {} (pid {p}, exit {ex}); it was RUNNING as pid {pid}",
                client::status_name(st)
            ),
        )),
        Ok(_) => {}
        Err(f) => harmed.push((
            id.clone(),
            format!("Tasks.Get of the bystander container: {}", f.describe()),
        )),
    }
    if proc_start_time(pid as i32) != Some(start) || !pid_alive(pid as i32) {
        harmed.push((
            id.clone(),
            format!("the bystander container's init {pid} is gone or not the same process"),
        ));
    }
    if harmed.is_empty() {
        return;
    }
    for (who, what) in harmed {
        ctx.violation("bystander-harmed", &who, what);
    }
    ctx.bystanders = None;
    ctx.host.keep_cgroup = None;
    ctx.force_remove(&id);
    ctx.report.notes.push(format!(
        "the bystanders were made again after cycle {}",
        ctx.cycle
    ));
    if let Err(e) = crate::start_bystanders(ctx) {
        ctx.violation("harness", "-", format!("making the bystanders again: {e}"));
    }
}

/// At the end: the daemon's fds and RSS must be flat (first window vs last window).
pub fn daemon_growth(ctx: &mut Ctx) {
    let Some(((f0, r0), (f1, r1))) = trend(&ctx.report.samples) else {
        return;
    };
    let id = ctx.pod.as_ref().map(|p| p.id.clone()).unwrap_or("-".into());
    if f1 > f0 + 3 {
        ctx.violation(
            "daemon-growth",
            &id,
            format!("fd count of the pod's shim daemon {f0} -> {f1}"),
        );
    }
    let slack = (r0 / 4).max(4096);
    if r1 > r0 + slack {
        ctx.violation(
            "daemon-growth",
            &id,
            format!("RSS of the pod's shim daemon {r0} KiB -> {r1} KiB (slack {slack} KiB)"),
        );
    }
}

/// Whether runsc can run here at all (`runsc do true`).
pub fn runsc_works() -> bool {
    Command::new("timeout")
        .args([
            "-k",
            "2",
            "30",
            "runsc",
            "--platform=ptrace",
            "--network=none",
            "do",
            "true",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The open fds of a process by kind ("socket x5, pipe x3, /dev/null x2").
pub fn fd_kinds(pid: i32) -> String {
    let mut m: std::collections::BTreeMap<String, usize> = Default::default();
    for e in fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let t = fs::read_link(e.path())
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let k = match t.split_once(":[") {
            Some((k, _)) if !t.starts_with('/') => k.to_string(),
            _ => t,
        };
        *m.entry(k).or_default() += 1;
    }
    m.iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
