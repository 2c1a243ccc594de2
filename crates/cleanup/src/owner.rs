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
//!    descendants (the init, runsc's sandbox and gofer) and no other
//!    container. Each directory is recorded with its inode.
//! 2. **Still that cgroup.** Each recorded directory exists with the
//!    recorded inode: a cgroup removed and made again (by another
//!    container given the same path) is not ours.
//! 3. **Alone.** No other container uses the same cgroup or one below it:
//!    no runtime state under the runtime roots (runc `state.json`
//!    `cgroup_paths`, the cgroup of a live runsc sandbox), no other bundle
//!    (its record, the cgroup of its live init, its `config.json`
//!    `cgroupsPath`). Anything read here only ever stops a kill.
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
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use robust_cgroups::Cgroup;
use serde::{Deserialize, Serialize};

use crate::cgroup::{self as cg, join_pids, pid_alive, proc_start_time};
use crate::logfmt::quote;
use crate::runc_state::read_runc_state;
use robust_bundle::{self as bundle, read_file, FileRead, Input};

/// The record's file name in the bundle.
pub const RECORD_FILE: &str = "robust-owner.json";

/// At most this many entries are looked at per directory of a scan.
const SCAN_LIMIT: usize = 4096;

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
    /// Runtime roots holding `<ns>/<id>/state.json` (runc),
    /// `<id>/state.json` (runc without namespaces) or `<ns>/*.state`
    /// (runsc): every state not of this bundle is looked at.
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

/// A cgroup proven to be the container's alone (see the module docs).
#[derive(Debug, Clone)]
pub struct Owned {
    cgroup: Cgroup,
    dirs: Vec<PathBuf>,
    /// The container's pid namespace, while its init lives.
    pid_ns: Option<u64>,
}

/// What a kill through an owned cgroup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Killed {
    /// Pids signalled.
    pub signalled: Vec<u32>,
    /// Pids of the cgroup's own processes still alive at the end of the wait.
    pub left: Vec<u32>,
    /// Pids in sub-cgroups that are not provably the container's: untouched.
    pub spared: Vec<u32>,
}

impl Owned {
    /// The recorded directories that still exist.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The processes to kill and those to spare, as they are now.
    pub fn targets(&self) -> Result<(Vec<u32>, Vec<u32>), String> {
        let tree = match self.cgroup.procs_tree() {
            Ok(t) => t,
            Err(robust_cgroups::CgroupError::NotFound { .. }) => return Ok(Default::default()),
            Err(e) => return Err(format!("cannot list the cgroup's processes: {e}")),
        };
        let me = std::process::id();
        let (mut kill, mut spare) = (Vec::new(), Vec::new());
        for (i, (_, pids)) in tree.into_iter().enumerate() {
            for p in pids {
                if p == me {
                    return Err(format!(
                        "the cgroup holds this shim process (pid {me}); it is not the container's"
                    ));
                }
                let ours = i == 0 || (self.pid_ns.is_some() && pid_ns_of(p as i32) == self.pid_ns);
                if ours {
                    kill.push(p)
                } else {
                    spare.push(p)
                }
            }
        }
        kill.sort_unstable();
        kill.dedup();
        spare.sort_unstable();
        spare.dedup();
        Ok((kill, spare))
    }

    /// Send `sig` once to the processes of [`Owned::targets`]; returns how
    /// many were signalled.
    pub fn signal(&self, sig: Signal, id: &str) -> Result<usize, String> {
        let (pids, spared) = self.targets()?;
        if !spared.is_empty() {
            log::warn!(
                "msg=\"not signalling processes in sub-cgroups that are not provably the container's\" id={id} signal={sig} pids={}",
                quote(join_pids(&spared))
            );
        }
        Ok(pids
            .iter()
            .filter(|p| kill(Pid::from_raw(**p as i32), sig).is_ok())
            .count())
    }

    /// Thaw the cgroup if frozen, SIGKILL its processes (see
    /// [`Owned::targets`]) and wait up to `wait` for them to go (a zero
    /// `wait` signals once and returns).
    pub fn kill(&self, wait: Duration, id: &str) -> Result<Killed, String> {
        let (first, spared) = self.targets()?;
        let mut out = Killed {
            spared,
            ..Default::default()
        };
        if !out.spared.is_empty() {
            log::warn!(
                "msg=\"not killing processes in sub-cgroups that are not provably the container's\" id={id} pids={}",
                quote(join_pids(&out.spared))
            );
        }
        if first.is_empty() {
            return Ok(out);
        }
        cg::thaw_bounded(&self.cgroup, wait.max(THAW_WAIT), id);
        log::warn!(
            "msg=\"killing processes left in the container's cgroup\" id={id} pids={}",
            quote(join_pids(&first))
        );
        let end = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            let (now, _) = self.targets()?;
            let alive: Vec<u32> = now.into_iter().filter(|p| pid_alive(*p as i32)).collect();
            if alive.is_empty() {
                return Ok(out);
            }
            for p in &alive {
                if kill(Pid::from_raw(*p as i32), Signal::SIGKILL).is_ok()
                    && !out.signalled.contains(p)
                {
                    out.signalled.push(*p);
                }
            }
            if Instant::now() >= end {
                out.left = alive;
                return Ok(out);
            }
            std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// How long a kill waits at least for a frozen cgroup to thaw.
const THAW_WAIT: Duration = Duration::from_millis(500);

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

/// The parent pid (field 4 of `/proc/<pid>/stat`).
pub fn parent_of(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&s)
}

/// Field 4 (ppid) of a `/proc/<pid>/stat` text.
pub fn parse_ppid(stat: &str) -> Option<i32> {
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().nth(1)?.parse().ok()
}

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

/// Another container using one of `dirs` or a cgroup below it: who, for
/// the log; `None` when there is none.
pub fn conflict(scope: &Scope, dirs: &[CgroupDir]) -> Option<String> {
    let mut f = Finder { dirs, found: None };
    other_bundles(scope, &mut f);
    if f.found.is_none() {
        runtime_states(scope, &mut f);
    }
    f.found
}

/// The first other container found in one of `dirs` or below.
struct Finder<'a> {
    dirs: &'a [CgroupDir],
    found: Option<String>,
}

impl Finder<'_> {
    fn check(&mut self, who: impl Fn() -> String, theirs: &[PathBuf]) {
        if self.found.is_some() {
            return;
        }
        for t in theirs {
            if let Some(d) = self.dirs.iter().find(|d| t.starts_with(&d.path)) {
                self.found = Some(format!(
                    "cgroup {} is also used by {} ({})",
                    d.path.display(),
                    who(),
                    t.display()
                ));
                return;
            }
        }
    }
}

fn subdirs(d: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .take(SCAN_LIMIT)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup directories of a live process.
fn dirs_of_pid(pid: i32) -> Vec<PathBuf> {
    if !pid_alive(pid) {
        return Vec::new();
    }
    match Cgroup::for_pid(pid as u32) {
        Ok(c) => match c.unified_path() {
            Some(p) => vec![p.to_path_buf()],
            None => c.v1_paths().map(|(_, p)| p.to_path_buf()).collect(),
        },
        Err(_) => Vec::new(),
    }
}

/// Every other bundle under `<state>` (the bundle's grandparent): its
/// record, its live init, its `cgroupsPath`.
fn other_bundles(scope: &Scope, f: &mut Finder) {
    let Some(state) = scope.bundle.parent().and_then(Path::parent) else {
        return;
    };
    let mounts = cg::own_cgroup_mounts();
    let unified = robust_cgroups::is_unified().unwrap_or(false);
    // Relative paths resolve against the cgroup of whoever ran the runtime:
    // this process's is the best guess there is. Read once for every bundle.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for ns in subdirs(state) {
        for b in subdirs(&ns) {
            if b == scope.bundle {
                continue;
            }
            let who = || format!("the container of bundle {}", b.display());
            if let Input::Ok(r) = OwnerRecord::read(&b) {
                let d: Vec<PathBuf> = r.cgroup.iter().map(|d| d.path.clone()).collect();
                f.check(who, &d);
            }
            if let Some(pid) = bundle::read_pid(&b, "init.pid") {
                f.check(who, &dirs_of_pid(pid));
            }
            if let Some(cp) = bundle::read_spec(&b)
                .ok()
                .and_then(|s| s.cgroups_path.clone())
            {
                if let Ok(r) = cg::resolve_cgroups_path(&cp, &mounts, unified, &own) {
                    f.check(who, &r.dirs());
                }
            }
        }
    }
}

/// Every runtime state under the roots that is not of this bundle.
fn runtime_states(scope: &Scope, f: &mut Finder) {
    let mut seen = std::collections::HashSet::new();
    for root in &scope.runtime_roots {
        for d1 in subdirs(root) {
            // `<root>/<id>/state.json` (runc without namespaces), then
            // `<root>/<ns>/<id>/state.json`.
            let mut dirs = vec![d1.clone()];
            dirs.extend(subdirs(&d1));
            for sd in dirs {
                if !seen.insert(sd.clone()) {
                    continue;
                }
                if let Some(s) = read_runc_state(&sd) {
                    if s.bundle.as_deref() == Some(scope.bundle.as_path()) {
                        continue;
                    }
                    let who = || format!("the runtime state {}", sd.display());
                    let theirs: Vec<PathBuf> =
                        s.cgroup_paths.iter().map(|(_, p)| p.clone()).collect();
                    f.check(who, &theirs);
                }
            }
            // runsc: `<root>/<ns>/<id>_sandbox:<sid>.state`.
            let Ok(rd) = std::fs::read_dir(&d1) else {
                continue;
            };
            for e in rd.flatten().take(SCAN_LIMIT) {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".state") || !name.contains("_sandbox:") {
                    continue;
                }
                let FileRead::Bytes(b) = read_file(&d1, &name) else {
                    continue;
                };
                let Ok(s) = crate::runsc::parse_state(&name, &b) else {
                    continue;
                };
                if s.bundle.as_deref() == Some(scope.bundle.as_path()) || s.sandbox_pid <= 0 {
                    continue;
                }
                let who = || format!("the runsc state {}/{name}", d1.display());
                f.check(who, &dirs_of_pid(s.sandbox_pid));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_parsing() {
        let stat = "1234 (a b) c) S 77 1234 1234 0 -1 4194560";
        assert_eq!(parse_ppid(stat), Some(77));
        assert_eq!(parse_ppid("garbage"), None);
        let me = std::process::id() as i32;
        assert_eq!(parent_of(me), Some(nix::unistd::getppid().as_raw()));
    }

    #[test]
    fn record_round_trip_and_refusals() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("ns").join("c1");
        std::fs::create_dir_all(&b).unwrap();
        assert_eq!(OwnerRecord::read(&b), Input::Missing);
        let rec = OwnerRecord {
            id: "c1".into(),
            init_pid: 42,
            init_start: 7,
            pid_ns: Some(4026531836),
            shared_init: false,
            cgroup: vec![CgroupDir {
                controller: "pids".into(),
                path: d.path().join("cg"),
                ino: 1,
            }],
            not_owned: None,
        };
        rec.write(&b).unwrap();
        assert_eq!(OwnerRecord::read(&b), Input::Ok(rec.clone()));
        std::fs::write(b.join(RECORD_FILE), b"{").unwrap();
        assert!(matches!(OwnerRecord::read(&b), Input::Unusable(_)));
        std::fs::remove_file(b.join(RECORD_FILE)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", b.join(RECORD_FILE)).unwrap();
        assert!(matches!(OwnerRecord::read(&b), Input::Unusable(_)));
    }

    /// A recorded directory made again since (another inode) is not ours;
    /// one that is gone leaves nothing to prove.
    #[test]
    fn prove_checks_the_recorded_inode() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("state").join("ns").join("c1");
        std::fs::create_dir_all(&b).unwrap();
        let cgdir = d.path().join("cg");
        std::fs::create_dir(&cgdir).unwrap();
        let ino = std::fs::metadata(&cgdir).unwrap().ino();
        let mut rec = OwnerRecord {
            id: "c1".into(),
            init_pid: 0,
            init_start: 0,
            pid_ns: None,
            shared_init: false,
            cgroup: vec![CgroupDir {
                controller: String::new(),
                path: cgdir.clone(),
                ino,
            }],
            not_owned: None,
        };
        let scope = Scope {
            bundle: b.clone(),
            runtime_roots: vec![],
        };
        assert!(rec.prove(&scope).is_ok());
        rec.cgroup[0].ino = ino + 1;
        let e = rec.prove(&scope).unwrap_err().to_string();
        assert!(e.contains("made again"), "{e}");
        std::fs::remove_dir(&cgdir).unwrap();
        assert_eq!(rec.prove(&scope).unwrap_err(), NotProven::Gone);
        rec.cgroup.clear();
        rec.not_owned = Some("held others".into());
        assert_eq!(
            rec.prove(&scope).unwrap_err(),
            NotProven::Unproven("held others".into())
        );
    }

    /// Another bundle's record or a runtime state naming the same cgroup,
    /// or one below it, is a conflict; a sibling or the parent is not.
    #[test]
    fn conflicts_with_other_containers() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        let mine = state.join("ns").join("c1");
        let other = state.join("ns2").join("c2");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let cg = |p: &str| CgroupDir {
            controller: "pids".into(),
            path: d.path().join(p),
            ino: 0,
        };
        let scope = Scope {
            bundle: mine.clone(),
            runtime_roots: vec![d.path().join("runc")],
        };
        let record = |path: &str| OwnerRecord {
            id: "c2".into(),
            init_pid: 0,
            init_start: 0,
            pid_ns: None,
            shared_init: false,
            cgroup: vec![cg(path)],
            not_owned: None,
        };
        for (theirs, clash) in [
            ("cg/shared", true),
            ("cg/shared/child", true),
            ("cg", false),
            ("cg/sibling", false),
            ("cg/shared2", false),
        ] {
            record(theirs).write(&other).unwrap();
            let got = conflict(&scope, &[cg("cg/shared")]);
            assert_eq!(got.is_some(), clash, "{theirs}: {got:?}");
        }
        std::fs::remove_file(other.join(RECORD_FILE)).unwrap();
        // Our own record is not a conflict.
        record("cg/shared").write(&mine).unwrap();
        assert_eq!(conflict(&scope, &[cg("cg/shared")]), None);
        // A runc state of another bundle.
        let st = d.path().join("runc").join("ns").join("c3");
        std::fs::create_dir_all(&st).unwrap();
        let json = |bundle: &Path| {
            serde_json::json!({
                "init_process_pid": 1,
                "cgroup_paths": {"pids": d.path().join("cg/shared").display().to_string()},
                "config": {"labels": [format!("bundle={}", bundle.display())]}
            })
            .to_string()
        };
        std::fs::write(st.join("state.json"), json(&mine)).unwrap();
        assert_eq!(conflict(&scope, &[cg("cg/shared")]), None);
        std::fs::write(st.join("state.json"), json(&other)).unwrap();
        let got = conflict(&scope, &[cg("cg/shared")]).unwrap();
        assert!(got.contains("runtime state"), "{got}");
    }
}
