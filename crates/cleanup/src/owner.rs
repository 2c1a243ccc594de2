//! The ownership rule: what the shim must have proven before it kills,
//! thaws or removes anything through a container's cgroup.
//!
//! A path in `config.json` or a pid in `init.pid` is only a claim: a
//! hand-made bundle, two containers given the same `cgroupsPath`, or a
//! container placed in the parent cgroup of another would turn a cgroup
//! kill into the killing of bystanders. So the shim kills through a
//! cgroup only when all of this holds:
//!
//! 1. **Recorded.** The daemon recorded the cgroup itself when it created
//!    the container ([`OwnerRecord::observe`], kept in memory and in the
//!    bundle as [`RECORD_FILE`]): the cgroup of the init it saw the runtime
//!    start, which at that moment held nothing but the shim's own
//!    descendants (the init; a sandbox runtime's sandbox and gofer) and no other
//!    container. Each directory is recorded with its inode.
//! 2. **Still that cgroup.** Each recorded directory exists with the
//!    recorded inode: a cgroup removed and made again (by another
//!    container given the same path) is not ours.
//! 3. **Alone.** No other container uses the same cgroup or one below it:
//!    no runtime state under the runtime roots (the cgroups a state
//!    names, the cgroup of a live sandbox it names), no other bundle
//!    (its record, the cgroup of its live init, its `config.json`
//!    `cgroupsPath`). Anything read here only ever stops a kill.
//!
//! The record and the proof are here; the search for other containers is
//! in `alone`, the kill through a proven cgroup in `kill`.
//!
//! What is then killed ([`Owned::kill`]): the processes of the cgroup's own
//! directory, and those of its sub-cgroups only when they are in the
//! container's own pid namespace while its init lives. A process in a
//! sub-cgroup outside it is never touched (it is logged). When the rule
//! does not hold, nothing is killed through the cgroup: the caller relies
//! on the runtime (`runc delete --force` of a state that exists, a kill of
//! an init confirmed by pid and start time) and logs why.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use robust_bundle::{self as bundle, read_file, Input};
use robust_cgroups::Cgroup;
use serde::{Deserialize, Serialize};

use crate::cgroup::{self as cg, join_pids, pid_alive, proc_start_time};

mod alone;
mod kill;
#[cfg(test)]
mod tests;

pub use alone::conflict;
pub use kill::{Killed, Owned};

/// The record's file name in the bundle.
pub const RECORD_FILE: &str = "robust-owner.json";

/// One directory of a recorded cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    /// v1 controller (`pids`, `memory`, `name=systemd`, ...); empty for v2.
    pub controller: String,
    pub path: PathBuf,
    /// Inode of the directory when it was recorded.
    pub ino: u64,
}

/// What the shim saw when it created a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub id: String,
    pub init_pid: i32,
    /// Start time of the init (clock ticks since boot): with the pid, it
    /// names that one process.
    pub init_start: u64,
    /// Inode of the init's pid namespace when it is not the shim's own.
    #[serde(default)]
    pub pid_ns: Option<u64>,
    /// The init pid is not the container's alone: an app container of a
    /// gVisor pod reports the pod's sandbox. It is then never killed for
    /// this container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_init: bool,
    /// The container's cgroup; empty when it was not the container's alone
    /// at create (then [`OwnerRecord::not_owned`] says why).
    #[serde(default)]
    pub cgroup: Vec<CgroupDir>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_owned: Option<String>,
}

/// Where other containers are looked for.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// This container's bundle (`<state>/<ns>/<id>`): every other bundle
    /// under `<state>` is looked at.
    pub bundle: PathBuf,
    /// Runtime roots, each holding the states of its family's layout
    /// (`robust_runtime::held_in`): every state not of this bundle is
    /// looked at.
    pub runtime_roots: Vec<PathBuf>,
}

impl Scope {
    /// The default runtime roots ([`crate::runtime_choice::PROBE_ROOTS`]) plus
    /// `extra` (the container's own runtime root, which may be a custom one).
    pub fn new(bundle: &Path, extra: &[PathBuf]) -> Scope {
        let mut roots: Vec<PathBuf> = crate::runtime_choice::PROBE_ROOTS
            .iter()
            .map(PathBuf::from)
            .collect();
        for r in extra {
            if !roots.contains(r) {
                roots.push(r.clone());
            }
        }
        Scope {
            bundle: bundle.to_path_buf(),
            runtime_roots: roots,
        }
    }
}

impl OwnerRecord {
    /// Record `init_pid`, just created by the runtime, and its cgroup
    /// `cgroup` (as found from `/proc/<init>/cgroup`). The cgroup is
    /// recorded as the container's only when it holds nothing but this
    /// process's descendants and no other container in `scope` uses it.
    pub fn observe(id: &str, init_pid: i32, cgroup: Option<&Cgroup>, scope: &Scope) -> OwnerRecord {
        let mut rec = OwnerRecord {
            id: id.to_string(),
            init_pid,
            init_start: proc_start_time(init_pid).unwrap_or(0),
            pid_ns: foreign_pid_ns(init_pid),
            shared_init: false,
            cgroup: Vec::new(),
            not_owned: None,
        };
        let why = match (rec.init_start, cgroup) {
            (0, _) => Some(format!("init {init_pid} was not alive at create")),
            (_, None) => Some("the init's cgroup could not be read".into()),
            (_, Some(c)) => match fresh_dirs(c, init_pid) {
                Err(why) => Some(why),
                Ok(dirs) => match conflict(scope, &dirs) {
                    Some(who) => Some(who),
                    None => {
                        rec.cgroup = dirs;
                        None
                    }
                },
            },
        };
        rec.not_owned = why;
        rec
    }

    /// Write the record into the bundle (atomically).
    pub fn write(&self, bundle: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        bundle::write_atomic(bundle, RECORD_FILE, &json)
    }

    /// Read the bundle's record, without following a symlink.
    pub fn read(bundle: &Path) -> Input<OwnerRecord> {
        read_file(bundle, RECORD_FILE).decode(|b| {
            serde_json::from_slice::<OwnerRecord>(&b).map_err(|e| format!("invalid json: {e}"))
        })
    }

    /// Whether the recorded init is alive (same pid, same start time) and
    /// the container's own: the one process the cleanup may kill by pid.
    pub fn owns_live_init(&self) -> bool {
        !self.shared_init && self.init_alive()
    }

    /// Whether the recorded init is alive: same pid, same start time.
    pub fn init_alive(&self) -> bool {
        self.init_pid > 0
            && self.init_start > 0
            && pid_alive(self.init_pid)
            && proc_start_time(self.init_pid) == Some(self.init_start)
    }

    /// The processes now in the recorded cgroup's own directory, for the
    /// log line that says what was not killed when the rule does not hold.
    pub fn pids_now(&self) -> Vec<u32> {
        if self.cgroup.is_empty() {
            return Vec::new();
        }
        to_cgroup(&self.cgroup)
            .procs_tree()
            .ok()
            .and_then(|t| t.into_iter().next())
            .map(|(_, pids)| pids)
            .unwrap_or_default()
    }

    /// Check the rule against the machine as it is now. `Err` says why
    /// nothing may be killed through the cgroup.
    pub fn prove(&self, scope: &Scope) -> Result<Owned, NotProven> {
        if self.cgroup.is_empty() {
            return Err(NotProven::Unproven(
                self.not_owned
                    .clone()
                    .unwrap_or_else(|| "no cgroup was recorded at create".into()),
            ));
        }
        let mut present = Vec::new();
        for d in &self.cgroup {
            match std::fs::symlink_metadata(&d.path) {
                Ok(m) if m.is_dir() && m.ino() == d.ino => present.push(d.clone()),
                Ok(_) => {
                    return Err(NotProven::Unproven(format!(
                        "cgroup {} is not the directory recorded at create (made again since)",
                        d.path.display()
                    )))
                }
                Err(_) => {}
            }
        }
        if present.is_empty() {
            return Err(NotProven::Gone);
        }
        if let Some(who) = conflict(scope, &present) {
            return Err(NotProven::Unproven(who));
        }
        let cgroup = to_cgroup(&present);
        Ok(Owned {
            cgroup,
            dirs: present.into_iter().map(|d| d.path).collect(),
            pid_ns: self.pid_ns.filter(|_| self.init_alive()),
        })
    }
}

/// Why nothing may be killed through a container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotProven {
    /// The recorded cgroup is gone (the runtime removed it): nothing of the
    /// container can be in it. The normal case after a delete.
    #[error("the recorded cgroup no longer exists")]
    Gone,
    /// The rule does not hold: why.
    #[error("{0}")]
    Unproven(String),
}

/// The inode of `pid`'s pid namespace when it differs from this process's.
fn foreign_pid_ns(pid: i32) -> Option<u64> {
    let theirs = pid_ns_of(pid)?;
    (pid_ns_of(std::process::id() as i32) != Some(theirs)).then_some(theirs)
}

/// The inode of `pid`'s pid namespace (`pid:[N]`).
fn pid_ns_of(pid: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    link.to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

pub use robust_runtime::procfs::{parent_of, parse_ppid};

/// Whether `pid` descends from `ancestor` (not itself).
fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut p = pid;
    for _ in 0..128 {
        match parent_of(p) {
            Some(pp) if pp == ancestor => return true,
            Some(pp) if pp > 1 && pp != p => p = pp,
            _ => return false,
        }
    }
    false
}

/// The controller name under which the (controller-less) cgroup2 directory
/// of a hybrid host is recorded: removed with the rest, never listed.
const HYBRID_UNIFIED: &str = "unified";

/// The cgroup's directories, if it is fresh: not a hierarchy root, and
/// every process in it or below descends from this process.
fn fresh_dirs(c: &Cgroup, init_pid: i32) -> Result<Vec<CgroupDir>, String> {
    let mounts = cg::own_cgroup_mounts();
    let roots: Vec<&Path> = mounts.iter().map(|m| m.mount_point.as_path()).collect();
    let mut pairs: Vec<(String, PathBuf)> = match c.unified_path() {
        Some(p) => vec![(String::new(), p.to_path_buf())],
        None => c
            .v1_paths()
            .map(|(k, p)| (k.to_string(), p.to_path_buf()))
            .collect(),
    };
    if c.unified_path().is_none() {
        // A hybrid host: runc also makes the cgroup in the v2 tree.
        let own = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup")).unwrap_or_default();
        let v2 = mounts.iter().find(|m| m.v2 && m.root == "/");
        if let (Some(rel), Some(m)) = (own.lines().find_map(|l| l.strip_prefix("0::")), v2) {
            let rel = rel.trim_start_matches('/');
            if !rel.is_empty() && !rel.split('/').any(|c| c == "..") {
                pairs.push((HYBRID_UNIFIED.into(), m.mount_point.join(rel)));
            }
        }
    }
    let mut dirs = Vec::new();
    for (controller, path) in pairs {
        if roots.contains(&path.as_path()) {
            return Err(format!(
                "cgroup {} is the root of a hierarchy",
                path.display()
            ));
        }
        let ino = std::fs::symlink_metadata(&path)
            .map_err(|e| format!("cgroup {}: {e}", path.display()))?
            .ino();
        dirs.push(CgroupDir {
            controller,
            path,
            ino,
        });
    }
    if dirs.is_empty() {
        return Err("the init's cgroup has no directory".into());
    }
    let me = std::process::id() as i32;
    let foreign: Vec<u32> = c
        .pids()
        .map_err(|e| format!("cannot list the cgroup's processes: {e}"))?
        .into_iter()
        .filter(|p| !descends_from(*p as i32, me))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "cgroup {} already held processes that are not the container's: {}",
            dirs[0].path.display(),
            join_pids(&foreign)
        ));
    }
    Ok(dirs)
}

fn to_cgroup(dirs: &[CgroupDir]) -> Cgroup {
    match dirs.iter().find(|d| d.controller.is_empty()) {
        Some(d) => Cgroup::from_v2_path(d.path.clone()),
        None => Cgroup::from_v1_paths(
            dirs.iter()
                .filter(|d| d.controller != HYBRID_UNIFIED)
                .map(|d| (d.controller.clone(), d.path.clone()))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}
