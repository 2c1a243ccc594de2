//! The resolution from sample texts; pids, freezer and metrics on real
//! cgroups (as root, where the host has them).

use super::*;
use crate::mountinfo::parse as parse_mountinfo;
use crate::parse::parse_proc_cgroup;
use std::process::{Child, Command};
use std::thread;
use std::time::Duration;

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
