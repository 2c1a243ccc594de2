//! The crate's text parsers of procfs and cgroupfs files, for the fuzz
//! targets in `fuzz/` (see `docs/fuzzing.md`). Not a stable API: the shim
//! itself uses [`crate::Cgroup`].
//!
//! Each function is the crate-internal parser of the same name, with its
//! result in plain types.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::{cgroup, mountinfo, parse};

/// One line of `/proc/<pid>/cgroup`: `(hierarchy id, controllers, path)`.
pub type ProcCgroupLine = (u32, Vec<String>, String);

/// One mountinfo line: `(root, mount point, fs type, super options)`.
pub type MountLine = (String, PathBuf, String, Vec<String>);

/// `/proc/<pid>/cgroup`, parsed.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<ProcCgroupLine>, String> {
    Ok(parse::parse_proc_cgroup(text)?
        .into_iter()
        .map(|e| (e.hierarchy_id, e.controllers, e.path))
        .collect())
}

/// `/proc/<pid>/mountinfo`, parsed (malformed lines skipped).
pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    mountinfo::parse(text)
        .into_iter()
        .map(|m| (m.root, m.mount_point, m.fs_type, m.super_options))
        .collect()
}

/// What [`crate::Cgroup::for_pid`] finds for a process, from the texts of
/// its `/proc/<pid>/cgroup` and of `/proc/self/mountinfo`: the v1
/// controller directories and the v2 directory. `Err` when the
/// `/proc/<pid>/cgroup` text does not parse.
#[allow(clippy::type_complexity)]
pub fn resolve(
    proc_cgroup: &str,
    mountinfo: &str,
) -> Result<(Vec<(String, PathBuf)>, Option<PathBuf>), String> {
    let entries = parse::parse_proc_cgroup(proc_cgroup)?;
    let mounts = mountinfo::parse(mountinfo);
    let v1 = cgroup::resolve_v1(&entries, &mounts).into_iter().collect();
    let v2 = cgroup::resolve_v2(&entries, &mounts);
    Ok((v1, v2))
}

/// A flat-keyed file (`memory.stat`, `cpu.stat`, `memory.events`).
pub fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    parse::parse_flat_keyed(text)
}

/// A single-value file (`memory.max`, `pids.current`); `max` is `max_value`.
pub fn parse_single(text: &str, max_value: u64) -> Option<u64> {
    parse::parse_single(text, max_value)
}

/// `/proc/partitions`: `(major, minor) -> /dev/<name>`.
pub fn parse_partitions(text: &str) -> HashMap<(u64, u64), String> {
    parse::parse_partitions(text)
}

/// A `/sys/kernel/mm/hugepages` entry name as a hugetlb size label.
pub fn hugepage_label(dir_name: &str) -> Option<String> {
    parse::hugepage_label(dir_name)
}

/// `rdma.current` / `rdma.max`: `(device, hca_handle, hca_object)`.
pub fn parse_rdma(text: &str) -> Vec<(String, u32, u32)> {
    parse::parse_rdma(text)
}
