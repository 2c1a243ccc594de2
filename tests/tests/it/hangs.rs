//! Issue 3 (F2): a runtime that hangs on one verb.
//!
//! Every case runs the REAL runc through the fault-injecting wrapper of
//! `integration/fault-runtime.sh`, generated into a directory of its own, which hangs (deaf
//! to SIGTERM, with a child in its process group) on the one verb named in its control
//! file. Two containers share one shim: a peer B with the plain runtime and the victim A
//! (grouped with B by the `io.kubernetes.cri.sandbox-id` annotation) whose runtime is the
//! wrapper. With the victim's runtime hanging on VERB, the containerd operation that makes
//! the shim call VERB must:
//! - come back within the verb's deadline (3 s here) + [`MARGIN`], as DeadlineExceeded,
//!   with a message naming the verb, the container and the deadline;
//! - not stop the shim from answering other calls while it is in flight (State of A,
//!   Pids of B, `ctr task ls`);
//! - leave no process of the wrapper (the shim killed its process group);
//! - leave the container usable (the operation works once the runtime answers again) and
//!   deletable without leaving anything behind: no mount, no runc state, no process.
//!
//! The `::reference` twins run the same scenario against containerd-shim-runc-v2 (runc
//! Options BinaryName = the wrapper) and only record what it does (docs/bounds.md); they
//! assert nothing about it. Every outcome of both is appended to
//! `<run dir>/bounds-results.txt` (one line each) for that document.
//!
//! Its helpers (the fault runtime, task operations, host checks) are the library's
//! (`tests/src/`), shared with the other modules and the soak.

use super::*;

use std::time::Instant;

use tonic::Code;

/// The deadline given to the hung verb in the victim's TOML.
pub const HUNG_DEADLINE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// The hang cases
// ---------------------------------------------------------------------------------------

/// The containerd operation that makes a shim call runtime `verb` on the victim.
fn hang_case(shim: Shim, verb: &'static str) {
    use_ns_of(shim);
    let case = format!("hang-{verb}");
    let api = Api::connect();
    let a = unique_id(&case, shim);
    let b = unique_id(&format!("{case}-peer"), shim);
    let mut g = Cleanup::new(Some(Fault::new(&a)));
    let deadline = HUNG_DEADLINE;
    let toml = g.fault().dir.toml(
        Some(&g.fault().wrapper),
        &[
            (verb, &format!("{}s", deadline.as_secs())),
            ("stop_grace", "2s"),
            ("kill_grace", "1s"),
        ],
    );
    let options = match shim {
        Shim::Robust => robust_options(&toml),
        Shim::Reference => reference_options(&g.fault().wrapper),
    };

    // the peer B: the group's first container, plain runtime
    g.add(&b);
    let mb = create_container(
        &api,
        shim,
        &Ct {
            id: &b,
            args: &["sleep", "1000"],
            options: None,
            group: None,
            host_pid: false,
        },
    );
    let pid_b = match op_ok(&api, Op::Create(b.clone(), mb), 20 * SEC) {
        OpOk::Pid(p) => p,
        o => panic!("Create({b}) gave {o:?}"),
    };
    op_ok(&api, Op::Start(b.clone(), String::new()), 20 * SEC);

    // the victim A, in B's shim, through the wrapper
    g.add(&a);
    let victim_args: &[&str] = if verb == "delete" {
        &["sh", "-c", "exit 3"]
    } else {
        &["sleep", "1000"]
    };
    let ma = create_container(
        &api,
        shim,
        &Ct {
            id: &a,
            args: victim_args,
            options: Some(options),
            group: Some(&b),
            host_pid: false,
        },
    );
    let mut pid_a = 0u32;
    let mut expect_a = ""; // A's status while the call hangs ("" = no task yet)
    if verb != "create" {
        pid_a = match op_ok(&api, Op::Create(a.clone(), ma.clone()), 20 * SEC) {
            OpOk::Pid(p) => p,
            o => panic!("Create({a}) gave {o:?}"),
        };
        expect_a = "CREATED";
        if verb != "start" {
            op_ok(&api, Op::Start(a.clone(), String::new()), 20 * SEC);
            expect_a = "RUNNING";
        }
    }
    if verb != "create" {
        assert_eq!(
            shim_address(ns(), &a),
            shim_address(ns(), &b),
            "A and B must share one shim (sandbox-id annotation)"
        );
    }
    let op = match verb {
        "create" => Op::Create(a.clone(), ma.clone()),
        "start" => Op::Start(a.clone(), String::new()),
        "kill" => Op::Kill(a.clone(), String::new(), 15, false),
        "delete" => {
            let st = op_ok(&api, Op::Wait(a.clone(), String::new()), 15 * SEC);
            assert_eq!(st, OpOk::Exit(3), "exit of `sh -c 'exit 3'`");
            expect_a = "STOPPED";
            Op::Delete(a.clone())
        }
        "exec" => {
            op_ok(
                &api,
                Op::Exec(a.clone(), "e1".into(), vec!["echo".into(), "hi".into()]),
                10 * SEC,
            );
            Op::Start(a.clone(), "e1".into())
        }
        "pause" => Op::Pause(a.clone()),
        "resume" => {
            op_ok(&api, Op::Pause(a.clone()), 10 * SEC);
            expect_a = "PAUSED";
            Op::Resume(a.clone())
        }
        "update" => Op::Update(a.clone(), serde_json::json!({ "cpu": { "shares": 512 } })),
        "ps" => Op::Pids(a.clone()),
        v => panic!("no scenario for verb {v}"),
    };

    // hang, and call
    g.fault().hang(verb);
    let mut flight = spawn_op(&api, op.clone());
    let name = flight.name.clone();
    let hung_pid = g.fault().wait_hung(verb, 10 * SEC);
    let t_hung = flight.started.elapsed();

    // meanwhile: the shim must answer other calls
    let mut side: Vec<(String, bool, String)> = Vec::new(); // (call, answered ok, detail)
    if verb == "create" {
        // the bundle exists while Create runs: A must be in B's shim
        let (sa, sb) = (shim_address(ns(), &a), shim_address(ns(), &b));
        side.push((
            format!("{a} served by the shim of {b}"),
            sa.is_some() && sa == sb,
            format!("{sa:?} vs {sb:?}"),
        ));
    }
    if !expect_a.is_empty() {
        let (r, t) = op_within(&api, Op::Get(a.clone(), String::new()), 2 * SEC);
        let ok = matches!(&r, Some(Ok(OpOk::Proc(_, s, _))) if status_name(*s) == expect_a);
        side.push((format!("Get({a}) = {expect_a}"), ok, describe(&r, t)));
    }
    if verb == "exec" {
        let (r, t) = op_within(&api, Op::Get(a.clone(), "e1".into()), 2 * SEC);
        let ok = matches!(&r, Some(Ok(_)));
        side.push((format!("Get({a}, e1)"), ok, describe(&r, t)));
    }
    {
        let (r, t) = op_within(&api, Op::Pids(b.clone()), 2 * SEC);
        let ok = matches!(&r, Some(Ok(OpOk::Pids(p))) if p.contains(&pid_b));
        side.push((format!("Pids({b}) has {pid_b}"), ok, describe(&r, t)));
    }
    {
        let t = Instant::now();
        let out = ctr(ns(), &["task", "ls"]).timeout(4 * SEC).run();
        let line = |id: &str| {
            out.stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(id))
                .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
        };
        let sb = line(&b);
        let sa = line(&a);
        let ok = out.succeeded()
            && sb.as_deref() == Some("RUNNING")
            && (expect_a.is_empty() || sa.as_deref() == Some(expect_a));
        side.push((
            "ctr task ls".into(),
            ok,
            format!("{b}={sb:?} {a}={sa:?} in {}", secs(t.elapsed())),
        ));
    }
    let still_in_flight = !flight.finished();
    let side_text = side
        .iter()
        .map(|(c, ok, d)| {
            format!(
                "{c}: {} ({d})",
                if *ok { "answered" } else { "NOT ANSWERED" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");

    match shim {
        Shim::Robust => {
            let (res, took) = flight
                .join(&api, deadline + 10 * SEC)
                .unwrap_or_else(|| panic!("{name}: no answer within {:?}", deadline + 10 * SEC));
            record(
                &case,
                shim,
                &format!(
                    "{name}: {} (hang seen after {}); meanwhile: {side_text}",
                    describe(&Some(res.clone()), took),
                    secs(t_hung)
                ),
            );
            let st = match res {
                Err(s) => s,
                Ok(v) => panic!("{name} succeeded ({v:?}) although runtime {verb} hung"),
            };
            assert_eq!(
                st.code(),
                Code::DeadlineExceeded,
                "{name}: code of the error: {st}"
            );
            for want in [
                format!("runtime {verb} {a}"),
                format!("{}s", deadline.as_secs()),
            ] {
                assert!(
                    st.message().contains(&want),
                    "{name}: the error should name {want:?}: {}",
                    st.message()
                );
            }
            assert!(
                took + Duration::from_millis(100) >= deadline,
                "{name} came back after {} before the {}s deadline: {st}",
                secs(took),
                deadline.as_secs()
            );
            assert!(
                took <= deadline + MARGIN,
                "{name} took {} with runtime {verb} hung: more than its deadline {:?} + {:?}",
                secs(took),
                deadline,
                MARGIN
            );
            for (c, ok, d) in &side {
                assert!(ok, "while {name} hung, {c} was not answered: {d}");
            }
            assert!(
                still_in_flight,
                "{name} was no longer in flight after the other calls: {side_text}"
            );
            // the runtime's whole process group is gone
            let mut alive = Vec::new();
            let gone = poll_quiet(2 * SEC, || {
                alive = g.fault().alive();
                alive.is_empty()
            });
            assert!(
                gone,
                "processes of the hung runtime left after {name} returned: {alive:?}"
            );
            assert!(!pid_alive(hung_pid));
        }
        Shim::Reference => {
            let first = flight.join(&api, REF_BOUND.saturating_sub(flight.started.elapsed()));
            let outcome = match first {
                Some((r, t)) => describe(&Some(r), t),
                None => {
                    let killed = g.fault().release();
                    let after = flight.join(&api, 15 * SEC);
                    format!(
                        "HUNG > {} (runtime killed by the test: {} processes; then: {})",
                        secs(REF_BOUND),
                        killed.len(),
                        match after {
                            Some((r, t)) => describe(&Some(r), t),
                            None => "still no answer 15s after the runtime was killed".into(),
                        }
                    )
                }
            };
            let left = g.fault().alive();
            record(
                &case,
                shim,
                &format!(
                    "{name}: {outcome}; meanwhile: {side_text}; runtime processes left: {}",
                    left.len()
                ),
            );
        }
    }

    // the runtime answers again: the operation works, then delete leaves nothing
    g.fault().hang("none");
    let mut pids = vec![pid_b as i32];
    let recovery = (|| -> Result<(), String> {
        let lim = 15 * SEC;
        let run = |op: Op| -> Result<OpOk, String> {
            let name = op.name();
            match op_within(&api, op, lim) {
                (Some(Ok(v)), _) => Ok(v),
                (r, t) => Err(format!("{name}: {}", describe(&r, t))),
            }
        };
        match verb {
            "create" => {
                pid_a = match run(Op::Create(a.clone(), ma.clone()))? {
                    OpOk::Pid(p) => p,
                    o => return Err(format!("Create gave {o:?}")),
                };
                run(Op::Start(a.clone(), String::new()))?;
            }
            "start" => {
                run(Op::Start(a.clone(), String::new()))?;
            }
            "kill" => {
                run(Op::Kill(a.clone(), String::new(), 9, false))?;
                let st = run(Op::Wait(a.clone(), String::new()))?;
                if st != OpOk::Exit(137) {
                    return Err(format!("Wait after SIGKILL gave {st:?}"));
                }
            }
            "delete" => {
                let st = run(Op::Delete(a.clone()))?;
                if st != OpOk::Exit(3) {
                    return Err(format!("Delete gave {st:?}, want exit 3"));
                }
            }
            "exec" => {
                let _ = run(Op::DeleteProcess(a.clone(), "e1".into()));
                run(Op::Exec(a.clone(), "e2".into(), vec!["true".into()]))?;
                let w = spawn_op(&api, Op::Wait(a.clone(), "e2".into()));
                run(Op::Start(a.clone(), "e2".into()))?;
                let mut w = w;
                match w.join(&api, lim) {
                    Some((Ok(OpOk::Exit(0)), _)) => {}
                    other => return Err(format!("Wait(e2) gave {other:?}")),
                }
                run(Op::DeleteProcess(a.clone(), "e2".into()))?;
            }
            "pause" => {
                run(Op::Pause(a.clone()))?;
                run(Op::Resume(a.clone()))?;
            }
            "resume" => {
                run(Op::Resume(a.clone()))?;
            }
            "update" => {
                run(Op::Update(
                    a.clone(),
                    serde_json::json!({ "cpu": { "shares": 512 } }),
                ))?;
            }
            "ps" => match run(Op::Pids(a.clone()))? {
                OpOk::Pids(p) if p.contains(&pid_a) => {}
                o => return Err(format!("Pids gave {o:?}, want {pid_a} in it")),
            },
            _ => {}
        }
        Ok(())
    })();
    pids.push(pid_a as i32);
    let address = shim_address(ns(), &b);

    // delete everything (kill, wait, delete the tasks, then the containers)
    let t = Instant::now();
    let mut problems = Vec::new();
    for id in [&a, &b] {
        let out = ctr(ns(), &["task", "delete", "-f", id])
            .timeout(20 * SEC)
            .run_unclamped();
        if !out.succeeded() && !out.stderr.contains("not found") {
            problems.push(format!("ctr task delete -f {id}: {}", out.stderr.trim()));
        }
        let out = ctr(ns(), &["container", "delete", id])
            .timeout(20 * SEC)
            .run_unclamped();
        if !out.succeeded() {
            problems.push(format!("ctr container delete {id}: {}", out.stderr.trim()));
        }
    }
    let deleted_in = t.elapsed();
    let left = wait_nothing_left(&[(&a, vec![pids[1]]), (&b, vec![pids[0]])], 5 * SEC);
    let runtime_left = g.fault().alive();
    let shim_left = address
        .as_deref()
        .map(|ad| {
            let mut h = Vec::new();
            poll_quiet(5 * SEC, || {
                h = socket_holders(ad);
                h.is_empty()
            });
            h
        })
        .unwrap_or_default();
    let calls = g.fault().calls();
    record(
        &case,
        shim,
        &format!(
            "after: recovery {}; delete of both took {}; problems {problems:?}; left {left:?}; runtime processes {}; shim still serving: {shim_left:?}; runtime verbs called: {}",
            match &recovery {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("FAILED: {e}"),
            },
            secs(deleted_in),
            runtime_left.len(),
            calls.join(",")
        ),
    );
    if shim == Shim::Robust {
        if let Err(e) = recovery {
            panic!("after runtime {verb} answered again: {e}");
        }
        assert!(problems.is_empty(), "deleting: {problems:?}");
        assert!(left.is_empty(), "left behind: {left:?}");
        assert!(
            runtime_left.is_empty(),
            "runtime processes: {runtime_left:?}"
        );
        assert!(
            shim_left.is_empty(),
            "the shim still serves {:?} after its last container was deleted: pids {shim_left:?}",
            address
        );
        g.ids.clear(); // already deleted
    }
}

macro_rules! hang_tests {
    ($($verb:ident),*) => {$(
        shim_test!($verb, limit = 120, |shim| {
            hang_case(shim, stringify!($verb));
        });
    )*};
}

hang_tests!(create, start, kill, delete, exec, pause, resume, update, ps);

// `state`: the shim never calls `runtime state` (State answers from its own records), so
// a runtime hung on `state` must not slow down any operation. A whole lifecycle runs with
// the wrapper hanging on `state`; every step must answer well inside the 3 s state
// deadline, and the wrapper must never have been called with `state`.
shim_test!(state, limit = 120, |shim| {
    use_ns_of(shim);
    let case = "hang-state";
    let api = Api::connect();
    let a = unique_id(case, shim);
    let mut g = Cleanup::new(Some(Fault::new(&a)));
    let toml = g.fault().dir.toml(
        Some(&g.fault().wrapper),
        &[("state", "3s"), ("stop_grace", "2s"), ("kill_grace", "1s")],
    );
    let options = match shim {
        Shim::Robust => robust_options(&toml),
        Shim::Reference => reference_options(&g.fault().wrapper),
    };
    g.fault().hang("state");
    g.add(&a);
    let m = create_container(
        &api,
        shim,
        &Ct {
            id: &a,
            args: &["sleep", "1000"],
            options: Some(options),
            group: None,
            host_pid: false,
        },
    );
    let limit = match shim {
        Shim::Robust => 2 * SEC,
        Shim::Reference => REF_BOUND,
    };
    let mut steps: Vec<String> = Vec::new();
    let mut failed: Option<String> = None;
    let mut pid = 0;
    let step = |op: Op,
                g: &Cleanup,
                steps: &mut Vec<String>,
                failed: &mut Option<String>|
     -> Option<OpOk> {
        if failed.is_some() {
            return None;
        }
        let name = op.name();
        let (r, t) = op_within(&api, op, limit);
        steps.push(format!("{name} {}", describe(&r, t)));
        match r {
            Some(Ok(v)) => Some(v),
            other => {
                *failed = Some(format!("{name}: {}", describe(&other, t)));
                g.fault().release();
                None
            }
        }
    };
    if let Some(OpOk::Pid(p)) = step(Op::Create(a.clone(), m), &g, &mut steps, &mut failed) {
        pid = p;
    }
    step(
        Op::Start(a.clone(), String::new()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Get(a.clone(), String::new()),
        &g,
        &mut steps,
        &mut failed,
    );
    {
        // ctr task ls: containerd asks the shim for the State of every task
        let out = ctr(ns(), &["task", "ls"]).timeout(5 * SEC).run();
        let st = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(a.as_str()))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string));
        steps.push(format!("ctr task ls: {st:?} in {}", secs(out.elapsed)));
        if failed.is_none() && st.as_deref() != Some("RUNNING") {
            failed = Some(format!("ctr task ls shows {st:?} for {a}"));
        }
    }
    step(Op::Pids(a.clone()), &g, &mut steps, &mut failed);
    step(
        Op::Exec(a.clone(), "e1".into(), vec!["true".into()]),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Start(a.clone(), "e1".into()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Wait(a.clone(), "e1".into()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::DeleteProcess(a.clone(), "e1".into()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(Op::Pause(a.clone()), &g, &mut steps, &mut failed);
    step(Op::Resume(a.clone()), &g, &mut steps, &mut failed);
    step(
        Op::Update(a.clone(), serde_json::json!({ "cpu": { "shares": 256 } })),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Kill(a.clone(), String::new(), 9, false),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Wait(a.clone(), String::new()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(Op::Delete(a.clone()), &g, &mut steps, &mut failed);
    let calls = g.fault().calls();
    let state_calls = calls.iter().filter(|v| *v == "state").count();
    record(
        case,
        shim,
        &format!(
            "lifecycle with runtime `state` hung: {}; `state` called {state_calls} times; verbs: {}; steps: {}",
            match &failed {
                None => "every step answered".to_string(),
                Some(f) => format!("STOPPED at {f}"),
            },
            calls.join(","),
            steps.join("; ")
        ),
    );
    if shim == Shim::Robust {
        if let Some(f) = failed {
            panic!("with runtime `state` hung: {f}\nsteps: {steps:#?}");
        }
        assert_eq!(state_calls, 0, "runtime verbs called: {calls:?}");
        let out = ctr(ns(), &["container", "delete", &a]).run();
        assert!(out.succeeded(), "ctr container delete: {}", out.stderr);
        let left = wait_nothing_left(&[(&a, vec![pid as i32])], 5 * SEC);
        assert!(left.is_empty(), "left behind: {left:?}");
        g.ids.clear();
    }
});

// A forced delete (`ctr task delete -f`: Kill(SIGKILL, all), wait, Delete) of a running
// container, and of a paused one, while the runtime hangs on `kill`. The SIGKILL cannot
// take effect through the runtime; the stop must still finish (the shim kills the
// container's cgroup itself: thaw, SIGKILL every pid) within the kill deadline plus its
// escalation steps (2 x kill_grace) plus the margin, and leave nothing behind.
shim_test!(force_delete_kill_hung, limit = 120, |shim| {
    use_ns_of(shim);
    let case = "force-delete-kill-hung";
    let api = Api::connect();
    let a = unique_id("fdel-running", shim);
    let b = unique_id("fdel-paused", shim);
    let mut g = Cleanup::new(Some(Fault::new(&a)));
    let kill_grace = SEC;
    let toml = g.fault().dir.toml(
        Some(&g.fault().wrapper),
        &[
            ("kill", &format!("{}s", HUNG_DEADLINE.as_secs())),
            ("stop_grace", "2s"),
            ("kill_grace", "1s"),
        ],
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
    g.fault().hang("kill");
    let bound = HUNG_DEADLINE + 2 * kill_grace + MARGIN;
    let limit = match shim {
        Shim::Robust => bound + 10 * SEC,
        Shim::Reference => REF_BOUND,
    };
    let mut outcomes = Vec::new();
    for (id, pid, what) in [(&a, pids[0], "running"), (&b, pids[1], "paused")] {
        let out = ctr(ns(), &["task", "delete", "-f", id])
            .timeout(limit)
            .run();
        let dead = poll_quiet(2 * SEC, || !pid_alive(pid));
        let listed = task_ls_status(id).ok().flatten();
        record(
            case,
            shim,
            &format!(
                "{what}, runtime kill hung: ctr task delete -f -> {} after {}{}: {}; init dead {dead}; task listed as {listed:?}",
                match out.code {
                    Some(c) => format!("exit {c}"),
                    None => "killed".into(),
                },
                secs(out.elapsed),
                if out.timed_out { " (TIMED OUT)" } else { "" },
                out.stderr.trim().replace('\n', " ")
            ),
        );
        outcomes.push((id.clone(), what, out, dead, listed));
    }
    let killed = g.fault().release();
    if shim == Shim::Robust {
        for (id, what, out, dead, listed) in &outcomes {
            assert!(
                out.succeeded(),
                "{what} {id}: `ctr task delete -f` with runtime kill hung failed after {}: {}",
                secs(out.elapsed),
                out.stderr.trim()
            );
            assert!(
                out.elapsed <= bound,
                "{what} {id}: forced delete took {} > kill deadline + 2 x kill_grace + {MARGIN:?}",
                secs(out.elapsed)
            );
            assert!(*dead, "{what} {id}: init still alive");
            assert!(listed.is_none(), "{what} {id}: still listed as {listed:?}");
        }
        assert!(killed.is_empty(), "runtime processes left: {killed:?}");
        for id in [&a, &b] {
            let out = ctr(ns(), &["container", "delete", id]).run();
            assert!(out.succeeded(), "ctr container delete {id}: {}", out.stderr);
        }
        let left = wait_nothing_left(&[(&a, vec![pids[0]]), (&b, vec![pids[1]])], 5 * SEC);
        assert!(left.is_empty(), "left behind: {left:?}");
        g.ids.clear();
    }
});
