//! Issue 12 A: a process that leaves a background child holding its output.
//!
//! `sh -c 'sleep 60 & exit 3'`: the background `sleep` inherits the process's stdout and
//! stderr (pipes, or the pty slave with `-t`) and keeps them open after the exit. The
//! exit is reported when the process exits; the output is then drained for at most
//! `timeouts.io_drain` (2 s by default) and the shim closes containerd's FIFO, so the
//! client (`ctr task exec`, `ctr run`) returns the exit code within the bound instead of
//! when the background child ends. Output written before the exit is all delivered.
//!
//! Every case also runs against containerd-shim-runc-v2 (`::reference`), whose times are
//! recorded, never asserted.

use super::*;

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use containerd_client::services::v1::CreateTaskRequest;

/// What a client may wait past the exit for the end of the output with our shim: the
/// default drain bound (2 s) plus slack.
const RETURN_BOUND: Duration = Duration::from_secs(5);

/// How long a ctr call may run here: far below the background `sleep 60`, so a shim
/// that waits for the child fails the case instead of hanging it.
const CTR_BOUND: Duration = Duration::from_secs(20);

/// Records `out` for the case, and for our shim asserts its exit code and that it
/// returned within [`RETURN_BOUND`].
fn returned(case: &str, shim: Shim, what: &str, out: &Out, code: i32) {
    record(
        case,
        shim,
        &format!(
            "{what}: exit {:?}{} after {}",
            out.code,
            if out.timed_out { " (timed out)" } else { "" },
            secs(out.elapsed)
        ),
    );
    if shim == Shim::Robust {
        out.clone().code_is(code);
        assert!(
            out.elapsed < RETURN_BOUND,
            "{what}: `{}` returned after {:.2?}, not within {RETURN_BOUND:?}",
            out.cmdline,
            out.elapsed
        );
    }
}

/// Our shim's drain warn line for `(id, exec_id)` in containerd's log since `off`.
fn drain_warnings(off: u64, id: &str, exec_id: &str) -> usize {
    let id_field = format!("id={id} ");
    let exec_field = format!("exec_id={exec_id} ");
    log_since(off)
        .lines()
        .filter(|l| {
            l.contains("stopped copying") && l.contains(&id_field) && l.contains(&exec_field)
        })
        .count()
}

/// The task still serves: an exec answers and the init is still RUNNING.
fn still_usable(shim: Shim, id: &str, exec_id: &str) {
    let out = ctr(
        NS,
        &[
            "task",
            "exec",
            "--exec-id",
            exec_id,
            id,
            "echo",
            "still-here",
        ],
    )
    .timeout(CTR_BOUND)
    .run();
    let status = task_status(NS, id).map(|s| s.1);
    if shim == Shim::Robust {
        let out = out.ok();
        assert_eq!(out.stdout.trim(), "still-here", "an exec after the drain");
        assert_eq!(
            status.as_deref(),
            Some("RUNNING"),
            "task {id} after the drain"
        );
    }
}

// 1. `ctr task exec ID sh -c 'sleep 60 & exit 3'` returns 3 within the drain bound, the
//    output written before the exit arrives, the bound is logged once at warn with the
//    container and exec ids, and the task is still usable.
shim_test!(exec_background_child, limit = 90, |shim| {
    let case = "exec-background-child";
    let id = unique_id(case, shim);
    let _g = ContainerGuard::new(NS, &id);
    run_detached(shim, &id, &["sleep", "1000"]);
    let off = log_offset();
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
            "echo before; sleep 60 & exit 3",
        ],
    )
    .timeout(CTR_BOUND)
    .run();
    returned(case, shim, "exec `sleep 60 & exit 3`", &out, 3);
    if shim == Shim::Robust {
        assert_eq!(
            out.stdout.trim(),
            "before",
            "output written before the exit"
        );
        poll_until("the shim's drain warn line", 5 * SEC, || {
            (drain_warnings(off, &id, "e1") > 0).then_some(())
        });
    }
    still_usable(shim, &id, "e2");
    if shim == Shim::Robust {
        // stdout and stderr both hit the bound: one line for the process
        assert_eq!(drain_warnings(off, &id, "e1"), 1, "warn lines for exec e1");
        // an exec that ended at EOF logs nothing
        assert_eq!(drain_warnings(off, &id, "e2"), 0, "warn lines for exec e2");
    }
    // the background sleep dies with the task (ContainerGuard: task delete -f)
});

// 2. Output written before the exit is all delivered: 20000 lines from an exec that
//    exits normally, and from one that leaves a background child.
shim_test!(exec_output_before_exit, limit = 90, |shim| {
    let case = "exec-output-before-exit";
    let id = unique_id(case, shim);
    let _g = ContainerGuard::new(NS, &id);
    run_detached(shim, &id, &["sleep", "1000"]);
    let want: Vec<String> = (1..=20000).map(|n| n.to_string()).collect();
    for (exec_id, script) in [
        ("s1", "seq 1 20000"),
        ("s2", "seq 1 20000; sleep 60 &"),
        ("s3", "seq 1 20000 >&2; sleep 60 &"),
    ] {
        let out = ctr(
            NS,
            &[
                "task",
                "exec",
                "--exec-id",
                exec_id,
                &id,
                "sh",
                "-c",
                script,
            ],
        )
        .timeout(CTR_BOUND)
        .run();
        let text = if exec_id == "s3" {
            &out.stderr
        } else {
            &out.stdout
        };
        let got: Vec<&str> = text.lines().collect();
        let what = format!("exec `{script}` ({} of 20000 lines)", got.len());
        returned(case, shim, &what, &out, 0);
        if shim == Shim::Robust {
            assert_eq!(got.len(), want.len(), "lines of `{script}`");
            assert!(got.iter().zip(&want).all(|(g, w)| g == w), "`{script}`");
        }
    }
    still_usable(shim, &id, "s4");
});

// 3. The same with a terminal: `ctr task exec -t` of a shell whose background child
//    ignores SIGHUP and keeps the pty slave open.
shim_test!(tty_exec_background_child, limit = 90, |shim| {
    let case = "tty-exec-background-child";
    let id = unique_id(case, shim);
    let _g = ContainerGuard::new(NS, &id);
    run_detached(shim, &id, &["sleep", "1000"]);
    let off = log_offset();
    let out = ctr(
        NS,
        &[
            "task",
            "exec",
            "-t",
            "--exec-id",
            "t1",
            &id,
            "sh",
            "-c",
            "trap '' HUP; echo before; sleep 60 & exit 3",
        ],
    )
    .timeout(CTR_BOUND)
    .run_pty(24, 80);
    returned(case, shim, "exec -t `sleep 60 & exit 3`", &out, 3);
    if shim == Shim::Robust {
        assert!(
            out.stdout.contains("before"),
            "output before the exit: {:?}",
            out.stdout
        );
        poll_until("the shim's drain warn line", 5 * SEC, || {
            (drain_warnings(off, &id, "t1") == 1).then_some(())
        });
    }
    still_usable(shim, &id, "t2");
});

// 4. An init that leaves a background child: `ctr run --rm sh -c 'sleep 60 & exit 4'`
//    returns 4 within the bound. In its own pid namespace the kernel kills the child with
//    the init; in the host's the child survives the init and holds the output until the
//    drain ends, then `ctr run --rm`'s delete kills it.
shim_test!(init_background_child, limit = 90, |shim| {
    let case = "init-background-child";
    let e = env();
    let host_pid_ns = format!("--with-ns=pid:/proc/{}/ns/pid", std::process::id());
    for (what, flags) in [
        ("own pid ns", vec![]),
        ("host pid ns", vec![host_pid_ns.as_str()]),
    ] {
        let id = unique_id(case, shim);
        let _g = ContainerGuard::new(NS, &id);
        let mut a = vec!["run", "--rm", "--runtime", shim.runtime()];
        a.extend(flags);
        a.extend([
            e.image.as_str(),
            &id,
            "sh",
            "-c",
            "sleep 60 & echo bg=$!; exit 4",
        ]);
        let out = ctr(NS, &a).timeout(CTR_BOUND).run();
        returned(case, shim, &format!("run --rm ({what})"), &out, 4);
        if shim == Shim::Robust {
            assert!(
                task_status(NS, &id).is_none(),
                "task {id} still listed after run --rm"
            );
        }
        if what == "host pid ns" && shim == Shim::Robust {
            // the background sleep is a host pid here: the delete killed it
            let bg: i32 = out
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("bg="))
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("no bg= line in {:?}", out.stdout));
            poll_until("the background sleep to be gone", 5 * SEC, || {
                let sleeping =
                    proc_stat(bg).is_some_and(|(st, _, comm)| st != 'Z' && comm == "sleep");
                (!sleeping).then_some(())
            });
        }
    }
});

/// A FIFO at `path`, opened for reading without waiting for a writer.
fn fifo_reader(path: &Path) -> File {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Reads `f` (non-blocking; its writer already opened it) until EOF, at most `limit`.
/// Returns what was read and when EOF came (None: not within `limit`).
fn read_to_eof(f: &mut File, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let end = Instant::now() + bound(limit);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, None);
        }
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        match f.read(&mut buf) {
            Ok(0) => return (got, Some(Instant::now())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => panic!("read the stdout fifo: {e}"),
        }
    }
}

// 5. The init through the API, as a client that waits for the end of the output before
//    it deletes the task (containerd's client does, in `task.Delete`): an init in the
//    host's pid namespace (nothing kills its background child at its exit) exits 4 after
//    writing a line; Wait reports it, and the stdout FIFO reaches EOF within the drain
//    bound, with the line in it.
shim_test!(init_output_ends_after_exit, limit = 90, |shim| {
    let case = "init-output-ends-after-exit";
    use_ns_of(shim);
    let id = unique_id(case, shim);
    let _g = ContainerGuard::new(ns(), &id);
    let dir = TempDir::new(&id);
    let stdout = dir.0.join("stdout");
    let mut reader = fifo_reader(&stdout);
    // containerd-shim-runc-v2 wants both (it opens the empty path otherwise)
    let stderr = dir.0.join("stderr");
    let _stderr_reader = fifo_reader(&stderr);
    let api = Api::connect();
    let rootfs = create_container(
        &api,
        shim,
        &Ct {
            id: &id,
            args: &["sh", "-c", "echo before; sleep 60 & exit 4"],
            options: None,
            group: None,
            host_pid: true,
        },
    );
    let (created, _) = try_call(
        &api,
        20 * SEC,
        api.tasks().create(req(
            ns(),
            CreateTaskRequest {
                container_id: id.clone(),
                rootfs,
                stdout: stdout.display().to_string(),
                stderr: stderr.display().to_string(),
                ..Default::default()
            },
        )),
    );
    match created {
        Some(Ok(_)) => {}
        other => panic!("Tasks.Create({id}): {other:?}"),
    }
    op_ok(&api, Op::Start(id.clone(), String::new()), 20 * SEC);
    let st = op_ok(&api, Op::Wait(id.clone(), String::new()), 20 * SEC);
    let exited = Instant::now();
    let (got, eof) = read_to_eof(&mut reader, 20 * SEC);
    let took = eof.map(|t| t.duration_since(exited));
    record(
        case,
        shim,
        &format!(
            "init `echo before; sleep 60 & exit 4` (host pid ns): Wait {st:?}; stdout EOF {} after the exit; read {:?}",
            took.map(secs).unwrap_or_else(|| "not within 20s".into()),
            String::from_utf8_lossy(&got)
        ),
    );
    if shim == Shim::Robust {
        assert_eq!(st, OpOk::Exit(4), "exit of the init");
        assert_eq!(got, b"before\n", "output written before the exit");
        let took = took.expect("the stdout FIFO never reached EOF");
        assert!(took < RETURN_BOUND, "stdout EOF {took:?} after the exit");
    }
    // ContainerGuard: task delete -f (kills the background sleep), container delete
});
