//! Issue 3 (F3, and the stop half of F2): reaping on every path, and bounded stops.
//!
//! - failed execs and creates (missing executable, bad cwd) leave no zombie, no stray
//!   process and no leaked fd in the shim, and fail with the runtime's own words;
//! - orphans and double-forked daemons, in the container's pid namespace and in the
//!   host's (where the shim, as child subreaper, adopts them), are all reaped;
//! - a container whose init ignores SIGTERM, a paused (frozen) container, SIGTERM to the
//!   shim daemon and the shim's own Shutdown(now) all finish within their grace periods
//!   plus a small bound, and leave nothing behind.
//!
//! The escalation cases (`ignore_sigterm_*`, `paused_*`, `shim_sigterm_*`,
//! `shutdown_now_*`) also run against containerd-shim-runc-v2 (`::reference`), which is
//! only recorded (docs/bounds.md), never asserted.

use super::*;

use std::path::Path;
use std::time::Instant;

/// Grace periods given to our shim in these cases.
const STOP_GRACE: Duration = Duration::from_secs(2);
const KILL_GRACE: Duration = Duration::from_secs(1);

/// One `#[test]`, for our shim only, run in the case's namespace: `<name>::robust`.
macro_rules! robust_ns_test {
    ($name:ident, limit = $secs:expr, |$shim:ident| $body:block) => {
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($shim: Shim) {
                use_ns_of($shim);
                $body
            }
            #[test]
            fn robust() {
                run_case(module_path!(), Shim::Robust, $secs, body)
            }
        }
    };
}

/// The escalation config of our shim (stop_grace 2 s, kill_grace 1 s).
fn escalation_toml(dir: &TempDir) -> std::path::PathBuf {
    dir.toml(None, &[("stop_grace", "2s"), ("kill_grace", "1s")])
}

/// `ctr run -d` with our shim's config (ignored for the reference) and extra flags;
/// returns the init pid once RUNNING.
fn run_d(shim: Shim, id: &str, cfg: Option<&Path>, flags: &[String], args: &[&str]) -> i32 {
    let mut a: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--runtime".into(),
        shim.runtime().into(),
    ];
    if let (Shim::Robust, Some(c)) = (shim, cfg) {
        a.push("--runtime-config-path".into());
        a.push(c.display().to_string());
    }
    a.extend(flags.iter().cloned());
    a.push(env().image.clone());
    a.push(id.into());
    a.extend(args.iter().map(|s| s.to_string()));
    ctr(ns(), &a).run().ok();
    wait_task_status(ns(), id, "RUNNING", 15 * SEC) as i32
}

fn group_flag(leader: &str) -> String {
    format!("--annotation=io.kubernetes.cri.sandbox-id={leader}")
}

fn host_pid_flag() -> String {
    format!("--with-ns=pid:/proc/{}/ns/pid", std::process::id())
}

/// The fds of a process, as `fd -> target`.
fn fd_list(pid: i32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    format!(
                        "{} -> {}",
                        e.file_name().to_string_lossy(),
                        std::fs::read_link(e.path())
                            .map(|l| l.display().to_string())
                            .unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Polls until the shim's fd count is back to at most `before + 2`; panics with both
/// listings otherwise.
fn assert_fds_flat(shim: i32, before: usize, before_list: &[String], what: &str) -> usize {
    let mut now = 0;
    let flat = poll_quiet(5 * SEC, || {
        now = fd_count(shim);
        now <= before + 2
    });
    if !flat {
        let after = fd_list(shim);
        let new: Vec<&String> = after.iter().filter(|l| !before_list.contains(l)).collect();
        panic!("the shim's fds grew from {before} to {now} after {what}; new: {new:#?}");
    }
    now
}

/// Polls until the shim's only non-zombie descendants are `expected` plus whatever
/// `allowed` accepts, and no zombie is below it.
fn assert_only_descendants(
    shim: i32,
    expected: &[i32],
    allowed: impl Fn(&str) -> bool,
    what: &str,
) {
    let mut last = (Vec::new(), Vec::new());
    let ok = poll_quiet(6 * SEC, || {
        let d = descendants(shim);
        let stray: Vec<String> = d
            .iter()
            .filter(|(p, st, c)| *st != 'Z' && !expected.contains(p) && !allowed(c))
            .map(|(p, _, c)| format!("{p}: {c}"))
            .collect();
        let missing: Vec<String> = expected
            .iter()
            .filter(|p| !d.iter().any(|(q, st, _)| q == *p && *st != 'Z'))
            .map(|p| format!("{p} missing"))
            .collect();
        let z = zombies_under(shim);
        last = ([stray, missing].concat(), z);
        last.0.is_empty() && last.1.is_empty()
    });
    assert!(
        ok,
        "after {what}: below the shim {shim}: stray/missing {:?}, zombies {:?}",
        last.0, last.1
    );
}

// 1. 50 execs of a missing binary (and 5 with a missing cwd) in a running container: each
//    fails with the runtime's message naming it; afterwards no zombie, no stray process,
//    the shim's fd count flat.
robust_ns_test!(exec_missing_binary_50, limit = 180, |shim| {
    let id = unique_id("exec-missing", shim);
    let dir = TempDir::new(&id);
    let cfg = escalation_toml(&dir);
    let _g = ContainerGuard::new(ns(), &id);
    let init = run_d(shim, &id, Some(&cfg), &[], &["sleep", "1000"]);
    let spid = shim_pid(&id);
    // warm up: one exec that works, one that fails
    ctr(ns(), &["task", "exec", "--exec-id", "warm", &id, "true"])
        .run()
        .ok();
    ctr(
        ns(),
        &[
            "task",
            "exec",
            "--exec-id",
            "warm2",
            &id,
            "robust-missing-warmup",
        ],
    )
    .run()
    .failed();
    let fds0 = fd_count(spid);
    let list0 = fd_list(spid);
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let name = format!("robust-missing-{i}");
        let out = ctr(
            ns(),
            &["task", "exec", "--exec-id", &format!("m{i}"), &id, &name],
        )
        .timeout(15 * SEC)
        .run()
        .failed();
        slowest = slowest.max(out.elapsed);
        assert!(!out.timed_out, "exec {i} timed out: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("\"{name}\""))
                && out.stderr.contains("executable file not found"),
            "exec of missing {name}: the error should be the runtime's, naming it: {}",
            out.stderr.trim()
        );
    }
    for i in 0..5 {
        let cwd = format!("/robust-no-such-dir-{i}");
        let out = ctr(
            ns(),
            &[
                "task",
                "exec",
                "--cwd",
                &cwd,
                "--exec-id",
                &format!("c{i}"),
                &id,
                "true",
            ],
        )
        .timeout(15 * SEC)
        .run()
        .failed();
        slowest = slowest.max(out.elapsed);
        assert!(
            out.stderr.contains(&cwd) && out.stderr.contains("no such file or directory"),
            "exec with missing cwd {cwd}: {}",
            out.stderr.trim()
        );
    }
    let took = t.elapsed();
    let fds1 = assert_fds_flat(spid, fds0, &list0, "55 failed execs");
    assert_only_descendants(spid, &[init], |_| false, "55 failed execs");
    assert_eq!(
        cgroup_procs(&id),
        Some(vec![init]),
        "processes in the container's cgroup"
    );
    let ps = ctr(ns(), &["task", "ps", &id]).run().ok();
    let listed: Vec<i32> = ps
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(listed, vec![init], "ctr task ps after the failed execs");
    record(
        "exec-missing-binary-x50",
        shim,
        &format!(
            "55 failed execs in {} (slowest {}); shim fds {fds0} -> {fds1}; zombies 0; stray 0",
            secs(took),
            secs(slowest)
        ),
    );
});

// 2. Creates with a missing executable, in the shim of a running peer: each fails with the
//    runtime's message; no zombie, no mount, no runc state, no cgroup, fds flat.
robust_ns_test!(create_missing_binary, limit = 180, |shim| {
    let peer = unique_id("create-missing-peer", shim);
    let dir = TempDir::new(&peer);
    let cfg = escalation_toml(&dir);
    let mut g = ContainerGuard::new(ns(), &peer);
    let init = run_d(shim, &peer, Some(&cfg), &[], &["sleep", "1000"]);
    let spid = shim_pid(&peer);
    let mut ids = Vec::new();
    let mut fds0 = 0;
    let mut list0 = Vec::new();
    let t = Instant::now();
    for i in 0..11 {
        let id = unique_id("create-missing", shim);
        g.add(&id);
        let bin = format!("/robust-missing-init-{i}");
        let out = ctr(
            ns(),
            &[
                "run",
                "-d",
                "--runtime",
                shim.runtime(),
                "--runtime-config-path",
                &cfg.display().to_string(),
                &group_flag(&peer),
                &env().image,
                &id,
                &bin,
            ],
        )
        .timeout(20 * SEC)
        .run()
        .failed();
        assert!(
            out.stderr.contains(&bin) && out.stderr.contains("no such file or directory"),
            "create with missing {bin}: the error should be the runtime's, naming it: {}",
            out.stderr.trim()
        );
        assert!(
            task_status(ns(), &id).is_none(),
            "a task {id} is listed after its create failed"
        );
        ctr(ns(), &["container", "delete", &id]).run().ok();
        if i == 0 {
            // the first one was the warm-up
            fds0 = fd_count(spid);
            list0 = fd_list(spid);
        }
        ids.push(id);
    }
    let took = t.elapsed();
    let owned: Vec<(&str, Vec<i32>)> = ids.iter().map(|i| (i.as_str(), vec![])).collect();
    let left = wait_nothing_left(&owned, 5 * SEC);
    assert!(left.is_empty(), "left behind by failed creates: {left:?}");
    let fds1 = assert_fds_flat(spid, fds0, &list0, "10 failed creates");
    assert_only_descendants(spid, &[init], |_| false, "11 failed creates");
    record(
        "create-missing-binary-x11",
        shim,
        &format!(
            "11 failed creates in {}; shim fds {fds0} -> {fds1}; zombies 0; stray 0; nothing left",
            secs(took)
        ),
    );
});

/// `sleep 1` / `sleep 2` of the orphan workloads.
fn is_workload_sleep(c: &str) -> bool {
    c == "sleep 1" || c == "sleep 2"
}

/// Polls until a process with cmdline `cmd` has `ppid` as its parent.
fn adopted_by(ppid: i32, cmd: &str, limit: Duration) -> bool {
    poll_quiet(limit, || {
        descendants(ppid)
            .iter()
            .any(|(p, st, c)| *st != 'Z' && c == cmd && proc_stat(*p).map(|s| s.1) == Some(ppid))
    })
}

const REAPING_INIT: &str = "trap 'exit 0' TERM; while :; do sleep 5 & wait; done";

// 3. An exec that orphans its children (`sleep 1 & sleep 1 & (sleep 2 &); exit 0`): in the
//    host's pid namespace the shim adopts them (child subreaper) and must reap them; in
//    the container's pid namespace the container's init adopts them. No zombie afterwards.
robust_ns_test!(orphans_in_exec, limit = 120, |shim| {
    let h = unique_id("orphans-hostpid", shim);
    let n = unique_id("orphans-pidns", shim);
    let dir = TempDir::new(&h);
    let cfg = escalation_toml(&dir);
    let mut g = ContainerGuard::new(ns(), &h);
    g.add(&n);
    let init_h = run_d(shim, &h, Some(&cfg), &[host_pid_flag()], &["sleep", "1000"]);
    let init_n = run_d(
        shim,
        &n,
        Some(&cfg),
        &[group_flag(&h)],
        &["sh", "-c", REAPING_INIT],
    );
    let spid = shim_pid(&h);
    assert_eq!(spid, shim_pid(&n), "both containers in one shim");
    let api = Api::connect();
    let workload = "sleep 1 & sleep 1 & (sleep 2 &) ; exit 0";
    for (id, adopter, what) in [(&h, spid, "the shim"), (&n, init_n, "the container's init")] {
        let t = Instant::now();
        ctr(
            ns(),
            &[
                "task",
                "exec",
                "-d",
                "--exec-id",
                "orph",
                id,
                "sh",
                "-c",
                workload,
            ],
        )
        .run()
        .ok();
        assert!(
            adopted_by(adopter, "sleep 2", Duration::from_millis(1500)),
            "{id}: the orphaned `sleep 2` was not adopted by {what} ({adopter})"
        );
        let st = op_ok(&api, Op::Wait(id.to_string(), "orph".into()), 10 * SEC);
        assert_eq!(st, OpOk::Exit(0), "{id}: exit of the orphaning sh");
        assert_only_descendants(
            spid,
            &[init_h, init_n],
            |c| c == "sleep 5" || c.starts_with("sh -c trap"),
            &format!("the orphans of an exec in {id} exited"),
        );
        assert!(
            !descendants(spid)
                .iter()
                .any(|(_, _, c)| is_workload_sleep(c)),
            "workload sleeps left"
        );
        op_ok(
            &api,
            Op::DeleteProcess(id.to_string(), "orph".into()),
            10 * SEC,
        );
        record(
            "orphans-in-exec",
            shim,
            &format!(
                "{}: orphans adopted by {what}, all reaped {} after the exec started",
                if id == &h {
                    "host pid ns"
                } else {
                    "container pid ns"
                },
                secs(t.elapsed())
            ),
        );
    }
});

// 4. An init that double-forks daemons: in the host pid namespace the shim adopts and
//    reaps them; in the container's, its init does. A host-pid init that double-forked a
//    daemon is killed: the daemon dies before the task is STOPPED, the shim reaps it.
robust_ns_test!(double_fork_init, limit = 120, |shim| {
    let h = unique_id("dfork-hostpid", shim);
    let n = unique_id("dfork-pidns", shim);
    let d = unique_id("dfork-exits", shim);
    let dir = TempDir::new(&h);
    let cfg = escalation_toml(&dir);
    let mut g = ContainerGuard::new(ns(), &h);
    g.add(&n);
    g.add(&d);
    let t = Instant::now();
    let init_h = run_d(
        shim,
        &h,
        Some(&cfg),
        &[host_pid_flag()],
        &["sh", "-c", "(sleep 2 &); (sleep 2 &); exec sleep 1000"],
    );
    let spid = shim_pid(&h);
    assert!(
        adopted_by(spid, "sleep 2", Duration::from_millis(1500)),
        "the double-forked `sleep 2` of a host-pid init was not adopted by the shim"
    );
    let init_n = run_d(
        shim,
        &n,
        Some(&cfg),
        &[group_flag(&h)],
        &[
            "sh",
            "-c",
            &format!("(sleep 2 &); (sleep 2 &); {REAPING_INIT}"),
        ],
    );
    assert!(
        adopted_by(init_n, "sleep 2", Duration::from_millis(1500)),
        "the double-forked `sleep 2` of a pid-ns init was not adopted by that init"
    );
    assert_only_descendants(
        spid,
        &[init_h, init_n],
        |c| c == "sleep 5",
        "the double-forked daemons exited",
    );
    record(
        "double-fork-init",
        shim,
        &format!(
            "daemons of a host-pid init adopted by the shim and of a pid-ns init by that init; all reaped {} after start",
            secs(t.elapsed())
        ),
    );

    // an init that leaves a daemon behind and is killed: in the host pid namespace
    // nothing in the kernel ends the daemon, so the shim kills the rest of the init's
    // (proven) cgroup before it publishes the exit, as containerd's runc shim does with
    // `runc kill --all` (issue 12, section 3), and reaps it
    let a: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--runtime".into(),
        shim.runtime().into(),
        "--runtime-config-path".into(),
        cfg.display().to_string(),
        host_pid_flag(),
        group_flag(&h),
        env().image.clone(),
        d.clone(),
        "sh".into(),
        "-c".into(),
        "(sleep 300 &); exec sleep 1000".into(),
    ];
    ctr(ns(), &a).run().ok();
    let daemon = poll_until(
        "the daemon `sleep 300` adopted by the shim",
        5 * SEC,
        || {
            descendants(spid)
                .into_iter()
                .find(|(p, st, c)| {
                    *st != 'Z' && c == "sleep 300" && proc_stat(*p).map(|s| s.1) == Some(spid)
                })
                .map(|(p, _, _)| p)
        },
    );
    ctr(ns(), &["task", "kill", "-s", "SIGKILL", &d]).run().ok();
    wait_task_status(ns(), &d, "STOPPED", 10 * SEC);
    // signalled before the exit is published; gone (and reaped) a moment later
    assert!(
        poll_quiet(SEC, || !pid_alive(daemon)),
        "the daemon of a host-pid init outlived it: STOPPED with `sleep 300` ({daemon}) alive"
    );
    let t = Instant::now();
    ctr(ns(), &["task", "delete", &d]).run().ok();
    let took = t.elapsed();
    ctr(ns(), &["container", "delete", &d]).run().ok();
    let left = wait_nothing_left(&[(&d, vec![daemon])], 5 * SEC);
    assert!(left.is_empty(), "after deleting {d}: {left:?}");
    assert_only_descendants(
        spid,
        &[init_h, init_n],
        |c| c == "sleep 5",
        "the daemon was killed",
    );
    record(
        "double-fork-init",
        shim,
        &format!(
            "host-pid init killed leaving a daemon: the daemon killed before STOPPED, reaped; task delete took {}, nothing left",
            secs(took)
        ),
    );
});

const IGNORES_TERM: &str = "trap '' TERM; while :; do sleep 1; done";
const EXITS_ON_TERM: &str = "trap 'exit 0' TERM; sleep 1000 & wait";

// 5. An init that ignores SIGTERM: a SIGTERM from `ctr task kill` is delivered and nothing
//    more (no escalation of an ordinary stop); `ctr task kill -s KILL` + `task delete`
//    finish within kill_grace + bound; `ctr task delete -f` (containerd's forced delete:
//    SIGKILL, wait, delete) too.
shim_test!(ignore_sigterm_kill_delete, limit = 120, |shim| {
    use_ns_of(shim);
    let case = "ignore-sigterm-kill-delete";
    let a = unique_id("ignterm-kill", shim);
    let b = unique_id("ignterm-force", shim);
    let dir = TempDir::new(&a);
    let cfg = escalation_toml(&dir);
    let mut g = ContainerGuard::new(ns(), &a);
    g.add(&b);
    let init_a = run_d(shim, &a, Some(&cfg), &[], &["sh", "-c", IGNORES_TERM]);
    let init_b = run_d(
        shim,
        &b,
        Some(&cfg),
        &[group_flag(&a)],
        &["sh", "-c", IGNORES_TERM],
    );
    let api = Api::connect();

    ctr(ns(), &["task", "kill", &a]).run().ok(); // SIGTERM
    let window = STOP_GRACE + KILL_GRACE + Duration::from_millis(500);
    let changed = poll_quiet(window, || {
        task_status(ns(), &a).map(|s| s.1).as_deref() != Some("RUNNING")
    });
    let after_term = task_status(ns(), &a).map(|s| s.1);

    let t = Instant::now();
    let kill = ctr(ns(), &["task", "kill", "-s", "KILL", &a])
        .timeout(20 * SEC)
        .run();
    let stopped = poll_quiet(
        match shim {
            Shim::Robust => KILL_GRACE + 5 * SEC,
            Shim::Reference => REF_BOUND,
        },
        || task_status(ns(), &a).map(|s| s.1).as_deref() == Some("STOPPED"),
    );
    let exit = op_within(&api, Op::Get(a.clone(), String::new()), 5 * SEC).0;
    let del = ctr(ns(), &["task", "delete", &a]).timeout(20 * SEC).run();
    let kill_delete = t.elapsed();

    let t = Instant::now();
    let force = ctr(ns(), &["task", "delete", "-f", &b])
        .timeout(20 * SEC)
        .run();
    let force_took = t.elapsed();
    for id in [&a, &b] {
        ctr(ns(), &["container", "delete", id])
            .timeout(20 * SEC)
            .run_unclamped();
    }
    let left = wait_nothing_left(&[(&a, vec![init_a]), (&b, vec![init_b])], 5 * SEC);
    record(
        case,
        shim,
        &format!(
            "SIGTERM ignored: status {after_term:?} {} after it; kill -s KILL + delete: {} (kill {:?}, stopped {stopped}, exit {:?}, delete {:?}); delete -f: {} ({:?} {}); left {left:?}",
            secs(window),
            secs(kill_delete),
            kill.code,
            exit.as_ref().map(|r| r.as_ref().map_err(|s| s.message().to_string())),
            del.code,
            secs(force_took),
            force.code,
            force.stderr.trim()
        ),
    );
    if shim == Shim::Robust {
        assert!(
            !changed && after_term.as_deref() == Some("RUNNING"),
            "an ordinary SIGTERM must not be escalated: status {after_term:?} after {window:?}"
        );
        assert!(kill.succeeded(), "ctr task kill -s KILL: {}", kill.stderr);
        assert!(stopped, "not STOPPED after SIGKILL");
        assert!(
            matches!(exit, Some(Ok(OpOk::Proc(_, 3, 137)))),
            "exit after SIGKILL: {exit:?}"
        );
        assert!(del.succeeded(), "ctr task delete: {}", del.stderr);
        assert!(
            kill_delete <= KILL_GRACE + MARGIN,
            "kill -s KILL + delete took {} > kill_grace {KILL_GRACE:?} + {MARGIN:?}",
            secs(kill_delete)
        );
        assert!(force.succeeded(), "ctr task delete -f: {}", force.stderr);
        assert!(
            force_took <= KILL_GRACE + MARGIN,
            "delete -f took {} > kill_grace {KILL_GRACE:?} + {MARGIN:?}",
            secs(force_took)
        );
        assert!(left.is_empty(), "left behind: {left:?}");
    }
});

// 6. A paused (frozen) container: SIGKILL cannot take effect while frozen; the shim thaws
//    and kills the cgroup after kill_grace, so `kill -s KILL` + delete, and `delete -f`,
//    finish within 2 x kill_grace + bound.
shim_test!(paused_kill_delete, limit = 120, |shim| {
    use_ns_of(shim);
    let case = "paused-kill-delete";
    let a = unique_id("paused-kill", shim);
    let b = unique_id("paused-force", shim);
    let dir = TempDir::new(&a);
    let cfg = escalation_toml(&dir);
    let mut g = ContainerGuard::new(ns(), &a);
    g.add(&b);
    let init_a = run_d(shim, &a, Some(&cfg), &[], &["sleep", "1000"]);
    let init_b = run_d(shim, &b, Some(&cfg), &[group_flag(&a)], &["sleep", "1000"]);
    let api = Api::connect();
    for id in [&a, &b] {
        ctr(ns(), &["task", "pause", id]).run().ok();
        wait_task_status(ns(), id, "PAUSED", 10 * SEC);
    }
    let bound = 2 * KILL_GRACE + MARGIN;

    let t = Instant::now();
    let kill = ctr(ns(), &["task", "kill", "-s", "KILL", &a])
        .timeout(20 * SEC)
        .run();
    let stopped = poll_quiet(
        match shim {
            Shim::Robust => bound + 5 * SEC,
            Shim::Reference => REF_BOUND,
        },
        || task_status(ns(), &a).map(|s| s.1).as_deref() == Some("STOPPED"),
    );
    let stop_took = t.elapsed();
    let status_after = task_status(ns(), &a).map(|s| s.1);
    let mut note = String::new();
    if !stopped {
        // the reference: thaw it ourselves so the pending SIGKILL lands
        let r = ctr(ns(), &["task", "resume", &a])
            .timeout(10 * SEC)
            .run_unclamped();
        let s = poll_quiet(10 * SEC, || {
            task_status(ns(), &a).map(|s| s.1).as_deref() == Some("STOPPED")
        });
        note = format!(
            " (still {status_after:?} after {}; `ctr task resume` by the test: {:?}, then STOPPED: {s})",
            secs(stop_took),
            r.code
        );
    }
    let exit = op_within(&api, Op::Get(a.clone(), String::new()), 5 * SEC).0;
    let del = ctr(ns(), &["task", "delete", &a]).timeout(20 * SEC).run();
    let kill_delete = t.elapsed();

    let t = Instant::now();
    let force = ctr(ns(), &["task", "delete", "-f", &b])
        .timeout(20 * SEC)
        .run();
    let force_took = t.elapsed();
    for id in [&a, &b] {
        ctr(ns(), &["container", "delete", id])
            .timeout(20 * SEC)
            .run_unclamped();
    }
    let left = wait_nothing_left(&[(&a, vec![init_a]), (&b, vec![init_b])], 5 * SEC);
    record(
        case,
        shim,
        &format!(
            "paused, kill -s KILL: STOPPED {stopped} after {}{note}; + delete: {} (exit {:?}, delete {:?}); paused, delete -f: {} ({:?} {}); left {left:?}",
            secs(stop_took),
            secs(kill_delete),
            exit.as_ref().map(|r| r.as_ref().map_err(|s| s.message().to_string())),
            del.code,
            secs(force_took),
            force.code,
            force.stderr.trim()
        ),
    );
    if shim == Shim::Robust {
        assert!(kill.succeeded(), "ctr task kill -s KILL: {}", kill.stderr);
        assert!(
            stopped,
            "a SIGKILLed paused task did not stop: {status_after:?}"
        );
        assert!(
            matches!(exit, Some(Ok(OpOk::Proc(_, 3, 137)))),
            "exit after SIGKILL: {exit:?}"
        );
        assert!(del.succeeded(), "ctr task delete: {}", del.stderr);
        assert!(
            kill_delete <= bound,
            "paused: kill -s KILL + delete took {} > 2 x kill_grace + {MARGIN:?}",
            secs(kill_delete)
        );
        assert!(force.succeeded(), "ctr task delete -f: {}", force.stderr);
        assert!(
            force_took <= bound,
            "paused: delete -f took {} > 2 x kill_grace + {MARGIN:?}",
            secs(force_took)
        );
        assert!(left.is_empty(), "left behind: {left:?}");
    }
});

/// The stop-everything paths of the shim daemon: SIGTERM to it, or its Shutdown(now).
/// A (ignores SIGTERM) and B (exits 0 on SIGTERM) share one shim.
fn stop_the_shim(shim: Shim, by_signal: bool) {
    use_ns_of(shim);
    let case = if by_signal {
        "shim-sigterm"
    } else {
        "shim-shutdown-now"
    };
    let a = unique_id(&format!("{case}-a"), shim);
    let b = unique_id(&format!("{case}-b"), shim);
    let dir = TempDir::new(&a);
    let cfg = escalation_toml(&dir);
    let mut g = ContainerGuard::new(ns(), &a);
    g.add(&b);
    let init_a = run_d(shim, &a, Some(&cfg), &[], &["sh", "-c", IGNORES_TERM]);
    let init_b = run_d(
        shim,
        &b,
        Some(&cfg),
        &[group_flag(&a)],
        &["sh", "-c", EXITS_ON_TERM],
    );
    let spid = shim_pid(&a);
    assert_eq!(spid, shim_pid(&b), "A and B in one shim");
    let address = shim_address(ns(), &a).expect("address");
    let socket = address.trim_start_matches("unix://").to_string();
    let api = Api::connect();
    let mut wa = spawn_op(&api, Op::Wait(a.clone(), String::new()));
    let mut wb = spawn_op(&api, Op::Wait(b.clone(), String::new()));
    // both Waits reached the shim before we stop it
    let _ = op_within(&api, Op::Get(a.clone(), String::new()), 5 * SEC);

    let t = Instant::now();
    let mut answer = None;
    let how = if by_signal {
        // SAFETY: kill(2) of the shim daemon serving our two containers.
        let r = unsafe { libc::kill(spid, libc::SIGTERM) };
        assert_eq!(r, 0, "kill -TERM {spid}");
        "SIGTERM".to_string()
    } else {
        let r = ttrpc_shutdown(&address, &a, true, STOP_GRACE + 10 * SEC);
        let h = format!("Shutdown(now) answered {r:?} after {}", secs(t.elapsed()));
        answer = Some(r);
        h
    };
    let limit = match shim {
        Shim::Robust => STOP_GRACE + 8 * SEC,
        Shim::Reference => REF_BOUND,
    };
    let exited = poll_quiet(limit, || !pid_alive(spid));
    let exit_took = t.elapsed();
    let wait_limit = if exited { 10 * SEC } else { 2 * SEC };
    let ra = wa.join(&api, wait_limit);
    let rb = wb.join(&api, wait_limit);
    let desc = |r: &Option<(OpResult, Duration)>| match r {
        Some((Ok(v), t)) => format!("{v:?} after {}", secs(*t)),
        Some((Err(s), t)) => format!("{:?} {} after {}", s.code(), s.message(), secs(*t)),
        None => "no answer".to_string(),
    };
    // what containerd shows once it has cleaned up
    let mut seen = (None, None);
    let settled = poll_quiet(15 * SEC, || {
        let sa = task_ls_status(&a).ok().flatten();
        let sb = task_ls_status(&b).ok().flatten();
        let done = |s: &Option<String>| s.is_none() || s.as_deref() == Some("STOPPED");
        let ok = done(&sa) && done(&sb);
        seen = (sa, sb);
        ok
    });
    let socket_left = Path::new(&socket).exists();
    let alive_inits: Vec<i32> = [init_a, init_b]
        .into_iter()
        .filter(|p| pid_alive(*p))
        .collect();
    // then delete what containerd still lists
    for id in [&a, &b] {
        ctr(ns(), &["task", "delete", "-f", id])
            .timeout(20 * SEC)
            .run_unclamped();
        ctr(ns(), &["container", "delete", id])
            .timeout(20 * SEC)
            .run_unclamped();
    }
    let left = wait_nothing_left(&[(&a, vec![init_a]), (&b, vec![init_b])], 5 * SEC);
    record(
        case,
        shim,
        &format!(
            "{how}: shim exited {exited} after {}; inits alive then: {alive_inits:?}; Wait(A ignores TERM) {}; Wait(B exits on TERM) {}; ctr task ls A={:?} B={:?} (settled {settled}); socket left {socket_left}; after delete left {left:?}",
            secs(exit_took),
            desc(&ra),
            desc(&rb),
            seen.0,
            seen.1
        ),
    );
    if shim == Shim::Robust {
        // containerd treats a connection closed by the exiting shim (ttrpc.ErrClosed) as
        // a successful Shutdown; any other answer is an error
        match &answer {
            None | Some(Ok((0, _))) => {}
            Some(Err(e)) if e.starts_with("no answer (read header") && exited => {}
            Some(other) => panic!("Shutdown(now) answered {other:?}"),
        }
        assert!(exited, "the shim did not exit within {limit:?} ({how})");
        assert!(
            exit_took <= STOP_GRACE + MARGIN,
            "the shim took {} to stop (stop_grace {STOP_GRACE:?} + {MARGIN:?})",
            secs(exit_took)
        );
        assert!(
            matches!(ra, Some((Ok(OpOk::Exit(137)), _))),
            "Wait of the SIGTERM-ignoring init: {}",
            desc(&ra)
        );
        assert!(
            matches!(rb, Some((Ok(OpOk::Exit(0)), _))),
            "Wait of the init that exits on SIGTERM: {}",
            desc(&rb)
        );
        assert!(
            settled,
            "containerd still lists A={:?} B={:?}",
            seen.0, seen.1
        );
        assert!(!socket_left, "the shim left its socket {socket}");
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

// 7. SIGTERM to the shim daemon with running containers: bounded orderly exit.
shim_test!(shim_sigterm_running, limit = 120, |shim| {
    stop_the_shim(shim, true);
});

// 8. The shim's Shutdown with now=true (sent straight to its socket: containerd 1.6 never
//    sets now) with running containers: everything stopped within stop_grace + bound.
shim_test!(shutdown_now_running, limit = 120, |shim| {
    stop_the_shim(shim, false);
});

// 9. A SIGKILL that does not take effect: the runtime answers `kill` with success and does
//    nothing (integration/fault-runtime.sh noop mode). `ctr task kill -s KILL` + delete of
//    a running container, and `ctr task delete -f` of a paused one, must still finish: the
//    shim notices the init did not exit within kill_grace, thaws the cgroup and SIGKILLs
//    every pid in it, within 2 x kill_grace + bound.
shim_test!(sigkill_without_effect, limit = 120, |shim| {
    use_ns_of(shim);
    let case = "sigkill-without-effect";
    let api = Api::connect();
    let a = unique_id("nokill-running", shim);
    let b = unique_id("nokill-paused", shim);
    let mut g = Cleanup::new(Some(Fault::new(&a)));
    let toml = g.fault().dir.toml(
        Some(&g.fault().wrapper),
        &[("stop_grace", "2s"), ("kill_grace", "1s")],
    );
    let options = match shim {
        Shim::Robust => robust_options(&toml),
        Shim::Reference => reference_options(&g.fault().wrapper),
    };
    let mut pids = Vec::new();
    for (id, group) in [(&a, None), (&b, Some(a.as_str()))] {
        g.add(id);
        let m = create_container(
            &api,
            shim,
            &Ct {
                id,
                args: &["sleep", "1000"],
                options: Some(options.clone()),
                group,
                host_pid: false,
            },
        );
        match op_ok(&api, Op::Create(id.clone(), m), 20 * SEC) {
            OpOk::Pid(p) => pids.push(p as i32),
            o => panic!("Create({id}) gave {o:?}"),
        }
        op_ok(&api, Op::Start(id.clone(), String::new()), 20 * SEC);
    }
    op_ok(&api, Op::Pause(b.clone()), 10 * SEC);
    g.fault().noop("kill");
    let bound = 2 * KILL_GRACE + MARGIN;
    let limit = match shim {
        Shim::Robust => bound + 5 * SEC,
        Shim::Reference => REF_BOUND,
    };

    // A, running: kill -s KILL, wait for STOPPED, delete
    let t = Instant::now();
    let kill = ctr(ns(), &["task", "kill", "-s", "KILL", &a])
        .timeout(10 * SEC)
        .run();
    let stopped = poll_quiet(limit, || {
        task_status(ns(), &a).map(|s| s.1).as_deref() == Some("STOPPED")
    });
    let stop_took = t.elapsed();
    let exit = op_within(&api, Op::Get(a.clone(), String::new()), 5 * SEC).0;
    let del = if stopped {
        Some(ctr(ns(), &["task", "delete", &a]).timeout(10 * SEC).run())
    } else {
        None
    };
    let kill_delete = t.elapsed();
    let noops_a = g.fault().noops();
    // B, paused: delete -f
    let force = ctr(ns(), &["task", "delete", "-f", &b])
        .timeout(limit)
        .run();
    let dead_b = poll_quiet(2 * SEC, || !pid_alive(pids[1]));
    let noops = g.fault().noops();
    record(
        case,
        shim,
        &format!(
            "runtime kill is a no-op ({noops} calls): running, kill -s KILL: STOPPED {stopped} after {} (exit {:?}), + delete {}{}; paused, delete -f: {:?} after {}{} {}; init dead {dead_b}",
            secs(stop_took),
            exit.as_ref().map(|r| r.as_ref().map_err(|s| s.message().to_string())),
            secs(kill_delete),
            match &del {
                Some(d) => format!(" ({:?})", d.code),
                None => " (not attempted)".into(),
            },
            force.code,
            secs(force.elapsed),
            if force.timed_out { " (TIMED OUT)" } else { "" },
            force.stderr.trim().replace('\n', " ")
        ),
    );
    g.fault().release();
    if shim == Shim::Robust {
        assert!(noops_a >= 1, "the runtime's kill was never called");
        assert!(kill.succeeded(), "ctr task kill -s KILL: {}", kill.stderr);
        assert!(
            stopped,
            "SIGKILL without effect: not STOPPED within {limit:?}"
        );
        assert!(
            matches!(exit, Some(Ok(OpOk::Proc(_, 3, 137)))),
            "exit after the escalation: {exit:?}"
        );
        let del = del.unwrap();
        assert!(del.succeeded(), "ctr task delete: {}", del.stderr);
        assert!(
            kill_delete <= bound,
            "kill -s KILL + delete took {} > 2 x kill_grace + {MARGIN:?}",
            secs(kill_delete)
        );
        assert!(
            force.succeeded(),
            "paused: ctr task delete -f: {}",
            force.stderr
        );
        assert!(
            force.elapsed <= bound,
            "paused: delete -f took {} > 2 x kill_grace + {MARGIN:?}",
            secs(force.elapsed)
        );
        assert!(dead_b, "paused init still alive");
        for id in [&a, &b] {
            let out = ctr(ns(), &["container", "delete", id]).run();
            assert!(out.succeeded(), "ctr container delete {id}: {}", out.stderr);
        }
        let left = wait_nothing_left(&[(&a, vec![pids[0]]), (&b, vec![pids[1]])], 5 * SEC);
        assert!(left.is_empty(), "left behind: {left:?}");
        g.ids.clear();
    }
});
