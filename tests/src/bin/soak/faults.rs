//! One cycle of each fault kind. Every cycle creates, starts, execs, kills and deletes its
//! containers through containerd's API; the checks run afterwards (checks.rs). The faults
//! of the workload are here; those of the machinery around it (runtime, rootfs, shim,
//! containerd) are in infra.rs.

use std::time::Duration;

use robust_integration::{poll_quiet, Shim};

use crate::client::{self, sh, CSpec, RUNNING};
use crate::ctx::{Ctx, Fail, SEC};
use crate::host::{ignores, Runtime};
use crate::rng::Rng;

/// Every fault kind, in the order of the summary.
pub const FAULTS: &[&str] = &[
    "none",
    "orphan",
    "exec-missing",
    "sigterm-ignored",
    "oom",
    "hung-runtime",
    "busy-rootfs",
    "shim-kill9",
    "containerd-restart",
    "shim-sigterm",
];

/// Faults only run when asked for (`--faults`): see docs/soak.md.
pub const OPT_IN: &[&str] = &["shim-sigterm"];

/// Draw weights: a plain cycle twice as often as each fault.
pub fn weight(f: &str) -> u64 {
    if f == "none" {
        2
    } else {
        1
    }
}

/// Whether a fault means something for this shim and runtime (every kind does, on both
/// runtimes, here; the hook stays for runtimes where one does not).
pub fn applicable(_f: &str, _shim: Shim, _rt: Runtime) -> bool {
    true
}

pub(crate) const LOOP_TERM0: &str = "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done";
pub(crate) const IGNORE_TERM: &str = "trap '' TERM; touch /soak-ready; while :; do sleep 1; done";
pub(crate) const USR1_EXIT7: &str =
    "trap 'exit 7' USR1; touch /soak-ready; while :; do sleep 0.2; done";
const ALLOCATE: &str = "sleep 0.3; x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done";

pub fn run(ctx: &mut Ctx, fault: &str, rng: &mut Rng) {
    match fault {
        "orphan" => orphan(ctx, rng),
        "exec-missing" => exec_missing(ctx, rng),
        "sigterm-ignored" => sigterm_ignored(ctx, rng),
        "oom" => oom(ctx, rng),
        "hung-runtime" => crate::infra::hung_runtime(ctx, rng),
        "busy-rootfs" => crate::infra::busy_rootfs(ctx, rng),
        "shim-kill9" => crate::infra::shim_kill9(ctx, rng),
        "containerd-restart" => crate::infra::containerd_restart(ctx, rng),
        "shim-sigterm" => crate::infra::shim_sigterm(ctx, rng),
        _ => plain(ctx, rng),
    }
}

/// A container spec: in the long-lived pod (a member of its shim and, on runsc, of its
/// sandbox) with probability 1/2 when `pod_ok`, else solo (a shim of its own).
pub(crate) fn spec(ctx: &Ctx, rng: &mut Rng, tag: &str, script: &str, pod_ok: bool) -> CSpec {
    let group = match &ctx.pod {
        Some(p) if pod_ok && rng.chance(1, 2) => Some((p.id.clone(), false)),
        _ => None,
    };
    CSpec {
        id: ctx.id(tag),
        args: sh(script),
        group,
        options: ctx.default_options(),
        ..Default::default()
    }
}

pub(crate) fn place(c: &CSpec) -> &'static str {
    if c.group.is_some() {
        "pod member"
    } else {
        "solo"
    }
}

/// Waits (bounded) until the workload of `id` has installed its traps: `/soak-ready`
/// in its rootfs, as seen from the host.
pub(crate) fn wait_ready(ctx: &mut Ctx, id: &str) -> bool {
    let f = ctx.host.bundle(id).join("rootfs/soak-ready");
    if poll_quiet(10 * SEC, || f.exists()) {
        return true;
    }
    ctx.violation(
        "behaviour",
        id,
        "the workload never became ready (/soak-ready) within 10 s",
    );
    false
}

/// Execs `sh -c 'exit K'` and checks K.
pub(crate) fn exec_exit(ctx: &mut Ctx, id: &str, exec: &str, k: u32) {
    let r = ctx.exec(id, exec, &sh(&format!("exit {k}")));
    if ctx.must("Tasks.Start(exec)", id, r).is_some() {
        ctx.wait_status(id, exec, 10 * SEC, k);
    }
    let r = ctx.delete_process(id, exec);
    ctx.must("Tasks.DeleteProcess", id, r);
}

/// Stops a running container as a kubelet would: SIGTERM (it exits 0), or SIGKILL.
pub(crate) fn stop(ctx: &mut Ctx, rng: &mut Rng, id: &str) {
    if rng.chance(1, 2) {
        let r = ctx.kill(id, "", libc::SIGTERM, false);
        if ctx.must("Tasks.Kill(SIGTERM)", id, r).is_some() {
            ctx.wait_status(id, "", 10 * SEC, 0);
        }
    } else {
        let r = ctx.kill(id, "", libc::SIGKILL, false);
        if ctx.must("Tasks.Kill(SIGKILL)", id, r).is_some() {
            ctx.wait_status(id, "", 10 * SEC, 137);
        }
    }
    let r = ctx.delete_task(id, ctx.bound("Tasks.Delete"));
    ctx.must("Tasks.Delete", id, r);
    ctx.remove(id);
}

// ---------------------------------------------------------------------------------------

/// create, start, 0-3 execs with exit codes, maybe a long exec killed, stop, delete.
fn plain(ctx: &mut Ctx, rng: &mut Rng) {
    let c = spec(ctx, rng, "a", LOOP_TERM0, true);
    ctx.log(format!("plain: {} ({})", c.id, place(&c)));
    if ctx.run(&c).is_none() {
        return;
    }
    for i in 0..rng.below(4) {
        let k = rng.below(6) as u32;
        exec_exit(ctx, &c.id, &format!("e{i}"), k);
    }
    if rng.chance(1, 3) {
        let r = ctx.exec(&c.id, "long", &sh("sleep 60"));
        if ctx.must("Tasks.Start(exec)", &c.id, r).is_some() {
            let r = ctx.kill(&c.id, "long", libc::SIGKILL, false);
            if ctx.must("Tasks.Kill(exec, SIGKILL)", &c.id, r).is_some() {
                ctx.wait_status(&c.id, "long", 5 * SEC, 137);
            }
            let r = ctx.delete_process(&c.id, "long");
            ctx.must("Tasks.DeleteProcess", &c.id, r);
        }
    }
    stop(ctx, rng, &c.id);
}

/// Workloads that orphan and double-fork: in the host pid namespace (runc) the shim must
/// adopt and reap them; an init that exits leaving a daemon behind must have it killed.
fn orphan(ctx: &mut Ctx, rng: &mut Rng) {
    let host_pid = ctx.runtime == Runtime::Runc && rng.chance(2, 3);
    let leave_daemon = host_pid && rng.chance(1, 3);
    let script = if leave_daemon {
        "(setsid sh -c 'sleep 300 & exit 0' &); (sleep 300 &); exit 3".to_string()
    } else {
        format!("sleep 1 & (sleep 2 &) & (setsid sh -c 'sleep 3 & exit 0' &); {LOOP_TERM0}")
    };
    let mut c = spec(ctx, rng, "o", &script, !host_pid);
    c.host_pid = host_pid;
    ctx.log(format!(
        "orphan: {} (host pid {host_pid}, init leaves a daemon {leave_daemon}, {})",
        c.id,
        place(&c)
    ));
    if ctx.run(&c).is_none() {
        return;
    }
    if leave_daemon {
        // the init exits 3 at once; its daemons live on until the task is deleted
        ctx.wait_status(&c.id, "", 10 * SEC, 3);
        let r = ctx.delete_task(&c.id, ctx.bound("Tasks.Delete"));
        ctx.must("Tasks.Delete", &c.id, r);
        ctx.remove(&c.id);
        return;
    }
    for i in 0..rng.range(1, 3) {
        let e = format!("orph{i}");
        let r = ctx.exec(
            &c.id,
            &e,
            &sh("(sleep 1 &); (setsid sh -c 'sleep 2 &' &); sleep 0.5 & exit 0"),
        );
        if ctx.must("Tasks.Start(exec)", &c.id, r).is_some() {
            ctx.wait_status(&c.id, &e, 10 * SEC, 0);
        }
        let r = ctx.delete_process(&c.id, &e);
        ctx.must("Tasks.DeleteProcess", &c.id, r);
    }
    // let some orphans die while the container runs (they must be reaped, not zombies)
    std::thread::sleep(Duration::from_millis(rng.range(0, 2500)));
    stop(ctx, rng, &c.id);
}

/// Execs of a missing binary (and of a missing cwd), creates of a missing init.
fn exec_missing(ctx: &mut Ctx, rng: &mut Rng) {
    if rng.chance(1, 4) {
        let mut c = spec(ctx, rng, "m", "true", true);
        c.args = vec![format!("/soak-missing-init-{}", ctx.cycle)];
        ctx.log(format!(
            "exec-missing: create of a missing init {} ({})",
            c.id,
            place(&c)
        ));
        let Some(mounts) = ctx.make(&c) else { return };
        let r = ctx.create_task(&c.id, mounts, ctx.bound("Tasks.Create"));
        if r.is_ok() {
            // runsc creates the sandbox first: the start must fail then
            let r = ctx.start(&c.id, ctx.bound("Tasks.Start"));
            if r.is_ok() {
                ctx.wait(&c.id, "", 10 * SEC);
            }
            let r = ctx.delete_task(&c.id, ctx.bound("Tasks.Delete"));
            ctx.must("Tasks.Delete", &c.id, r);
        } else {
            ctx.expect(&c.id, &c.id, false, None);
        }
        ctx.remove(&c.id);
        return;
    }
    let c = spec(ctx, rng, "m", LOOP_TERM0, true);
    ctx.log(format!("exec-missing: {} ({})", c.id, place(&c)));
    if ctx.run(&c).is_none() {
        return;
    }
    for i in 0..rng.range(1, 4) {
        let e = format!("miss{i}");
        let missing_cwd = ctx.runtime == Runtime::Runc && rng.chance(1, 4);
        let r = if missing_cwd {
            ctx.exec_in(&c.id, &e, &sh("exit 0"), "/soak-no-such-dir")
        } else {
            ctx.exec(&c.id, &e, &[format!("/soak-missing-{}-{i}", ctx.cycle)])
        };
        match r {
            Err(Fail::Status(_)) => {}
            Err(Fail::Hung) => {}
            Ok(pid) => {
                let what = if missing_cwd {
                    "with a missing cwd"
                } else {
                    "of a missing binary"
                };
                ctx.violation(
                    "behaviour",
                    &c.id,
                    format!("the exec {what} started (pid {pid})"),
                );
                ctx.wait(&c.id, &e, 10 * SEC);
            }
        }
        let r = ctx.delete_process(&c.id, &e);
        if let Err(f) = r {
            if !f.not_found() {
                ctx.must::<u32>("Tasks.DeleteProcess", &c.id, Err(f));
            }
        }
    }
    // the container must still be usable
    exec_exit(ctx, &c.id, "after", 4);
    stop(ctx, rng, &c.id);
}

/// An init that ignores SIGTERM: SIGTERM leaves it running, the escalation to SIGKILL
/// after a grace ends it (exit 137).
fn sigterm_ignored(ctx: &mut Ctx, rng: &mut Rng) {
    let c = spec(ctx, rng, "t", IGNORE_TERM, true);
    ctx.log(format!("sigterm-ignored: {} ({})", c.id, place(&c)));
    let Some(pid) = ctx.run(&c) else { return };
    if !wait_ready(ctx, &c.id) {
        ctx.finish(&c.id);
        return;
    }
    if ctx.runtime == Runtime::Runc && !ignores(pid, libc::SIGTERM) {
        ctx.violation(
            "harness",
            &c.id,
            "the init does not ignore SIGTERM after it became ready",
        );
    }
    let r = ctx.kill(&c.id, "", libc::SIGTERM, false);
    ctx.must("Tasks.Kill(SIGTERM)", &c.id, r);
    let grace = Duration::from_millis(rng.range(500, 1500));
    std::thread::sleep(grace);
    match ctx.get(&c.id, "") {
        Ok((_, st, _)) if st == RUNNING => {}
        Ok((_, st, ex)) => ctx.violation(
            "behaviour",
            &c.id,
            format!(
                "an init ignoring SIGTERM is {} (exit {ex}) {grace:?} after SIGTERM",
                client::status_name(st)
            ),
        ),
        Err(f) => {
            ctx.must::<()>("Tasks.Get", &c.id, Err(f));
        }
    }
    // the escalation: SIGKILL (all=true half the time, as `ctr task kill -a -s KILL`)
    let all = rng.chance(1, 2);
    let r = ctx.kill(&c.id, "", libc::SIGKILL, all);
    if ctx.must("Tasks.Kill(SIGKILL)", &c.id, r).is_some() {
        ctx.wait_status(&c.id, "", 5 * SEC, 137);
    }
    let r = ctx.delete_task(&c.id, ctx.bound("Tasks.Delete"));
    ctx.must("Tasks.Delete", &c.id, r);
    ctx.remove(&c.id);
}

/// An OOM kill: a 16 MiB memory limit (32 MiB for a gVisor sandbox, whose sentry needs
/// some) and an allocation loop; one /tasks/oom, then the exit (137). On runsc the limit
/// is the sandbox's, so the container is solo (the pod's sandbox would be killed).
fn oom(ctx: &mut Ctx, rng: &mut Rng) {
    let runsc = ctx.runtime == Runtime::Runsc;
    let mut c = spec(ctx, rng, "oom", ALLOCATE, !runsc);
    c.memory_limit = Some(if runsc { 32 << 20 } else { 16 << 20 });
    ctx.log(format!("oom: {} ({})", c.id, place(&c)));
    if ctx.run(&c).is_none() {
        return;
    }
    ctx.wait_status(&c.id, "", 20 * SEC, 137);
    if let Some(e) = ctx
        .expects
        .iter_mut()
        .find(|e| e.cid == c.id && e.id == c.id)
    {
        e.oom = true;
    }
    let r = ctx.delete_task(&c.id, ctx.bound("Tasks.Delete"));
    ctx.must("Tasks.Delete", &c.id, r);
    ctx.remove(&c.id);
}
