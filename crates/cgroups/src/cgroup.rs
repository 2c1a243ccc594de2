//! Locating a process's cgroup, listing its pids, freezing and thawing it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use crate::error::CgroupError;
use crate::files;
use crate::metrics::{self, Metrics};
use crate::mountinfo::{self, MountInfo};
use crate::parse::{self, ProcCgroupEntry};

/// Where cgroup filesystems are mounted on every supported distribution.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long [`Cgroup::freeze`] / [`Cgroup::thaw`] wait for the kernel.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Whether the cgroup is frozen or being frozen.
    ///
    /// cgroup v1: `freezer.state` is `FROZEN` or `FREEZING`; cgroup v2:
    /// `cgroup.freeze` is `1`.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.inner {
            Inner::V1(_) => {
                let path = self.freezer_dir()?.join("freezer.state");
                let state = files::read(&path)?;
                match state.trim() {
                    "THAWED" => Ok(false),
                    "FROZEN" | "FREEZING" => Ok(true),
                    other => Err(CgroupError::Parse {
                        path,
                        reason: format!("unexpected freezer state {other:?}"),
                    }),
                }
            }
            Inner::V2(dir) => {
                let path = dir.join("cgroup.freeze");
                match files::read_optional(&path)?.as_deref().map(str::trim) {
                    Some("1") => Ok(true),
                    Some("0") => Ok(false),
                    Some(other) => Err(CgroupError::Parse {
                        path,
                        reason: format!("unexpected value {other:?}"),
                    }),
                    None => Err(self.missing_v2_freezer(dir)),
                }
            }
        }
    }

    /// Freezes every process of the cgroup and waits until the kernel
    /// reports it frozen (at most a few seconds).
    ///
    /// On cgroup v1 a freeze that does not complete in time is rolled back
    /// (thawed) before [`CgroupError::FreezeTimeout`] is returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    /// Thaws the cgroup and waits until the kernel reports it thawed.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    fn freezer_dir(&self) -> Result<&Path, CgroupError> {
        match &self.inner {
            Inner::V1(map) => map.get("freezer").map(PathBuf::as_path).ok_or_else(|| {
                CgroupError::MissingController {
                    controller: "freezer".into(),
                }
            }),
            Inner::V2(p) => Ok(p),
        }
    }

    fn missing_v2_freezer(&self, dir: &Path) -> CgroupError {
        if dir.is_dir() {
            CgroupError::MissingController {
                controller: "freezer (cgroup.freeze)".into(),
            }
        } else {
            CgroupError::NotFound {
                path: dir.to_path_buf(),
            }
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen { "FROZEN" } else { "THAWED" };
        match &self.inner {
            Inner::V1(_) => {
                let dir = self.freezer_dir()?;
                let path = dir.join("freezer.state");
                let result = wait_for(dir, state, || {
                    // Re-writing FROZEN is what makes the kernel retry tasks
                    // that could not be frozen on the first attempt.
                    files::write(&path, state)?;
                    Ok(files::read(&path)?.trim() == state)
                });
                if frozen && matches!(result, Err(CgroupError::FreezeTimeout { .. })) {
                    // Do not leave the cgroup stuck in FREEZING.
                    let _ = files::write(&path, "THAWED");
                }
                result
            }
            Inner::V2(dir) => {
                let freeze = dir.join("cgroup.freeze");
                if !freeze.exists() {
                    return Err(self.missing_v2_freezer(dir));
                }
                files::write(&freeze, if frozen { "1" } else { "0" })?;
                let events = dir.join("cgroup.events");
                let want = u64::from(frozen);
                wait_for(dir, state, || {
                    let Some(text) = files::read_optional(&events)? else {
                        return Err(CgroupError::NotFound { path: dir.clone() });
                    };
                    // Kernels without the "frozen" key: trust the write.
                    Ok(parse::parse_flat_keyed(&text)
                        .get("frozen")
                        .copied()
                        .unwrap_or(want)
                        == want)
                })
            }
        }
    }
}

/// Polls `done` with a growing sleep until it returns true or the freeze
/// timeout expires.
fn wait_for(
    dir: &Path,
    state: &'static str,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<(), CgroupError> {
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut delay = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                state,
                timeout: FREEZE_TIMEOUT,
            });
        }
        thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse as parse_mountinfo;
    use crate::parse::parse_proc_cgroup;
    use std::process::{Child, Command};

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 1 0:32 /docker /mnt/memory-bind rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn resolve_hybrid_v1() {
        let entries = parse_proc_cgroup(
            "9:name=systemd:/system.slice/x\n8:pids:/docker/abc\n4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:blkio:/docker/abc\n0::/system.slice/x\n",
        )
        .unwrap();
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        let m = resolve_v1(&entries, &mounts);
        assert_eq!(
            m["cpu"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct/docker/abc"),
            "{m:?}"
        );
        assert_eq!(m["cpuacct"], m["cpu"]);
        // The bind mount with root /docker is the better match for /docker/abc.
        assert_eq!(m["memory"], Path::new("/mnt/memory-bind/abc"));
        assert_eq!(m["pids"], Path::new("/sys/fs/cgroup/pids/docker/abc"));
        assert_eq!(
            m["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd/system.slice/x")
        );
        // blkio is not mounted: left out; unified entry ignored in v1 mode.
        assert!(!m.contains_key("blkio"));
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn resolve_prefers_canonical_mount_among_equals() {
        let entries = parse_proc_cgroup("4:memory:/a\n").unwrap();
        let mounts = parse_mountinfo(
            "90 1 0:32 / /mnt/x rw - cgroup cgroup rw,memory\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             91 1 0:32 / /mnt/y rw - cgroup cgroup rw,memory\n",
        );
        assert_eq!(
            resolve_v1(&entries, &mounts)["memory"],
            Path::new("/sys/fs/cgroup/memory/a")
        );
        let mounts = parse_mountinfo(
            "90 1 0:32 / /mnt/x rw - cgroup cgroup rw,memory\n\
             91 1 0:32 / /mnt/y rw - cgroup cgroup rw,memory\n",
        );
        assert_eq!(
            resolve_v1(&entries, &mounts)["memory"],
            Path::new("/mnt/x/a")
        );
    }

    #[test]
    fn resolve_unified_v2() {
        let entries = parse_proc_cgroup("0::/system.slice/containerd.service\n").unwrap();
        let mounts = parse_mountinfo(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
        );
        assert_eq!(
            resolve_v2(&entries, &mounts).unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/containerd.service")
        );
        assert!(resolve_v1(&entries, &mounts).is_empty());
        // No 0:: line at all.
        let v1only = parse_proc_cgroup("4:memory:/x\n").unwrap();
        assert!(resolve_v2(&v1only, &mounts).is_none());
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn unique_name() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("robust-test-{}-{nanos:x}", std::process::id())
    }

    /// A cgroup directory created by a test plus a child process in it,
    /// removed again whatever happens.
    struct TestCgroup {
        dir: PathBuf,
        child: Option<Child>,
    }

    impl TestCgroup {
        fn new(parent: &Path) -> TestCgroup {
            let dir = parent.join(unique_name());
            fs::create_dir(&dir).unwrap();
            TestCgroup { dir, child: None }
        }

        fn spawn_sleeper(&mut self) -> u32 {
            let child = Command::new("sleep").arg("60").spawn().unwrap();
            let pid = child.id();
            self.child = Some(child);
            fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
            pid
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            // v1 freezer: a frozen cgroup cannot lose its (killed) tasks.
            let _ = fs::write(self.dir.join("freezer.state"), "THAWED");
            let _ = fs::write(self.dir.join("cgroup.freeze"), "0");
            for _ in 0..100 {
                if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            eprintln!("warning: could not remove {}", self.dir.display());
        }
    }

    #[test]
    fn for_self_pid_and_metrics() {
        let cg = Cgroup::for_pid(std::process::id()).expect("cgroup of self");
        let unified = is_unified().unwrap();
        match cg.metrics().expect("metrics of self") {
            Metrics::V1(m) => {
                assert!(!unified);
                assert_eq!(cg.version(), CgroupVersion::V1);
                assert!(cg.controller_path("memory").is_some());
                let usage = m.memory.usage.usage;
                assert!(usage > 0, "memory usage of own cgroup is {usage}");
                assert!(m.cpu.usage.total > 0 || cg.controller_path("cpuacct").is_none());
            }
            Metrics::V2(m) => {
                assert!(unified);
                assert!(m.cpu.usage_usec > 0);
            }
        }
        let pids = cg.pids().expect("pids of own cgroup");
        assert!(pids.contains(&std::process::id()), "{pids:?}");
    }

    #[test]
    fn for_pid_of_missing_process() {
        // pid_max is at most 2^22, so this pid cannot exist.
        let err = Cgroup::for_pid(u32::MAX - 1).unwrap_err();
        assert!(matches!(err, CgroupError::ProcCgroup { pid, .. } if pid == u32::MAX - 1));
        assert!(err.to_string().contains("/proc/4294967294/cgroup"), "{err}");
    }

    #[test]
    fn v1_freezer_and_pids() {
        let parent = Path::new("/sys/fs/cgroup/freezer");
        if !is_root() || is_unified().unwrap_or(true) || !parent.join("cgroup.procs").exists() {
            eprintln!("skipping v1_freezer_and_pids: needs root and a v1 freezer hierarchy");
            return;
        }
        let mut t = TestCgroup::new(parent);
        let pid = t.spawn_sleeper();
        let cg = Cgroup::from_v1_paths([("freezer", t.dir.clone())]);
        assert_eq!(cg.pids().unwrap(), vec![pid]);
        assert!(!cg.is_frozen().unwrap());
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        assert_eq!(
            files::read(&t.dir.join("freezer.state")).unwrap().trim(),
            "FROZEN"
        );
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());
        // No freezer controller: a clear error.
        let nofreezer = Cgroup::from_v1_paths([("memory", "/nonexistent")]);
        assert!(matches!(
            nofreezer.freeze(),
            Err(CgroupError::MissingController { .. })
        ));
        assert!(matches!(
            nofreezer.pids(),
            Err(CgroupError::NotFound { .. })
        ));
    }

    #[test]
    fn v2_freezer_pids_and_metrics_on_hybrid_unified_tree() {
        // The hybrid layout has a (controller-less) cgroup2 tree; it still
        // supports cgroup.procs, cgroup.freeze and cpu.stat.
        let parent = Path::new("/sys/fs/cgroup/unified");
        if !is_root() || !parent.join("cgroup.procs").exists() {
            eprintln!("skipping v2 test: needs root and /sys/fs/cgroup/unified");
            return;
        }
        let mut t = TestCgroup::new(parent);
        if !t.dir.join("cgroup.freeze").exists() {
            eprintln!("skipping v2 test: kernel has no cgroup.freeze");
            return;
        }
        let pid = t.spawn_sleeper();
        let cg = Cgroup::from_v2_path(&t.dir);
        assert_eq!(cg.version(), CgroupVersion::V2);
        assert_eq!(cg.pids().unwrap(), vec![pid]);
        assert!(!cg.is_frozen().unwrap());
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());
        match cg.metrics().unwrap() {
            Metrics::V2(m) => {
                assert!(m.cpu.is_some(), "cpu.stat is always present in v2");
                // No memory controller in this tree: section left empty.
                assert!(m.memory.is_none());
            }
            Metrics::V1(_) => panic!("expected v2 metrics"),
        }
        let gone = Cgroup::from_v2_path(t.dir.join("does-not-exist"));
        assert!(matches!(gone.metrics(), Err(CgroupError::NotFound { .. })));
        assert!(matches!(gone.freeze(), Err(CgroupError::NotFound { .. })));
    }
}
