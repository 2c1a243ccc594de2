//! The faults of the machinery around a container: a runtime that hangs on one verb, a
//! host process holding the rootfs busy, kill -9 and SIGTERM of the shim daemon, and a
//! containerd restart.

use std::fs;
use std::time::{Duration, Instant};

use robust_integration::{pid_alive, poll_quiet, Shim};

use crate::client::{self, sh};
use crate::ctx::{Ctx, HUNG_DEADLINE, HUNG_MARGIN, SEC};
use crate::faults::{
    exec_exit, place, spec, stop, wait_ready, IGNORE_TERM, LOOP_TERM0, USR1_EXIT7,
};
use crate::host::{catches, Fault, Holder, Runtime};
use crate::rng::Rng;

/// SIGTERM to the shim daemon of a container whose init ignores it: our shim stops it
/// itself (stop_grace, then SIGKILL) and exits; containerd cleans up after it.
pub fn shim_sigterm(ctx: &mut Ctx, rng: &mut Rng) {
    let mut c = spec(ctx, rng, "st", IGNORE_TERM, false);
    if ctx.shim == Shim::Robust {
        let toml = ctx.host.scratch.join(format!("sigterm-{}.toml", ctx.cycle));
        let mut t = String::new();
        if ctx.runtime == Runtime::Runsc {
            t.push_str(&fs::read_to_string(&ctx.runsc_toml).unwrap_or_default());
        } else {
            t.push_str("[timeouts]\n");
        }
        t.push_str("stop_grace = \"1s\"\nkill_grace = \"1s\"\n");
        if fs::write(&toml, t).is_err() {
            ctx.violation("harness", &c.id, format!("cannot write {}", toml.display()));
            return;
        }
        c.options = Some(client::robust_options(&toml));
    }
    ctx.log(format!("shim-sigterm: {}", c.id));
    if ctx.run(&c).is_none() {
        return;
    }
    wait_ready(ctx, &c.id);
    let Some(shim) = the_shim(ctx, &c.id) else {
        return;
    };
    // SAFETY: kill(2) of the shim daemon serving our container
    unsafe { libc::kill(shim, libc::SIGTERM) };
    let t = Instant::now();
    if !poll_quiet(10 * SEC, || !pid_alive(shim)) {
        ctx.violation(
            "behaviour",
            &c.id,
            format!("shim {shim} still alive 10 s after SIGTERM"),
        );
    }
    ctx.expect_status(&c.id, &c.id, 137);
    ctx.log(format!("shim {shim} gone after {:.2?}", t.elapsed()));
    wait_task_gone(ctx, &c.id, 10 * SEC);
    ctx.remove(&c.id);
}

/// Polls until containerd no longer lists the task (its dead-shim cleanup is done).
/// The one shim daemon serving `id`; otherwise a harness violation is recorded, the
/// container finished, and `None` returned.
fn the_shim(ctx: &mut Ctx, id: &str) -> Option<i32> {
    let shims: Vec<i32> = ctx.host.shim_of(id);
    if let [shim] = shims[..] {
        return Some(shim);
    }
    ctx.violation(
        "harness",
        id,
        format!(
            "shim daemons serving it: {shims:?} ({})",
            shims
                .iter()
                .map(|p| robust_integration::cmdline(*p))
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    );
    ctx.finish(id);
    None
}

fn wait_task_gone(ctx: &mut Ctx, id: &str, limit: Duration) {
    let end = Instant::now() + limit;
    loop {
        match ctx.get(id, "") {
            Err(f) if f.not_found() => return,
            _ if Instant::now() >= end => {
                ctx.violation(
                    "behaviour",
                    id,
                    format!("containerd still lists the task {limit:?} after its shim died"),
                );
                let r = ctx.delete_task(id, ctx.bound("Tasks.Delete"));
                if let Err(f) = r {
                    if !f.not_found() {
                        ctx.must::<u32>("Tasks.Delete", id, Err(f));
                    }
                }
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A runtime that hangs on one verb (integration/fault-runtime.sh): ours must answer
/// DeadlineExceeded within the verb's deadline (2 s) + margin and stay usable; the
/// reference is given the same bound plus 6 s, then recorded as hung and released.
pub fn hung_runtime(ctx: &mut Ctx, rng: &mut Rng) {
    let verb = *rng.pick(&["create", "start", "exec", "kill", "delete"]);
    let dir = ctx.host.scratch.join(format!("fault-{}", ctx.cycle));
    let fault = match Fault::new(&dir, ctx.runtime) {
        Ok(f) => f,
        Err(e) => {
            ctx.violation("harness", "-", e);
            return;
        }
    };
    // ours may share the pod's shim on runc (the pod must not notice); the reference
    // blocks its whole shim on a hung call, so it gets a shim of its own
    let pod_ok = ctx.shim == Shim::Robust && ctx.runtime == Runtime::Runc;
    let mut c = spec(ctx, rng, "h", LOOP_TERM0, pod_ok);
    c.options = Some(match ctx.shim {
        Shim::Robust => {
            let toml = dir.join("robust.toml");
            let mut t = format!("[runtime]\nbinary = \"{}\"\n", fault.wrapper.display());
            if ctx.runtime == Runtime::Runsc {
                t.push_str(
                    "kind = \"runsc\"\n[runsc_config]\nplatform = \"ptrace\"\nnetwork = \"none\"\n",
                );
            }
            t.push_str(&format!(
                "[timeouts]\n{verb} = \"{}s\"\n",
                HUNG_DEADLINE.as_secs()
            ));
            if ctx.runtime == Runtime::Runsc && verb != "create" {
                t.push_str("create = \"60s\"\n");
            }
            if fs::write(&toml, t).is_err() {
                ctx.violation("harness", &c.id, "cannot write the fault TOML");
                return;
            }
            client::robust_options(&toml)
        }
        Shim::Reference => client::reference_options(&fault.wrapper),
    });
    let bound = HUNG_DEADLINE + HUNG_MARGIN;
    ctx.log(format!(
        "hung-runtime: {} verb {verb} ({})",
        c.id,
        place(&c)
    ));
    let Some(mounts) = ctx.make(&c) else { return };
    let id = c.id.clone();
    // after the hung call: nothing of the wrapper may be left (ours kills the group)
    let released = |ctx: &mut Ctx, fault: &Fault| {
        if !fault.hung_on(verb) {
            ctx.violation(
                "harness",
                &id,
                format!("the wrapper was never called for `{verb}`"),
            );
        }
        let killed = fault.release();
        if !killed.is_empty() {
            let what: Vec<String> = killed.iter().map(|(p, c)| format!("{p}: {c}")).collect();
            ctx.violation(
                "stray-process",
                &id,
                format!(
                    "hung `{verb}` call still running after the RPC returned: {}",
                    what.join("; ")
                ),
            );
        }
    };
    if verb == "create" {
        fault.hang("create");
        ctx.tag = "runtime hung";
        let r = ctx.create_task(&id, mounts.clone(), bound);
        ctx.tag = "";
        if r.is_ok() {
            ctx.violation(
                "behaviour",
                &id,
                "Tasks.Create succeeded with `create` hung",
            );
        }
        released(ctx, &fault);
        // the same container must be creatable again once the runtime answers
        let _ = ctx.delete_task(&id, ctx.bound("Tasks.Delete"));
        let r = ctx.create_task(&id, mounts, ctx.bound("Tasks.Create"));
        if ctx
            .must("Tasks.Create (after the hung create)", &id, r)
            .is_none()
        {
            return;
        }
        let r = ctx.start(&id, ctx.bound("Tasks.Start"));
        if ctx.must("Tasks.Start", &id, r).is_none() {
            return;
        }
        ctx.finish(&id);
        return;
    }
    let r = ctx.create_task(&id, mounts, ctx.bound("Tasks.Create"));
    if ctx.must("Tasks.Create", &id, r).is_none() {
        return;
    }
    if verb == "start" {
        fault.hang("start");
        ctx.tag = "runtime hung";
        let r = ctx.start(&id, bound);
        ctx.tag = "";
        if r.is_ok() {
            ctx.violation("behaviour", &id, "Tasks.Start succeeded with `start` hung");
        }
        released(ctx, &fault);
        let r = ctx.start(&id, ctx.bound("Tasks.Start"));
        if ctx
            .must("Tasks.Start (after the hung start)", &id, r)
            .is_none()
        {
            return;
        }
        ctx.finish(&id);
        return;
    }
    let r = ctx.start(&id, ctx.bound("Tasks.Start"));
    if ctx.must("Tasks.Start", &id, r).is_none() {
        return;
    }
    match verb {
        "exec" => {
            fault.hang("exec");
            let ns = ctx.ns();
            let fut = client::task_exec(
                ctx.ch.clone(),
                ns.clone(),
                id.clone(),
                "hx".into(),
                sh("exit 0"),
                "/".into(),
            );
            let r = ctx.rpc("Tasks.Exec", &id, ctx.bound("Tasks.Exec"), fut);
            if ctx.must("Tasks.Exec", &id, r).is_some() {
                let fut = client::task_start(ctx.ch.clone(), ns, id.clone(), "hx".into());
                ctx.tag = "runtime hung";
                let r = ctx.rpc("Tasks.Start(exec)", &id, bound, fut);
                ctx.tag = "";
                ctx.expect(&id, "hx", false, None);
                if r.is_ok() {
                    ctx.violation(
                        "behaviour",
                        &id,
                        "Tasks.Start(exec) succeeded with `exec` hung",
                    );
                }
            }
            released(ctx, &fault);
            let _ = ctx.delete_process(&id, "hx");
            exec_exit(ctx, &id, "hx2", 5);
            ctx.finish(&id);
        }
        "kill" => {
            fault.hang("kill");
            let fut = client::task_kill(
                ctx.ch.clone(),
                ctx.ns(),
                id.clone(),
                String::new(),
                libc::SIGTERM as u32,
                false,
            );
            ctx.tag = "runtime hung";
            let r = ctx.rpc("Tasks.Kill", &id, bound, fut);
            ctx.tag = "";
            if r.is_ok() {
                ctx.violation("behaviour", &id, "Tasks.Kill succeeded with `kill` hung");
            }
            released(ctx, &fault);
            stop(ctx, rng, &id);
        }
        _ => {
            // delete
            let r = ctx.kill(&id, "", libc::SIGKILL, false);
            if ctx.must("Tasks.Kill(SIGKILL)", &id, r).is_some() {
                ctx.wait_status(&id, "", 5 * SEC, 137);
            }
            fault.hang("delete");
            ctx.tag = "runtime hung";
            let r = ctx.delete_task(&id, bound);
            ctx.tag = "";
            if r.is_ok() {
                ctx.violation(
                    "behaviour",
                    &id,
                    "Tasks.Delete succeeded with `delete` hung",
                );
            }
            released(ctx, &fault);
            let r = ctx.delete_task(&id, ctx.bound("Tasks.Delete"));
            match r {
                Err(f) if f.not_found() => {}
                r => {
                    ctx.must("Tasks.Delete (after the hung delete)", &id, r);
                }
            }
            ctx.remove(&id);
        }
    }
}

/// A host process with its cwd in the container's rootfs during the delete: ours retries
/// the unmount for its bound (2 s), then detaches lazily; the delete must succeed.
pub fn busy_rootfs(ctx: &mut Ctx, rng: &mut Rng) {
    let c = spec(ctx, rng, "b", LOOP_TERM0, true);
    ctx.log(format!("busy-rootfs: {} ({})", c.id, place(&c)));
    if ctx.run(&c).is_none() {
        return;
    }
    let sub = *rng.pick(&["", "tmp", "bin"]);
    let dir = ctx.host.bundle(&c.id).join("rootfs").join(sub);
    let holder = match Holder::new(&dir) {
        Ok(h) => h,
        Err(e) => {
            ctx.violation("harness", &c.id, e);
            ctx.finish(&c.id);
            return;
        }
    };
    ctx.log(format!("holder {} in {}", holder.pid(), dir.display()));
    let r = ctx.kill(&c.id, "", libc::SIGKILL, false);
    if ctx.must("Tasks.Kill(SIGKILL)", &c.id, r).is_some() {
        ctx.wait_status(&c.id, "", 5 * SEC, 137);
    }
    // the unmount bound (2 s) + the usual delete bound
    ctx.tag = "rootfs busy";
    let r = ctx.delete_task(&c.id, ctx.bound("Tasks.Delete") + 2 * SEC);
    ctx.tag = "";
    let failed = r.is_err();
    ctx.must("Tasks.Delete (rootfs busy)", &c.id, r);
    drop(holder);
    if failed {
        let r = ctx.delete_task(&c.id, ctx.bound("Tasks.Delete"));
        if let Err(f) = r {
            if !f.not_found() {
                ctx.must::<u32>("Tasks.Delete (holder gone)", &c.id, Err(f));
            }
        }
    }
    ctx.remove(&c.id);
}

/// kill -9 of a solo container's shim daemon (maybe with an exec running): containerd's
/// dead-shim cleanup must leave nothing and publish the exit once.
pub fn shim_kill9(ctx: &mut Ctx, rng: &mut Rng) {
    let c = spec(ctx, rng, "k", LOOP_TERM0, false);
    ctx.log(format!("shim-kill9: {}", c.id));
    if ctx.run(&c).is_none() {
        return;
    }
    if rng.chance(1, 2) {
        let r = ctx.exec(&c.id, "run", &sh("sleep 60"));
        ctx.must("Tasks.Start(exec)", &c.id, r);
        // its exit is never published: the shim that would have seen it is gone
        if let Some(e) = ctx
            .expects
            .iter_mut()
            .find(|e| e.cid == c.id && e.id == "run")
        {
            e.started = false;
        }
    }
    let Some(shim) = the_shim(ctx, &c.id) else {
        return;
    };
    let pause = Duration::from_millis(rng.range(0, 300));
    let execs = ctx
        .expects
        .iter()
        .filter(|e| e.cid == c.id && e.id != c.id)
        .count();
    ctx.log(format!(
        "SIGKILL of shim {shim} after {pause:?} ({execs} exec(s))"
    ));
    std::thread::sleep(pause);
    // SAFETY: kill(2) of the shim daemon serving our container
    unsafe { libc::kill(shim, libc::SIGKILL) };
    ctx.expect_status(&c.id, &c.id, 137);
    wait_task_gone(ctx, &c.id, 10 * SEC);
    ctx.remove(&c.id);
}

/// containerd stopped while a container runs; the container exits (7) meanwhile;
/// containerd restarted: the task must say STOPPED 7, the exit must be published once
/// (after the restart), and the container deletable. The pod lives through it.
pub fn containerd_restart(ctx: &mut Ctx, rng: &mut Rng) {
    let c = spec(ctx, rng, "r", USR1_EXIT7, true);
    ctx.log(format!("containerd-restart: {} ({})", c.id, place(&c)));
    let Some(pid) = ctx.run(&c) else { return };
    if !wait_ready(ctx, &c.id) {
        ctx.finish(&c.id);
        return;
    }
    if ctx.runtime == Runtime::Runc && !catches(pid, libc::SIGUSR1) {
        ctx.violation(
            "harness",
            &c.id,
            "the init does not catch SIGUSR1 after it became ready",
        );
    }
    ctx.expect_status(&c.id, &c.id, 7);
    match ctx.host.stop_containerd() {
        Ok(t) => ctx.log(format!("containerd stopped in {t:.2?}")),
        Err(e) => {
            ctx.violation("harness", &c.id, format!("stopping containerd: {e}"));
            return;
        }
    }
    // the exit happens while containerd is down
    match ctx.runtime {
        Runtime::Runc => {
            // SAFETY: kill(2) of the init pid containerd gave us
            unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
            poll_quiet(5 * SEC, || !pid_alive(pid as i32));
        }
        Runtime::Runsc => {
            let _ = std::process::Command::new("timeout")
                .args([
                    "-k",
                    "2",
                    "10",
                    "runsc",
                    "--platform=ptrace",
                    "--network=none",
                    "--root",
                ])
                .arg(&ctx.host.runsc_root)
                .args(["kill", &c.id, "USR1"])
                .status();
            std::thread::sleep(Duration::from_millis(700));
        }
    }
    let down = Duration::from_millis(rng.range(200, 2000));
    std::thread::sleep(down);
    let gated = match ctx.host.start_containerd_gated() {
        Ok(g) => g,
        Err(e) => {
            ctx.violation("harness", &c.id, format!("restarting containerd: {e}"));
            return;
        }
    };
    if let Err(e) = ctx.reconnect(30 * SEC) {
        ctx.host.open_gate(&gated);
        ctx.violation(
            "harness",
            &c.id,
            format!("containerd did not come back: {e}"),
        );
        return;
    }
    let subscribed = ctx.resubscribe();
    ctx.host.open_gate(&gated);
    if !subscribed {
        return;
    }
    match ctx.get(&c.id, "") {
        Ok((_, st, ex)) if st == client::STOPPED && ex == 7 => {}
        Ok((_, st, ex)) => ctx.violation(
            "behaviour",
            &c.id,
            format!(
                "after the restart the task is {} exit {ex}; it exited 7 while containerd was down",
                client::status_name(st)
            ),
        ),
        Err(f) => {
            ctx.must::<()>("Tasks.Get (after the restart)", &c.id, Err(f));
        }
    }
    ctx.wait_status(&c.id, "", 5 * SEC, 7);
    // the container is still manageable: delete it
    let r = ctx.delete_task(&c.id, ctx.bound("Tasks.Delete"));
    ctx.must("Tasks.Delete (after the restart)", &c.id, r);
    ctx.remove(&c.id);
}
