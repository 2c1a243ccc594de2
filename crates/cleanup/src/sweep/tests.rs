//! The sweep over a fake state dir: dry runs, filters, the state dir, a
//! real clean.

use super::*;
use std::os::unix::net::UnixListener;

pub(super) fn bundle(state: &Path, ns: &str, id: &str) -> PathBuf {
    let b = state.join(ns).join(id);
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("shim-binary-path"),
        "/usr/local/bin/containerd-shim-robust-v2",
    )
    .unwrap();
    b
}

#[test]
fn dry_run_lists_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let socks = tempfile::tempdir().unwrap();
    let s = socks.path();
    let live = bundle(d.path(), "default", "live");
    let sock = s.join("live.sock");
    let _l = UnixListener::bind(&sock).unwrap();
    std::fs::write(live.join("address"), format!("unix://{}", sock.display())).unwrap();
    let dead = bundle(d.path(), "default", "dead");
    let other = bundle(d.path(), "k8s.io", "other");
    std::fs::write(
        other.join("shim-binary-path"),
        "/usr/bin/containerd-shim-runc-v2",
    )
    .unwrap();
    std::fs::create_dir_all(d.path().join("default/.hidden")).unwrap();
    let opts = SweepOptions {
        state_dir: d.path().to_path_buf(),
        dry_run: true,
        min_age: Duration::ZERO,
        ..SweepOptions::default()
    };
    let rows = sweep(&opts, None).unwrap();
    let by_id = |id: &str| rows.iter().find(|r| r.id == id).unwrap().clone();
    assert_eq!(by_id("live").action, "skip");
    assert!(by_id("live").shim.starts_with("alive"));
    assert_eq!(by_id("dead").action, "would clean");
    assert!(by_id("other").result.contains("not our shim"));
    assert_eq!(by_id(".hidden").action, "skip");
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(live.exists() && dead.exists() && other.exists());
    // Young bundles are left alone by default.
    let rows = sweep(
        &SweepOptions {
            min_age: Duration::from_secs(3600),
            ..opts.clone()
        },
        None,
    )
    .unwrap();
    assert!(rows
        .iter()
        .find(|r| r.id == "dead")
        .unwrap()
        .result
        .contains("min-age"));
    // Filters.
    let rows = sweep(
        &SweepOptions {
            namespace: Some("k8s.io".into()),
            ..opts.clone()
        },
        None,
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    let rows = sweep(
        &SweepOptions {
            id: Some("dead".into()),
            ..opts.clone()
        },
        None,
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    let t = format_table(&rows);
    assert!(t.starts_with("NAMESPACE"), "{t}");
    assert!(t.contains("would clean"), "{t}");
    assert!(sweep(
        &SweepOptions {
            state_dir: d.path().join("nope"),
            ..opts.clone()
        },
        None
    )
    .is_err());
    let e = sweep(
        &SweepOptions {
            state_dir: d.path().join("default/.."),
            ..opts
        },
        None,
    )
    .unwrap_err();
    assert!(e.contains("\"..\""), "{e}");
}

/// containerd's state dir or its task dir: the same bundles; a dir with
/// no containerd state says where it looked and how to point elsewhere.
#[test]
fn state_dir_is_containerds_or_its_task_dir() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("containerd");
    let tasks = state.join(TASK_DIR);
    bundle(&tasks, "default", "dead");
    std::fs::create_dir_all(state.join("io.containerd.grpc.v1.cri")).unwrap();
    assert_eq!(resolve_state_dir(&state).unwrap(), tasks);
    assert_eq!(resolve_state_dir(&tasks).unwrap(), tasks);
    let opts = |dir: &Path| SweepOptions {
        state_dir: dir.to_path_buf(),
        dry_run: true,
        min_age: Duration::ZERO,
        ..SweepOptions::default()
    };
    for dir in [&state, &tasks] {
        let rows = sweep(&opts(dir), None).unwrap();
        assert_eq!(rows.len(), 1, "{dir:?}: {rows:?}");
        assert_eq!(
            (rows[0].namespace.as_str(), rows[0].id.as_str()),
            ("default", "dead")
        );
    }
    // No containerd there at all.
    let none = d.path().join("nothing-here");
    let e = resolve_state_dir(&none).unwrap_err();
    assert!(e.contains(&none.display().to_string()), "{e}");
    assert!(
        e.contains("no such directory") && e.contains("--state-dir"),
        "{e}"
    );
    // containerd's state dir whose task dir is gone: not read as a namespace.
    std::fs::remove_dir_all(&tasks).unwrap();
    let e = sweep(&opts(&state), None).unwrap_err();
    assert!(e.contains(&tasks.display().to_string()), "{e}");
    assert!(e.contains("--state-dir"), "{e}");
    // A task dir named otherwise (its entries are namespaces) still works.
    let custom = d.path().join("tasks");
    bundle(&custom, "k8s.io", "x");
    assert_eq!(resolve_state_dir(&custom).unwrap(), custom);
    // A plain file.
    std::fs::write(d.path().join("file"), "").unwrap();
    let e = resolve_state_dir(&d.path().join("file")).unwrap_err();
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn sweep_cleans_a_dead_bundle_and_removes_it() {
    let reaper = crate::delete::tests::test_reaper();
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let b = bundle(&state, "default", "dead");
    // containerd's work dir, linked from the bundle.
    let work = d
        .path()
        .join("root/io.containerd.runtime.v2.task/default/dead");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(&work, b.join("work")).unwrap();
    // A runtime that knows nothing of the container.
    let rt = d.path().join("rt");
    std::fs::write(
        &rt,
        "#!/bin/sh\necho 'container does not exist' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
    std::fs::create_dir(b.join("rootfs")).unwrap();
    std::fs::write(b.join("rootfs/file"), "x").unwrap();
    let opts = SweepOptions {
        state_dir: state.clone(),
        min_age: Duration::ZERO,
        ..SweepOptions::default()
    };
    let rows = sweep(&opts, Some(&reaper)).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].failed, "{rows:?}");
    assert!(rows[0].result.starts_with("ok"), "{rows:?}");
    assert!(!b.exists());
    assert!(!work.exists());
    // Again: nothing left to do.
    let rows = sweep(&opts, Some(&reaper)).unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}
