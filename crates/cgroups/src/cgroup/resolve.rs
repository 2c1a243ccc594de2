//! From `/proc/<pid>/cgroup` and the cgroup mounts of the mount table to
//! the directories of a process's cgroup, v1 (one per controller) or v2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CGROUP_ROOT;
use crate::mountinfo::MountInfo;
use crate::parse::{self, ProcCgroupEntry};

/// Picks, among `candidates`, the mount whose root contains `path`
/// (preferring the longest such root), else the first one.
fn best_mount<'a>(candidates: &[&'a MountInfo], path: &str) -> Option<&'a MountInfo> {
    let contains = |m: &MountInfo| {
        let root = m.root.trim_end_matches('/');
        root.is_empty()
            || path == root
            || path
                .strip_prefix(root)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    // Longest containing root first; among equals, mounts below
    // /sys/fs/cgroup, then the earliest mount.
    let rank = |m: &MountInfo| {
        (
            m.root.trim_end_matches('/').len(),
            m.mount_point.starts_with(CGROUP_ROOT),
        )
    };
    let mut best: Option<&'a MountInfo> = None;
    for m in candidates.iter().copied().filter(|m| contains(m)) {
        if !matches!(best, Some(b) if rank(m) <= rank(b)) {
            best = Some(m);
        }
    }
    best.or_else(|| candidates.first().copied())
}

/// Maps the v1 entries of `/proc/<pid>/cgroup` to controller directories.
/// Controllers whose hierarchy is not mounted are left out.
pub(crate) fn resolve_v1(
    entries: &[ProcCgroupEntry],
    mounts: &[MountInfo],
) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.hierarchy_id != 0) {
        for controller in &entry.controllers {
            let candidates: Vec<&MountInfo> = mounts
                .iter()
                .filter(|m| m.fs_type == "cgroup" && m.super_options.contains(controller))
                .collect();
            let Some(mount) = best_mount(&candidates, &entry.path) else {
                log::debug!("cgroup v1 controller {controller} is not mounted");
                continue;
            };
            match parse::cgroup_dir(&mount.mount_point, &mount.root, &entry.path) {
                Some(dir) => {
                    out.insert(controller.clone(), dir);
                }
                None => log::debug!(
                    "cgroup path {} of controller {controller} is outside {}",
                    entry.path,
                    mount.mount_point.display()
                ),
            }
        }
    }
    out
}

/// Maps the `0::path` entry of `/proc/<pid>/cgroup` to its directory.
pub(crate) fn resolve_v2(entries: &[ProcCgroupEntry], mounts: &[MountInfo]) -> Option<PathBuf> {
    let entry = entries
        .iter()
        .find(|e| e.hierarchy_id == 0 && e.controllers.is_empty())?;
    let candidates: Vec<&MountInfo> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
    // Prefer the canonical mount point, then the best root match.
    let mount = candidates
        .iter()
        .copied()
        .find(|m| m.mount_point == Path::new(CGROUP_ROOT))
        .or_else(|| best_mount(&candidates, &entry.path));
    match mount {
        Some(m) => parse::cgroup_dir(&m.mount_point, &m.root, &entry.path),
        None => parse::cgroup_dir(Path::new(CGROUP_ROOT), "/", &entry.path),
    }
}
