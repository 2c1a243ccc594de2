//! procfs and cgroupfs texts: `/proc/<pid>/cgroup`, `/proc/self/mountinfo`,
//! `/proc/<pid>/stat`, flat-keyed and single-value cgroup files,
//! `/proc/partitions`, `rdma.*` (robust-cgroups), and the cleanup's own
//! reading of them: the cgroup mounts, the resolution of a spec's
//! `linux.cgroupsPath`, the match of a pid's cgroup against it, a
//! process's start time (robust-cleanup).
//!
//! Input: five parts separated by 0xff bytes: a `/proc/<pid>/cgroup` text
//! (also used as `/proc/self/cgroup`), a mountinfo text, a cgroupsPath, a
//! `/proc/<pid>/stat` text, a cgroup file's text.
//!
//! Properties: no panic, no hang; every directory found is strictly below
//! the mount point of a cgroup mount of that mountinfo and has no `.` or
//! `..` component (a container's cgroup is what the cleanup kills and
//! removes: it must never name a directory outside the cgroup mounts);
//! both crates read the same mount point from the same mountinfo line.
#![no_main]

use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use robust_cgroups::fuzzing as cg;
use robust_cleanup::cgroup as cc;
use robust_fuzz::split;

fn below(dir: &Path, mount_points: &[PathBuf], what: &str) {
    assert!(
        dir.components()
            .all(|c| !matches!(c, Component::ParentDir | Component::CurDir)),
        "{what}: {dir:?} has a . or .. component"
    );
    assert!(
        mount_points
            .iter()
            .any(|m| dir.starts_with(m) && dir != m.as_path()),
        "{what}: {dir:?} is not below any of {mount_points:?}"
    );
}

/// A mount point as the kernel writes it: absolute, no `.` or `..`.
/// Directories below other mount points are not checked (a mountinfo
/// text is the kernel's; it never holds one).
fn canonical(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn message(what: &str, msg: &str) {
    assert!(!msg.trim().is_empty(), "{what}: empty error");
    assert!(!msg.contains('\n'), "{what}: error spans lines: {msg:?}");
}

fuzz_target!(|data: &[u8]| {
    let parts = split(data, 5);
    let text = |i: usize| String::from_utf8_lossy(parts[i].unwrap_or_default()).into_owned();
    let (proc_cgroup, mountinfo, cgroups_path, stat, file) =
        (text(0), text(1), text(2), text(3), text(4));

    // robust-cgroups: Cgroup::for_pid's lookup.
    let mounts = cg::parse_mountinfo(&mountinfo);
    let cmounts = cc::parse_cgroup_mounts(&mountinfo);
    let kernel_like =
        mounts.iter().all(|m| canonical(&m.1)) && cmounts.iter().all(|m| canonical(&m.mount_point));
    match cg::parse_proc_cgroup(&proc_cgroup) {
        Ok(entries) => {
            for (_, controllers, _) in &entries {
                assert!(controllers.iter().all(|c| !c.contains(',')));
            }
        }
        Err(e) => message("proc cgroup", &e),
    }
    if let (true, Ok((v1, v2))) = (kernel_like, cg::resolve(&proc_cgroup, &mountinfo)) {
        let v1_points: Vec<PathBuf> = mounts
            .iter()
            .filter(|m| m.2 == "cgroup")
            .map(|m| m.1.clone())
            .collect();
        for (_, dir) in &v1 {
            // cgroup_dir may give the mount point itself (a process in the
            // root cgroup), never anything above or beside it.
            assert!(
                v1_points.iter().any(|m| dir.starts_with(m)),
                "v1 {dir:?} outside {v1_points:?}"
            );
            assert!(!dir.components().any(|c| matches!(c, Component::ParentDir)));
        }
        if let Some(dir) = &v2 {
            let mut v2_points: Vec<PathBuf> = mounts
                .iter()
                .filter(|m| m.2 == "cgroup2")
                .map(|m| m.1.clone())
                .collect();
            v2_points.push(PathBuf::from(robust_cgroups::CGROUP_ROOT));
            assert!(
                v2_points.iter().any(|m| dir.starts_with(m)),
                "v2 {dir:?} outside {v2_points:?}"
            );
            assert!(!dir.components().any(|c| matches!(c, Component::ParentDir)));
        }
    }

    // robust-cleanup: the dead shim's container cgroup.
    for unified in [false, true] {
        let points: Vec<PathBuf> = cmounts
            .iter()
            .filter(|m| m.v2 == unified)
            .map(|m| m.mount_point.clone())
            .collect();
        match cc::resolve_cgroups_path(&cgroups_path, &cmounts, unified, &proc_cgroup) {
            Ok(resolved) if kernel_like => {
                for dir in resolved.dirs() {
                    below(&dir, &points, "cgroupsPath");
                }
            }
            Ok(_) => {}
            Err(e) => message("cgroupsPath", &e),
        }
    }
    // The same mountinfo line, read by both crates.
    if !mountinfo.contains('\n') {
        if let ([m], [c]) = (mounts.as_slice(), cmounts.as_slice()) {
            if let Some(point) = m.1.to_str() {
                assert_eq!(
                    Path::new(point),
                    c.mount_point,
                    "mount point of {mountinfo:?}"
                );
                assert_eq!(m.0, c.root, "mount root of {mountinfo:?}");
            }
        }
    }

    let _ = cc::parse_start_time(&stat);

    // Cgroup files.
    let _ = cg::parse_flat_keyed(&file);
    let _ = cg::parse_single(&file, u64::MAX);
    let _ = cg::parse_partitions(&file);
    let _ = cg::parse_rdma(&file);
    if let Some(label) = cg::hugepage_label(&file) {
        assert!(["KB", "MB", "GB"].iter().any(|u| label.ends_with(u)));
    }
});
