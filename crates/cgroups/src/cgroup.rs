//! Locating a process's cgroup, listing its pids, freezing and thawing it.
//!
//! Finding a process's cgroup from the mount table is in `resolve`, the
//! pid listing in `procs`, the freezer in `freezer`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use crate::error::CgroupError;
use crate::files;
use crate::metrics::{self, Metrics};
use crate::mountinfo;
use crate::parse;

mod freezer;
mod procs;
mod resolve;
#[cfg(test)]
mod tests;

pub(crate) use resolve::{resolve_v1, resolve_v2};

/// Where cgroup filesystems are mounted on every supported distribution.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup interface a [`Cgroup`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// cgroup v1: one directory per controller hierarchy (also used on
    /// "hybrid" hosts, where an empty cgroup2 tree sits next to them).
    V1,
    /// cgroup v2: a single unified directory.
    V2,
}

/// Returns true when `/sys/fs/cgroup` is a cgroup2 filesystem (unified mode).
///
/// Hybrid hosts, which mount v1 controllers under `/sys/fs/cgroup/<name>` and
/// an (empty) cgroup2 tree at `/sys/fs/cgroup/unified`, are *not* unified.
pub fn is_unified() -> Result<bool, CgroupError> {
    let st = statfs(CGROUP_ROOT).map_err(|source| CgroupError::Sys {
        op: "statfs",
        path: PathBuf::from(CGROUP_ROOT),
        source,
    })?;
    Ok(st.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// A cgroup (typically: a container's), read-only except for the freezer.
///
/// Cheap to clone; holds only paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inner {
    /// Controller name (`memory`, `cpu`, `name=systemd`, ...) -> directory.
    V1(BTreeMap<String, PathBuf>),
    /// The unified directory.
    V2(PathBuf),
}

impl Cgroup {
    /// Finds the cgroup of process `pid` by reading `/proc/<pid>/cgroup` and
    /// mapping it onto the cgroup mounts listed in `/proc/self/mountinfo`.
    ///
    /// The mode (v1 or unified v2) is detected with `statfs(/sys/fs/cgroup)`.
    pub fn for_pid(pid: u32) -> Result<Cgroup, CgroupError> {
        let proc_path = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = fs::read_to_string(&proc_path).map_err(|source| CgroupError::ProcCgroup {
            pid,
            path: proc_path.clone(),
            source,
        })?;
        let entries = parse::parse_proc_cgroup(&text).map_err(|reason| CgroupError::Parse {
            path: proc_path.clone(),
            reason,
        })?;
        let mountinfo_path = Path::new("/proc/self/mountinfo");
        let mounts = mountinfo::parse(&files::read(mountinfo_path)?);
        if is_unified()? {
            resolve_v2(&entries, &mounts)
                .map(Cgroup::from_v2_path)
                .ok_or_else(|| CgroupError::NoCgroup {
                    pid,
                    detail: "no `0::` entry in /proc/<pid>/cgroup or no cgroup2 mount".into(),
                })
        } else {
            let paths = resolve_v1(&entries, &mounts);
            if paths.is_empty() {
                return Err(CgroupError::NoCgroup {
                    pid,
                    detail: "no cgroup v1 controller of the process is mounted".into(),
                });
            }
            Ok(Cgroup {
                inner: Inner::V1(paths),
            })
        }
    }

    /// A cgroup v1 cgroup made of explicit `(controller, directory)` pairs,
    /// e.g. `[("memory", "/sys/fs/cgroup/memory/foo")]`.
    pub fn from_v1_paths<I, K, P>(paths: I) -> Cgroup
    where
        I: IntoIterator<Item = (K, P)>,
        K: Into<String>,
        P: Into<PathBuf>,
    {
        Cgroup {
            inner: Inner::V1(
                paths
                    .into_iter()
                    .map(|(k, p)| (k.into(), p.into()))
                    .collect(),
            ),
        }
    }

    /// A cgroup v2 cgroup at `path` (e.g. `/sys/fs/cgroup/system.slice/foo`).
    pub fn from_v2_path(path: impl Into<PathBuf>) -> Cgroup {
        Cgroup {
            inner: Inner::V2(path.into()),
        }
    }

    /// The cgroup interface in use.
    pub fn version(&self) -> CgroupVersion {
        match self.inner {
            Inner::V1(_) => CgroupVersion::V1,
            Inner::V2(_) => CgroupVersion::V2,
        }
    }

    /// The directory of `controller` (v1), or the unified directory (v2,
    /// where all controllers share one directory).
    pub fn controller_path(&self, controller: &str) -> Option<&Path> {
        match &self.inner {
            Inner::V1(map) => map.get(controller).map(PathBuf::as_path),
            Inner::V2(p) => Some(p),
        }
    }

    /// The unified directory; `None` for cgroup v1.
    pub fn unified_path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::V1(_) => None,
            Inner::V2(p) => Some(p),
        }
    }

    /// All v1 `(controller, directory)` pairs; empty for cgroup v2.
    pub fn v1_paths(&self) -> impl Iterator<Item = (&str, &Path)> {
        let map = match &self.inner {
            Inner::V1(map) => Some(map),
            Inner::V2(_) => None,
        };
        map.into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_path())))
    }

    /// Collects the container's statistics, see [`Metrics`].
    pub fn metrics(&self) -> Result<Metrics, CgroupError> {
        match &self.inner {
            Inner::V1(map) => metrics::v1::collect(map).map(Metrics::V1),
            Inner::V2(dir) => metrics::v2::collect(dir).map(Metrics::V2),
        }
    }

    /// How many processes the OOM killer has killed in this cgroup: v1
    /// `memory.oom_control` (`oom_kill`, kernel 4.13+), v2 `memory.events`.
    /// `None` when the memory controller or the counter is not there.
    pub fn oom_kill_count(&self) -> Option<u64> {
        let (dir, file) = match self.version() {
            CgroupVersion::V1 => (self.controller_path("memory")?, "memory.oom_control"),
            CgroupVersion::V2 => (self.unified_path()?, "memory.events"),
        };
        files::read_flat_key(&dir.join(file), "oom_kill").flatten()
    }
}
