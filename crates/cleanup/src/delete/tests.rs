use super::budget::{Budget, MIN_STEP};
use super::plan::scan_for_roots;
use super::*;
use crate::cgroup::pid_alive;
use crate::mount;
use crate::owner::{self, OwnerRecord};

/// One reaper for every test of the crate: two reapers in one process
/// would reap each other's children.
pub(crate) fn test_reaper() -> Reaper {
    static R: std::sync::OnceLock<Reaper> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let (r, rx) = Reaper::start().unwrap();
        std::thread::spawn(move || for _ in rx {});
        r
    })
    .clone()
}

#[test]
fn refuses_bad_ids_and_paths() {
    let reaper = test_reaper();
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("default").join("c1");
    std::fs::create_dir_all(&b).unwrap();
    for (ns, id, bundle) in [
        ("default", "..", b.clone()),
        ("default", "../c1", b.clone()),
        ("default", "/abs", b.clone()),
        ("de/fault", "c1", b.clone()),
        ("default", "c1", PathBuf::from("default/c1")),
        ("default", "c1", d.path().join("default/../default/c1")),
        ("default", "c2", b.clone()),
    ] {
        let r = DeleteRequest::new(ns, id, &bundle);
        let e = delete_bundle(&r, &reaper).unwrap_err().to_string();
        assert!(e.starts_with("refusing to clean up: "), "{e}");
    }
    // A bundle reached through a symlink (to /): refused, nothing done.
    let link = d.path().join("default").join("c3");
    std::os::unix::fs::symlink("/", &link).unwrap();
    let e = delete_bundle(&DeleteRequest::new("default", "c3", &link), &reaper)
        .unwrap_err()
        .to_string();
    assert!(e.contains("symlink"), "{e}");
}

fn fake_runtime(dir: &Path, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-runc");
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn request(d: &Path, id: &str) -> (DeleteRequest, PathBuf) {
    let b = d.join("state").join("default").join(id);
    std::fs::create_dir_all(&b).unwrap();
    let mut r = DeleteRequest::new("default", id, &b);
    r.probe_parents = vec![d.join("roots")];
    r.scan_dir = None;
    (r, b)
}

/// A bundle holding nothing at all (the rest of the routine needs a
/// runtime; a fake one that says "does not exist" stands in).
#[test]
fn an_empty_bundle_is_cleaned_with_pid_zero() {
    let reaper = test_reaper();
    let d = tempfile::tempdir().unwrap();
    let (r, b) = request(d.path(), "c1");
    let rt = fake_runtime(
        d.path(),
        "echo 'container \"c1\" does not exist' >&2; exit 1",
    );
    std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
    let o = delete_bundle(&r, &reaper).unwrap();
    assert!(o.is_clean(), "{:?}", o.remains);
    assert_eq!(o.pid, 0);
    assert_eq!(o.exit_status, 137);
    assert_eq!(o.runtime_source, "runtime");
    // options.json, init.pid, the shim's record, config.json, address,
    // rootfs: one note each.
    assert_eq!(o.assumed.len(), 6, "{:#?}", o.assumed);
    assert!(o.took < Duration::from_secs(4));
}

/// A bundle as it is when containerd runs `delete` after a normal Task
/// Delete: every file there, the runtime's state gone, the recorded
/// cgroup gone, the rootfs unmounted. Routine: nothing found, nothing
/// assumed. The same bundle with the runtime still holding the
/// container (a dead shim) is not.
fn after_task_delete(d: &Path, id: &str) -> (DeleteRequest, PathBuf, PathBuf) {
    let (r, b) = request(d, id);
    let rt = fake_runtime(d, "exit 0");
    let mut c = robust_config::Config::default();
    c.runtime.root = Some(d.join("roots"));
    c.runtime.binary = rt.display().to_string();
    std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
    std::fs::write(b.join("options.json"), c.to_options_json()).unwrap();
    // a pid below pid_max that is not running (the init is gone)
    let max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|m| m.trim().parse::<i32>().ok())
        .unwrap_or(32768);
    let dead = (2..max).rev().find(|p| !pid_alive(*p)).unwrap();
    std::fs::write(b.join("init.pid"), dead.to_string()).unwrap();
    std::fs::write(b.join("config.json"), "{}").unwrap();
    std::fs::write(
        b.join("address"),
        format!("unix://{}", d.join("no-such.sock").display()),
    )
    .unwrap();
    OwnerRecord {
        id: id.into(),
        init_pid: dead,
        init_start: 1,
        pid_ns: None,
        shared_init: false,
        cgroup: vec![owner::CgroupDir {
            controller: "pids".into(),
            path: d.join("cgroup-gone"),
            ino: 1,
        }],
        not_owned: None,
    }
    .write(&b)
    .unwrap();
    std::fs::create_dir(b.join("rootfs")).unwrap();
    let state = d.join("roots").join("default").join(id);
    (r, b, state)
}

#[test]
fn a_delete_after_a_normal_task_delete_is_routine() {
    let reaper = test_reaper();
    let d = tempfile::tempdir().unwrap();
    let (r, _b, _) = after_task_delete(d.path(), "c6");
    let o = delete_bundle(&r, &reaper).unwrap();
    assert!(o.is_clean(), "{:?}", o.remains);
    assert!(o.found.is_empty(), "{:?}", o.found);
    assert!(o.assumed.is_empty(), "{:#?}", o.assumed);
    assert!(o.is_routine());

    // The runtime still holds it: a shim died before deleting it.
    let (r, _b, state) = after_task_delete(d.path(), "c7");
    std::fs::create_dir_all(&state).unwrap();
    let o = delete_bundle(&r, &reaper).unwrap();
    assert_eq!(o.found, ["runtime state (runc)"], "{:?}", o.found);
    assert!(!o.is_routine());

    // A bundle file missing is never routine.
    let (r, b, _) = after_task_delete(d.path(), "c8");
    std::fs::remove_file(b.join("init.pid")).unwrap();
    let o = delete_bundle(&r, &reaper).unwrap();
    assert!(o.found.is_empty(), "{:?}", o.found);
    assert!(
        o.assumed.iter().any(|a| a.starts_with("init.pid missing")),
        "{:#?}",
        o.assumed
    );
    assert!(!o.is_routine());
}

#[test]
fn a_hanging_runtime_is_bounded_and_reported() {
    let reaper = test_reaper();
    let d = tempfile::tempdir().unwrap();
    let (mut r, b) = request(d.path(), "c2");
    r.limits.runtime_call = Duration::from_millis(300);
    let rt = fake_runtime(d.path(), "sleep 30");
    std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
    std::fs::write(b.join("init.pid"), "77777777").unwrap();
    // runc's state dir of the container, under the default root of
    // this config: it stays, and is reported.
    let mut c = robust_config::Config::default();
    c.runtime.root = Some(d.path().join("roots"));
    c.runtime.binary = rt.display().to_string();
    std::fs::write(b.join("options.json"), c.to_options_json()).unwrap();
    let st = d.path().join("roots/default/c2");
    std::fs::create_dir_all(&st).unwrap();
    let t = Instant::now();
    let o = delete_bundle(&r, &reaper).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // 77777777 is beyond any pid_max: unknown, and the hung runtime
    // names none either, so the pid is 0 (docs/cleanup.md).
    assert_eq!(o.pid, 0);
    assert!(
        o.assumed.iter().any(|a| a.contains("pid_max")),
        "{:#?}",
        o.assumed
    );
    assert_eq!(o.remains.len(), 1, "{:?}", o.remains);
    match &o.remains[0] {
        Remain::RuntimeState { what, why } => {
            assert!(what.contains(&st.display().to_string()), "{what}");
            assert!(why.contains("no answer"), "{why}");
        }
        other => panic!("expected the runtime state to remain: {other:?}"),
    }
    let msg = o.error_message().unwrap();
    assert!(msg.contains(&st.display().to_string()), "{msg}");
}

#[test]
fn not_running_falls_back_to_a_plain_delete() {
    let reaper = test_reaper();
    let d = tempfile::tempdir().unwrap();
    let (r, b) = request(d.path(), "c3");
    let log = d.path().join("calls");
    let rt = fake_runtime(
        d.path(),
        &format!(
            "echo \"$@\" >> {0}\ncase \"$*\" in *--force*) echo 'cannot signal container in state created' >&2; exit 1;; esac\nexit 0",
            log.display()
        ),
    );
    std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
    std::fs::write(b.join("init.pid"), "1").unwrap();
    let o = delete_bundle(&r, &reaper).unwrap();
    assert!(o.is_clean(), "{:?}", o.remains);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 2, "{calls}");
    // pid 1 is alive but is not the container's: reported, never killed.
    assert_eq!(o.pid, 1);
    assert!(
        o.assumed.iter().any(|a| a.contains("nothing confirms")),
        "{:#?}",
        o.assumed
    );
}

/// With runsc every container of a pod has the pod sandbox's host pid.
/// The delete of an app container (its spec says so) never kills that
/// pid, even when the shim's record confirms it; the container that
/// owns its sandbox does.
#[test]
fn a_runsc_app_container_never_kills_the_pods_sandbox_pid() {
    let reaper = test_reaper();
    for (kind, killed) in [("container", false), ("sandbox", true)] {
        let d = tempfile::tempdir().unwrap();
        let id = format!("rs-{kind}");
        let (r, b) = request(d.path(), &id);
        let rt = fake_runtime(d.path(), "exit 0");
        let mut c = robust_config::Config::default();
        c.runtime.root = Some(d.path().join("roots"));
        c.runtime.binary = rt.display().to_string();
        c.runtime.kind = Some(robust_config::RuntimeKind::Runsc);
        std::fs::write(b.join("options.json"), c.to_options_json()).unwrap();
        // the "sandbox": a live process, recorded as this container's init
        let mut sandbox = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = sandbox.id() as i32;
        std::fs::write(b.join("init.pid"), pid.to_string()).unwrap();
        let scope = owner::Scope::new(&b, &[]);
        OwnerRecord::observe(&id, pid, None, &scope)
            .write(&b)
            .unwrap();
        std::fs::write(
            b.join("config.json"),
            format!(
                r#"{{"annotations":{{"io.kubernetes.cri.container-type":"{kind}","io.kubernetes.cri.sandbox-id":"rs-sandbox"}}}}"#
            ),
        )
        .unwrap();
        let o = delete_bundle(&r, &reaper).unwrap();
        assert_eq!(o.pid, pid as u32);
        let alive = pid_alive(pid);
        let _ = sandbox.kill();
        let _ = sandbox.wait();
        assert_eq!(
            !alive,
            killed,
            "{kind}: the sandbox pid {} by the delete",
            if alive { "survived" } else { "was killed" }
        );
    }
}

#[test]
fn a_symlinked_rootfs_is_not_followed() {
    let reaper = test_reaper();
    let d = tempfile::tempdir().unwrap();
    let (r, b) = request(d.path(), "c4");
    let rt = fake_runtime(d.path(), "exit 0");
    std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
    // A mount outside the bundle, and a rootfs that is a symlink to it:
    // cleanup must leave it mounted (other mounts of the machine may come
    // and go meanwhile, so only this one is checked).
    let canary = d.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &canary,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(canary.join("keep"), "x").unwrap();
    std::os::unix::fs::symlink(&canary, b.join("rootfs")).unwrap();
    let o = delete_bundle(&r, &reaper);
    let still_mounted = mount::mounts_under(&canary).contains(&canary);
    let kept = canary.join("keep").exists();
    let _ = nix::mount::umount2(&canary, nix::mount::MntFlags::MNT_DETACH);
    let o = o.unwrap();
    assert!(o.is_clean(), "{:?}", o.remains);
    assert!(
        still_mounted,
        "the mount the rootfs symlink points at was unmounted"
    );
    assert!(kept, "a file behind the rootfs symlink was removed");
    assert!(o.assumed.iter().any(|a| a.contains("rootfs is a symlink")));
}

#[test]
fn scan_finds_a_custom_root_by_its_bundle_label() {
    let d = tempfile::tempdir().unwrap();
    let b = PathBuf::from("/run/x/default/c1");
    let st = d.path().join("custom/runc/default/c1");
    std::fs::create_dir_all(&st).unwrap();
    std::fs::write(
        st.join("state.json"),
        r#"{"init_process_pid":5,"config":{"labels":["bundle=/run/x/default/c1"]}}"#,
    )
    .unwrap();
    let other = d.path().join("other/default/c1");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("state.json"),
        r#"{"init_process_pid":5,"config":{"labels":["bundle=/elsewhere/c1"]}}"#,
    )
    .unwrap();
    assert_eq!(
        scan_for_roots(d.path(), "default", "c1", &b),
        vec![d.path().join("custom/runc")]
    );
}

#[test]
fn budget_caps_and_logs() {
    let b = Budget {
        deadline: Instant::now() + Duration::from_secs(3),
        id: "c".into(),
    };
    let got = b.cap(
        "x",
        Duration::from_secs(10),
        Duration::from_millis(1500),
        Duration::ZERO,
    );
    assert_eq!(got, Duration::from_millis(1500));
    let got = b.cap(
        "x",
        Duration::from_secs(10),
        Duration::from_millis(1500),
        Duration::from_millis(2900),
    );
    assert!(got <= Duration::from_millis(150), "{got:?}");
    assert!(got >= MIN_STEP);
    let got = b.cap(
        "x",
        Duration::from_millis(200),
        Duration::from_millis(1500),
        Duration::ZERO,
    );
    assert_eq!(got, Duration::from_millis(200));
}
