//! The processes of a cgroup and of its sub-cgroups, from `cgroup.procs`.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Cgroup, Inner, CGROUP_ROOT};
use crate::error::CgroupError;
use crate::files;

impl Cgroup {
    /// Every pid (thread-group id) in the cgroup and in its sub-cgroups,
    /// sorted and without duplicates.
    ///
    /// cgroup v1 reads `cgroup.procs` of the `pids` controller, falling back
    /// to `memory`, `freezer`, `cpu`, `cpuacct` and then any attached
    /// controller; cgroup v2 reads the unified `cgroup.procs`.
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        let mut out: Vec<u32> = self
            .procs_tree()?
            .into_iter()
            .flat_map(|(_, pids)| pids)
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The pids of the cgroup's own directory and of each sub-cgroup, one
    /// entry per directory, the cgroup's own first; read from the same
    /// directory as [`Cgroup::pids`]. Unlike `pids`, it tells a process of
    /// the cgroup itself from one placed in a sub-cgroup, which may belong
    /// to someone else.
    pub fn procs_tree(&self) -> Result<Vec<(PathBuf, Vec<u32>)>, CgroupError> {
        let top = self.procs_dir()?;
        let mut out = Vec::new();
        collect_tree(top, true, &mut out)?;
        Ok(out)
    }

    fn procs_dir(&self) -> Result<&Path, CgroupError> {
        match &self.inner {
            Inner::V2(p) => Ok(p),
            Inner::V1(map) => {
                const PREFERRED: [&str; 5] = ["pids", "memory", "freezer", "cpu", "cpuacct"];
                PREFERRED
                    .iter()
                    .filter_map(|c| map.get(*c))
                    .chain(map.values())
                    .find(|p| p.is_dir())
                    .map(PathBuf::as_path)
                    .ok_or_else(|| CgroupError::NotFound {
                        path: map
                            .values()
                            .next()
                            .cloned()
                            .unwrap_or_else(|| PathBuf::from(CGROUP_ROOT)),
                    })
            }
        }
    }
}

/// Reads `cgroup.procs` of `dir` and of all its descendants.
///
/// A sub-cgroup vanishing while we walk is not an error; the top directory
/// vanishing is ([`CgroupError::NotFound`]).
/// The pids of `dir/cgroup.procs` alone; `NotFound` when it is not there.
fn collect_pids_here(dir: &Path, out: &mut Vec<u32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = files::read_optional(&procs)? else {
        return Err(CgroupError::NotFound {
            path: dir.to_path_buf(),
        });
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid = line.parse().map_err(|_| CgroupError::Parse {
            path: procs.clone(),
            reason: format!("invalid pid {line:?}"),
        })?;
        out.push(pid);
    }
    Ok(())
}

fn collect_tree(
    dir: &Path,
    top: bool,
    out: &mut Vec<(PathBuf, Vec<u32>)>,
) -> Result<(), CgroupError> {
    let mut here = Vec::new();
    match collect_pids_here(dir, &mut here) {
        Ok(()) => {}
        Err(CgroupError::NotFound { .. }) if !top => return Ok(()),
        Err(e) => return Err(e),
    }
    out.push((dir.to_path_buf(), here));
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if files::is_missing(&e) => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_tree(&entry.path(), false, out)?;
        }
    }
    Ok(())
}
