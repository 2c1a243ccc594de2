use super::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

pub(crate) fn reaper() -> Reaper {
    static R: OnceLock<Reaper> = OnceLock::new();
    R.get_or_init(|| {
        let (r, rx) = Reaper::start().expect("reaper");
        // Drain the sink so it never grows.
        std::thread::spawn(move || for _ in rx {});
        r
    })
    .clone()
}

/// A fake runtime script: it is not runc, it only shows how the driver treats
/// a runtime's output, exit status and hangs.
fn script(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("fake-runtime");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

pub(crate) fn runc(binary: PathBuf, default: Duration) -> Cli {
    Cli::new(
        CliConfig {
            binary,
            root: PathBuf::from("/tmp/robust-runtime-test-root"),
            systemd_cgroup: false,
            global_flags: vec![],
            deadlines: Deadlines {
                per_verb: BTreeMap::new(),
                default,
            },
        },
        reaper(),
    )
}

#[test]
fn state_parses_json() {
    let d = tempdir();
    let r = runc(
        script(
            &d,
            r#"echo '{"id":"c1","pid":42,"status":"running","bundle":"/b"}'"#,
        ),
        Duration::from_secs(10),
    );
    let st = r.state("c1").unwrap();
    assert_eq!(st.pid, 42);
    assert_eq!(st.status, "running");
}

#[test]
fn failure_carries_log_json_error() {
    let d = tempdir();
    // $4 is the --log path (after --root X).
    let r = runc(
        script(
            &d,
            r#"echo '{"level":"error","msg":"container \"c1\" does not exist"}' >> "$4"; echo junk >&2; exit 1"#,
        ),
        Duration::from_secs(10),
    );
    let err = r.delete("c1", true).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn failure_falls_back_to_stderr() {
    let d = tempdir();
    let r = runc(
        script(&d, "echo 'bad thing' >&2; exit 2"),
        Duration::from_secs(10),
    );
    let err = r.kill("c1", 15, false).unwrap_err();
    assert!(err.to_string().contains("bad thing"), "{err}");
}

#[test]
fn hung_runtime_times_out_and_is_killed() {
    let d = tempdir();
    let marker = d.join("child.pid");
    let r = runc(
        script(
            &d,
            &format!("sleep 300 & echo $! > {}; wait", marker.display()),
        ),
        Duration::from_millis(300),
    );
    let t = Instant::now();
    let err = r.pause("c1").unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("pause c1"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // The runtime's helper (same process group) is dead too.
    let pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "helper {pid} survived the deadline"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn update_passes_resources_on_stdin() {
    let d = tempdir();
    let out = d.join("got");
    let r = runc(
        script(&d, &format!("cat > {}", out.display())),
        Duration::from_secs(10),
    );
    r.update("c1", br#"{"memory":{"limit":1}}"#).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), br#"{"memory":{"limit":1}}"#);
}

#[test]
fn missing_binary_names_it() {
    let r = runc(PathBuf::from("/nonexistent/runc"), Duration::from_secs(1));
    let err = r.start("c1", None).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/runc"), "{err}");
}

#[test]
fn log_error_extraction() {
    let log = br#"{"level":"warning","msg":"w"}
{"level":"error","msg":"first"}
not json
{"level":"error","msg":"second"}"#;
    assert_eq!(last_log_error(log), "first; not json; second");
}

/// runsc 2022-12-19 and 2024-07-29 write their JSON log entries without a
/// newline between them (the sandbox's error, then the caller's).
#[test]
fn log_error_extraction_of_entries_on_one_line() {
    let log = br#"{"msg":"creating loader: converting capabilities: unknown capability \"CAP_PERFMON\"","level":"error","time":"2026-12-04T09:10:11.689307242Z"}{"msg":"creating container: cannot create sandbox: cannot read client sync file: waiting for sandbox to start: EOF","level":"error","time":"2026-12-04T09:10:11.705212294Z"}"#;
    assert_eq!(
        last_log_error(log),
        "creating loader: converting capabilities: unknown capability \"CAP_PERFMON\"; \
         creating container: cannot create sandbox: cannot read client sync file: waiting \
         for sandbox to start: EOF"
    );
    // a line that is not only entries stays whole
    let log = br#"{"level":"error","msg":"a"} trailing words"#;
    assert_eq!(
        last_log_error(log),
        r#"{"level":"error","msg":"a"} trailing words"#
    );
}

fn tempdir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("robust-runtime-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A CLI of a binary that does not exist, for tests of what a family
/// answers without running it.
pub(crate) fn cli() -> Cli {
    runc(
        PathBuf::from("/nonexistent/runtime"),
        Duration::from_secs(1),
    )
}
