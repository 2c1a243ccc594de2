use super::*;

use containerd_client::services::v1::{GetRequest, MetricsRequest};

const SEC: Duration = Duration::from_secs(1);

// 1. `ctr run --rm` of a command exiting 7: ctr exits 7 and the stdout is delivered.
shim_test!(run_rm_exit_code, limit = 60, |shim| {
    let e = env();
    let id = unique_id("run-rm", shim);
    let _g = ContainerGuard::new(NS, &id);
    let out = ctr(
        NS,
        &[
            "run",
            "--rm",
            "--runtime",
            shim.runtime(),
            &e.image,
            &id,
            "sh",
            "-c",
            "echo hello; exit 7",
        ],
    )
    .run()
    .code_is(7);
    assert_eq!(out.stdout.trim(), "hello", "stdout of the container");
    // --rm removed the container and its task
    assert!(
        task_status(NS, &id).is_none(),
        "task {id} still listed after run --rm"
    );
    let ls = ctr(NS, &["container", "ls", "-q"]).run().ok();
    assert!(
        !ls.stdout.lines().any(|l| l.trim() == id),
        "container {id} left after run --rm"
    );
});

// 2. detached run, exec (stdout + exit code), kill (SIGTERM), stopped, exit status, deletes.
shim_test!(detached_exec_kill_delete, limit = 60, |shim| {
    let id = unique_id("detached", shim);
    let _g = ContainerGuard::new(NS, &id);
    let pid = run_detached(
        shim,
        &id,
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; while :; do sleep 1 & wait $!; done",
        ],
    );
    assert!(
        pid > 0 && pid_alive(pid as i32),
        "init pid {pid} is not a live process"
    );

    let out = ctr(
        NS,
        &[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo from-exec; exit 5",
        ],
    )
    .run()
    .code_is(5);
    assert_eq!(out.stdout.trim(), "from-exec", "stdout of the exec");
    // the same exec id can be used again once the first is gone
    let out = ctr(
        NS,
        &["task", "exec", "--exec-id", "e1", &id, "echo", "again"],
    )
    .run()
    .ok();
    assert_eq!(out.stdout.trim(), "again");

    ctr(NS, &["task", "kill", &id]).run().ok(); // SIGTERM
    wait_task_status(NS, &id, "STOPPED", 20 * SEC);

    let api = Api::connect();
    let got = api
        .call(
            "Tasks.Get",
            10 * SEC,
            api.tasks().get(req(
                NS,
                GetRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                },
            )),
        )
        .unwrap_or_else(|s| panic!("Tasks.Get({id}): {s}"))
        .into_inner();
    let p = got.process.expect("Tasks.Get returned no process");
    assert_eq!(
        p.exit_status, 42,
        "exit status of the SIGTERMed init (trap 'exit 42' TERM)"
    );
    assert_eq!(p.pid, pid, "pid reported after exit");

    ctr(NS, &["task", "delete", &id]).run().ok();
    assert!(
        task_status(NS, &id).is_none(),
        "task {id} still listed after task delete"
    );
    poll_until("the bundle dir to go", 5 * SEC, || {
        (!bundle_dir(NS, &id).exists()).then_some(())
    });
    ctr(NS, &["container", "delete", &id]).run().ok();
    let ls = ctr(NS, &["container", "ls", "-q"]).run().ok();
    assert!(
        !ls.stdout.lines().any(|l| l.trim() == id),
        "container {id} left after container delete"
    );
    assert!(
        !pid_alive(pid as i32),
        "init pid {pid} still alive after delete"
    );
});

// 3. tty: `ctr run --rm -t` and `ctr task exec -t` see a /dev/pts terminal.
shim_test!(tty_run_and_exec, limit = 60, |shim| {
    let e = env();
    let id = unique_id("tty", shim);
    let mut g = ContainerGuard::new(NS, &id);
    let out = ctr(
        NS,
        &[
            "run",
            "--rm",
            "-t",
            "--runtime",
            shim.runtime(),
            &e.image,
            &id,
            "sh",
            "-c",
            "tty; exit 3",
        ],
    )
    .run_pty(24, 80)
    .code_is(3);
    assert!(
        out.stdout.contains("/dev/pts/"),
        "`tty` in a -t container {id} printed: {:?}",
        out.stdout
    );

    let id2 = unique_id("tty-exec", shim);
    g.add(&id2);
    run_detached(shim, &id2, &["sleep", "1000"]);
    let out = ctr(
        NS,
        &[
            "task",
            "exec",
            "-t",
            "--exec-id",
            "t1",
            &id2,
            "sh",
            "-c",
            "tty; exit 4",
        ],
    )
    .run_pty(24, 80)
    .code_is(4);
    assert!(
        out.stdout.contains("/dev/pts/"),
        "`tty` in an exec -t of {id2} printed: {:?}",
        out.stdout
    );
    // without -t there is no terminal
    let out = ctr(
        NS,
        &[
            "task",
            "exec",
            "--exec-id",
            "t2",
            &id2,
            "sh",
            "-c",
            "tty || true",
        ],
    )
    .run()
    .ok();
    assert!(
        out.stdout.contains("not a tty"),
        "`tty` without -t printed: {:?}",
        out.stdout
    );
});

// 4. stdin reaches the container (run) and an exec, EOF included (the process exits),
//    with more than a pipe buffer of data too.
shim_test!(stdin_run_and_exec, limit = 60, |shim| {
    let e = env();
    let id = unique_id("stdin", shim);
    let mut g = ContainerGuard::new(NS, &id);
    let gate_id = id.clone();
    let out = ctr(
        NS,
        &[
            "run",
            "--rm",
            "--runtime",
            shim.runtime(),
            &e.image,
            &id,
            "cat",
        ],
    )
    .stdin_when("data\n", move || {
        poll_quiet(
            15 * SEC,
            || matches!(task_status(NS, &gate_id), Some((_, s)) if s == "RUNNING"),
        );
    })
    .run()
    .ok();
    assert_eq!(out.stdout.trim(), "data", "cat of stdin in run --rm");

    let id2 = unique_id("stdin-exec", shim);
    g.add(&id2);
    let init = run_detached(shim, &id2, &["sleep", "1000"]);
    let out = ctr(NS, &["task", "exec", "--exec-id", "in1", &id2, "cat"])
        .stdin_when("exec-data\n", move || wait_exec_running(init, "cat"))
        .run()
        .ok();
    assert_eq!(out.stdout.trim(), "exec-data", "cat of stdin in an exec");
    let big = vec![b'x'; 300_000];
    let out = ctr(NS, &["task", "exec", "--exec-id", "in2", &id2, "wc", "-c"])
        .stdin_when(big, move || wait_exec_running(init, "wc -c"))
        .run()
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "300000",
        "byte count of a 300000-byte stdin"
    );
});

/// Waits (quietly, at most 15 s) until a process with this command line runs in the
/// pid namespace of `init`.
fn wait_exec_running(init: u32, cmd: &str) {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok();
    poll_quiet(15 * SEC, || {
        all_pids().into_iter().any(|p| {
            cmdline(p) == cmd && std::fs::read_link(format!("/proc/{p}/ns/pid")).ok() == ns
        })
    });
}

// 5. pause / resume.
shim_test!(pause_resume, limit = 60, |shim| {
    let id = unique_id("pause", shim);
    let _g = ContainerGuard::new(NS, &id);
    let pid = run_detached(shim, &id, &["sleep", "1000"]);
    ctr(NS, &["task", "pause", &id]).run().ok();
    wait_task_status(NS, &id, "PAUSED", 10 * SEC);
    ctr(NS, &["task", "resume", &id]).run().ok();
    let pid2 = wait_task_status(NS, &id, "RUNNING", 10 * SEC);
    assert_eq!(pid, pid2);
    // still usable after resume
    let out = ctr(
        NS,
        &["task", "exec", "--exec-id", "p1", &id, "echo", "awake"],
    )
    .run()
    .ok();
    assert_eq!(out.stdout.trim(), "awake");
});

// 7. stats: `ctr task metrics` has memory usage > 0; the API names the metrics type.
shim_test!(metrics_memory_usage, limit = 60, |shim| {
    let id = unique_id("metrics", shim);
    let _g = ContainerGuard::new(NS, &id);
    run_detached(shim, &id, &["sleep", "1000"]);
    let out = ctr(NS, &["task", "metrics", "--format", "json", &id])
        .run()
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("metrics json: {e}: {:?}", out.stdout));
    // cgroup v1: memory.usage.usage; cgroup v2: memory.usage
    let usage = v["memory"]["usage"]["usage"]
        .as_u64()
        .or_else(|| v["memory"]["usage"].as_u64());
    assert!(
        usage.unwrap_or(0) > 0,
        "memory usage in metrics: {}",
        v["memory"]
    );
    assert!(
        v["pids"]["current"].as_u64().unwrap_or(0) >= 1,
        "pids.current in metrics: {}",
        v["pids"]
    );

    let api = Api::connect();
    let m = api
        .call(
            "Tasks.Metrics",
            10 * SEC,
            api.tasks().metrics(req(
                NS,
                MetricsRequest {
                    filters: vec![format!("id=={id}")],
                },
            )),
        )
        .unwrap_or_else(|s| panic!("Tasks.Metrics: {s}"))
        .into_inner();
    assert_eq!(
        m.metrics.len(),
        1,
        "metrics for exactly our task: {:?}",
        m.metrics
    );
    let data = m.metrics[0].data.as_ref().expect("metric without data");
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").exists();
    let want = if v1 {
        "io.containerd.cgroups.v1.Metrics"
    } else {
        "io.containerd.cgroups.v2.Metrics"
    };
    assert!(
        data.type_url.ends_with(want),
        "metrics type {:?}, want {want}",
        data.type_url
    );
    assert!(!data.value.is_empty(), "empty metrics payload");
});

// 8. `ctr task ps` lists the init pid and an exec'd process.
shim_test!(ps_lists_pids, limit = 60, |shim| {
    let id = unique_id("ps", shim);
    let _g = ContainerGuard::new(NS, &id);
    let init = run_detached(shim, &id, &["sleep", "1000"]);
    ctr(
        NS,
        &[
            "task",
            "exec",
            "-d",
            "--exec-id",
            "s1",
            &id,
            "sleep",
            "1001",
        ],
    )
    .run()
    .ok();
    let (pids, sleeper) = poll_until(
        "ctr task ps to list the exec'd sleep 1001",
        10 * SEC,
        || {
            let out = ctr(NS, &["task", "ps", &id]).run().ok();
            let pids: Vec<i32> = out
                .stdout
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                .collect();
            let sleeper = pids.iter().copied().find(|p| cmdline(*p) == "sleep 1001")?;
            Some((pids, sleeper))
        },
    );
    assert!(
        pids.contains(&(init as i32)),
        "ctr task ps {pids:?} lacks the init pid {init}"
    );
    assert_ne!(sleeper, init as i32);
});

// 8b. `ctr task ps` of a stopped task that is not deleted yet. A deliberate difference:
// our shim lists the dead init (containerd 1.7+ deletes a shim whose Pids is empty at
// its restart as a leaked one, without an exit: docs/events.md); the reference lists
// nothing. Our answer is asserted, the reference's recorded.
shim_test!(ps_of_stopped_task, limit = 60, |shim| {
    let id = unique_id("ps-stopped", shim);
    let _g = ContainerGuard::new(NS, &id);
    let init = run_detached(shim, &id, &["sleep", "1000"]);
    ctr(NS, &["task", "kill", "-s", "KILL", &id]).run().ok();
    wait_task_status(NS, &id, "STOPPED", 15 * SEC);
    let out = ctr(NS, &["task", "ps", &id]).run();
    let pids: Vec<i32> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    match shim {
        Shim::Robust => {
            assert!(out.succeeded(), "ctr task ps of a stopped task: {out:?}");
            assert_eq!(
                pids,
                vec![init as i32],
                "ctr task ps of a stopped task lists its init only"
            );
            assert!(!pid_alive(init as i32), "the init {init} is still alive");
        }
        Shim::Reference => eprintln!(
            "[ps_of_stopped_task/ref] REFERENCE OUTCOME (recorded, not asserted): exit {:?}, pids {pids:?} (init was {init})",
            out.code
        ),
    }
});

// 9. Threads (issue 15): a daemon's threads do not grow with its containers. A pod daemon
//    with one running container has at most 6 (ours: the event loop, one idle RPC thread,
//    the exit, OOM and publisher threads); four more containers, each with its stdio and
//    an exec, add none; an attached exec adds one while it runs (the Wait it holds). The
//    reference's counts are recorded.
shim_test!(daemon_threads_stay_few, limit = 90, |shim| {
    let pod = unique_id("threads", shim);
    let mut g = ContainerGuard::new(NS, &pod);
    let group = format!("io.kubernetes.cri.sandbox-id={pod}");
    let run = |id: &str, kind: &str| {
        let kind = format!("io.kubernetes.cri.container-type={kind}");
        let e = env();
        ctr(
            NS,
            &[
                "run",
                "-d",
                "--runtime",
                shim.runtime(),
                "--annotation",
                &group,
                "--annotation",
                &kind,
                &e.image,
                id,
                "sleep",
                "1000",
            ],
        )
        .run()
        .ok();
        wait_task_status(NS, id, "RUNNING", 15 * SEC);
    };
    run(&pod, "sandbox");
    let daemon = shim_pid(&pod);
    let threads = || {
        std::fs::read_to_string(format!("/proc/{daemon}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
            })
            .unwrap_or_else(|| panic!("no thread count of shim daemon {daemon}"))
    };
    // A call's thread goes once its call is answered: wait for the count to settle.
    let settled = |at_most: usize, what: &str| {
        if shim == Shim::Robust {
            poll_until(what, 5 * SEC, || Some(threads()).filter(|&n| n <= at_most))
        } else {
            threads()
        }
    };
    let one = settled(6, "at most 6 threads with one container");

    for i in 1..5 {
        let id = format!("{pod}-{i}");
        g.add(&id);
        run(&id, "container");
        assert_eq!(shim_pid(&id), daemon, "{id} is served by the pod's daemon");
        let exec_id = format!("e{i}");
        ctr(NS, &["task", "exec", "--exec-id", &exec_id, &id, "true"])
            .run()
            .ok();
    }
    let five = settled(one, "no more threads with five containers than with one");

    let id = format!("{pod}-1");
    let attached = std::thread::spawn(move || {
        ctr(
            NS,
            &["task", "exec", "--exec-id", "w1", &id, "sleep", "3.5"],
        )
        .timeout(30 * SEC)
        .run()
        .ok();
    });
    poll_until("the attached exec running", 10 * SEC, || {
        all_pids()
            .into_iter()
            .find(|&p| cmdline(p).trim() == "sleep 3.5")
    });
    let waiting = settled(five + 1, "one more thread while an attached exec runs");
    attached.join().expect("the attached exec");
    record(
        "daemon_threads_stay_few",
        shim,
        &format!(
            "threads: 1 container {one}, 5 containers {five}, an attached exec running {waiting}"
        ),
    );
});
