//! Cgroup facts the cleanup needs: the cgroup mounts, a `linux.cgroupsPath`
//! resolved under each cgroup v1 controller mount or the v2 mount
//! ([`resolve_cgroups_path`], used only to find *other* containers, see
//! [`crate::owner`]), process start times and liveness, and a bounded thaw.
//! The resolution is pure text work and is tested without root.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use robust_cgroups::mountinfo::MountInfo;
use robust_cgroups::Cgroup;

use crate::logfmt::quote;

/// The shapes a `linux.cgroupsPath` comes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
    /// `/a/b`: relative to the root of each hierarchy (cgroupfs driver).
    Absolute(String),
    /// `a/b`: relative to the cgroup of the process that ran the runtime.
    Relative(String),
    /// `slice:prefix:name`: the systemd driver's form.
    Systemd(String),
    /// Not set.
    Empty,
}

/// Classify a `cgroupsPath` value.
pub fn classify_cgroups_path(p: &str) -> CgroupsPath {
    let p = p.trim();
    if p.is_empty() {
        CgroupsPath::Empty
    } else if !p.starts_with('/') && p.split(':').count() == 3 {
        CgroupsPath::Systemd(p.to_string())
    } else if p.starts_with('/') {
        CgroupsPath::Absolute(p.to_string())
    } else {
        CgroupsPath::Relative(p.to_string())
    }
}

/// One cgroup filesystem mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Root of the mount inside the hierarchy (`/` for the host's mounts).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// True for cgroup2.
    pub v2: bool,
    /// v1 controllers (`memory`, `cpu`, `name=systemd`, ...); empty for v2.
    pub controllers: Vec<String>,
}

const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The cgroup mounts of a mountinfo text (parsed by
/// [`robust_cgroups::mountinfo`], the one parser of it).
pub fn parse_cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    cgroup_mounts(robust_cgroups::mountinfo::parse(mountinfo))
}

/// The cgroup mounts of this process's mount table.
pub fn own_cgroup_mounts() -> Vec<CgroupMount> {
    cgroup_mounts(robust_cgroups::mountinfo::read_self())
}

fn cgroup_mounts(mounts: Vec<MountInfo>) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for m in mounts {
        let v2 = match m.fs_type.as_str() {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            m.super_options
                .into_iter()
                .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
                .collect()
        };
        out.push(CgroupMount {
            root: m.root,
            mount_point: m.mount_point,
            v2,
            controllers,
        });
    }
    out
}

/// Where a cgroups path resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// cgroup v1: controller -> directory.
    V1(BTreeMap<String, PathBuf>),
    /// cgroup v2: the directory.
    V2(PathBuf),
}

impl Resolved {
    /// As a [`Cgroup`] of the cgroups crate.
    pub fn to_cgroup(&self) -> Cgroup {
        match self {
            Resolved::V1(m) => Cgroup::from_v1_paths(m.clone()),
            Resolved::V2(p) => Cgroup::from_v2_path(p.clone()),
        }
    }

    /// Every directory, for logs and removal.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Resolved::V1(m) => {
                let mut v: Vec<PathBuf> = m.values().cloned().collect();
                v.sort();
                v.dedup();
                v
            }
            Resolved::V2(p) => vec![p.clone()],
        }
    }
}

/// Resolve `linux.cgroupsPath` to directories: under each v1 controller
/// mount (`unified == false`; the cgroup2 mount of a hybrid host is not
/// used) or under the cgroup2 mount. `own_cgroup` is the text of
/// `/proc/self/cgroup`, used for a relative path. Errors say why nothing
/// can be resolved (a systemd path, a `..`, no mount).
pub fn resolve_cgroups_path(
    cgroups_path: &str,
    mounts: &[CgroupMount],
    unified: bool,
    own_cgroup: &str,
) -> Result<Resolved, String> {
    let rel_base = |controller: Option<&str>| -> Option<String> {
        own_cgroup.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (id, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let hit = match controller {
                None => id == "0" && ctrls.is_empty(),
                Some(c) => ctrls.split(',').any(|x| x == c),
            };
            hit.then(|| path.to_string())
        })
    };
    let (path, relative) = match classify_cgroups_path(cgroups_path) {
        CgroupsPath::Empty => return Err("no linux.cgroupsPath in config.json".into()),
        CgroupsPath::Systemd(p) => {
            return Err(format!(
                "cgroupsPath {p:?} is a systemd slice:prefix:name path; resolving it needs systemd, skipped"
            ))
        }
        CgroupsPath::Absolute(p) => (p, false),
        CgroupsPath::Relative(p) => (p, true),
    };
    if Path::new(&path)
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || path.split('/').any(|c| c == "." || c == "..")
    {
        return Err(format!("cgroupsPath {path:?} contains \".\" or \"..\""));
    }
    let place = |m: &CgroupMount, full: &str| -> Option<PathBuf> {
        // The base of a relative path comes from /proc/self/cgroup, whose
        // paths climb with `..` out of a cgroup namespace: never follow
        // one out of the mount (the directory found is killed and removed).
        if full.split('/').any(|c| c == "." || c == "..") {
            return None;
        }
        let root = m.root.trim_end_matches('/');
        let inside = if root.is_empty() {
            full
        } else {
            full.strip_prefix(root)
                .filter(|r| r.is_empty() || r.starts_with('/'))?
        };
        let inside = inside.trim_start_matches('/');
        if inside.is_empty() {
            // The root of a hierarchy is never a container's cgroup.
            return None;
        }
        Some(m.mount_point.join(inside))
    };
    let join = |base: Option<String>| -> Option<String> {
        if !relative {
            return Some(path.clone());
        }
        let b = base?;
        Some(format!("{}/{}", b.trim_end_matches('/'), path))
    };
    if unified {
        let m = mounts
            .iter()
            .filter(|m| m.v2)
            .min_by_key(|m| m.mount_point != Path::new(robust_cgroups::CGROUP_ROOT))
            .ok_or("no cgroup2 mount")?;
        let full = join(rel_base(None)).ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
        return place(m, &full)
            .map(Resolved::V2)
            .ok_or_else(|| format!("cgroupsPath {path:?} is outside the cgroup2 mount"));
    }
    let mut out = BTreeMap::new();
    for m in mounts.iter().filter(|m| !m.v2) {
        for c in &m.controllers {
            if out.contains_key(c) {
                continue;
            }
            let Some(full) = join(rel_base(Some(c))) else {
                continue;
            };
            if let Some(dir) = place(m, &full) {
                out.insert(c.clone(), dir);
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "cgroupsPath {path:?}: no cgroup v1 controller mount holds it"
        ));
    }
    Ok(Resolved::V1(out))
}

// The /proc facts of a process are the runtime crate's (its families
// check the processes they started); cleanup reads them through here.
pub use robust_runtime::procfs::{
    parse_start_time, pid_alive, proc_start_time, proc_stat, stat_field,
};

/// Thaw a frozen cgroup, waiting at most `bound` (the cgroups crate waits
/// up to 5 s: too long inside containerd's cleanup kill).
pub fn thaw_bounded(cg: &Cgroup, bound: Duration, id: &str) {
    if !cg.is_frozen().unwrap_or(false) {
        return;
    }
    log::warn!("msg=\"container cgroup is frozen; thawing it before the kill\" id={id}");
    let c = cg.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("thaw".into())
        .spawn(move || {
            let _ = tx.send(c.thaw());
        });
    match rx.recv_timeout(bound) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!(
            "msg=\"thaw failed\" id={id} error={q_error}",
            q_error = quote(&e)
        ),
        Err(_) => log::warn!("msg=\"thaw not confirmed within the bound\" id={id} bound={bound:?}"),
    }
}

pub(crate) fn join_pids(p: &[u32]) -> String {
    p.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
40 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
";

    const UNIFIED: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn classify() {
        assert_eq!(classify_cgroups_path(""), CgroupsPath::Empty);
        assert_eq!(
            classify_cgroups_path("/default/c1"),
            CgroupsPath::Absolute("/default/c1".into())
        );
        assert_eq!(
            classify_cgroups_path("kubepods-besteffort.slice:cri-containerd:abc"),
            CgroupsPath::Systemd("kubepods-besteffort.slice:cri-containerd:abc".into())
        );
        assert_eq!(
            classify_cgroups_path("c1"),
            CgroupsPath::Relative("c1".into())
        );
    }

    #[test]
    fn mounts_of_a_hybrid_host() {
        let m = parse_cgroup_mounts(HYBRID);
        assert_eq!(m.len(), 6);
        assert!(m[0].v2);
        assert_eq!(m[1].controllers, vec!["name=systemd"]);
        assert_eq!(m[2].controllers, vec!["cpu", "cpuacct"]);
        assert!(parse_cgroup_mounts("garbage\n\n1 2 3\n").is_empty());
    }

    #[test]
    fn absolute_path_under_every_v1_controller() {
        let m = parse_cgroup_mounts(HYBRID);
        let r = resolve_cgroups_path("/default/c1", &m, false, "").unwrap();
        let Resolved::V1(map) = &r else {
            panic!("{r:?}")
        };
        assert_eq!(map["memory"], Path::new("/sys/fs/cgroup/memory/default/c1"));
        assert_eq!(
            map["cpuacct"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct/default/c1")
        );
        assert_eq!(
            map["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd/default/c1")
        );
        assert_eq!(map.len(), 6);
        assert!(r.dirs().len() == 5, "{:?}", r.dirs());
    }

    #[test]
    fn unified_and_relative_paths() {
        let m = parse_cgroup_mounts(UNIFIED);
        assert_eq!(
            resolve_cgroups_path("/kubepods/pod1/c1", &m, true, "").unwrap(),
            Resolved::V2(PathBuf::from("/sys/fs/cgroup/kubepods/pod1/c1"))
        );
        let own = "0::/system.slice/containerd.service\n";
        assert_eq!(
            resolve_cgroups_path("c1", &m, true, own).unwrap(),
            Resolved::V2(PathBuf::from(
                "/sys/fs/cgroup/system.slice/containerd.service/c1"
            ))
        );
        let hy = parse_cgroup_mounts(HYBRID);
        let own = "4:memory:/ctr\n3:pids:/ctr\n0::/ctr\n";
        let Resolved::V1(map) = resolve_cgroups_path("c1", &hy, false, own).unwrap() else {
            panic!()
        };
        // Only the controllers whose own cgroup is known.
        assert_eq!(map.len(), 2);
        assert_eq!(map["pids"], Path::new("/sys/fs/cgroup/pids/ctr/c1"));
    }

    #[test]
    fn refusals() {
        let m = parse_cgroup_mounts(HYBRID);
        let e = resolve_cgroups_path("system.slice:cri-containerd:c1", &m, false, "").unwrap_err();
        assert!(e.contains("systemd"), "{e}");
        let e = resolve_cgroups_path("/default/../..", &m, false, "").unwrap_err();
        assert!(e.contains(".."), "{e}");
        assert!(resolve_cgroups_path("", &m, false, "").is_err());
        // The root of a hierarchy is never taken.
        assert!(resolve_cgroups_path("/", &m, false, "").is_err());
        assert!(resolve_cgroups_path("/x", &[], false, "").is_err());
        assert!(resolve_cgroups_path("/x", &[], true, "").is_err());
    }

    /// Found by fuzz/fuzz_targets/fuzz_cgroup_files.rs: a relative
    /// cgroupsPath joined to an own cgroup with `..` components resolved to
    /// a directory outside the cgroup mount (`/sys/fs/cgroup/../x/c1`).
    #[test]
    fn a_relative_path_never_climbs_out_of_the_mount() {
        let m = parse_cgroup_mounts(UNIFIED);
        for own in ["0::/../../x\n", "0::../x\n", "0::/a/./b\n"] {
            let e = resolve_cgroups_path("c1", &m, true, own).unwrap_err();
            assert!(e.contains("outside the cgroup2 mount"), "{own:?}: {e}");
        }
        let hy = parse_cgroup_mounts(HYBRID);
        let own = "4:memory:/../..\n3:pids:/ctr\n";
        let Resolved::V1(map) = resolve_cgroups_path("c1", &hy, false, own).unwrap() else {
            panic!()
        };
        assert_eq!(map.len(), 1, "{map:?}");
        assert_eq!(map["pids"], Path::new("/sys/fs/cgroup/pids/ctr/c1"));
    }

    #[test]
    fn bind_mounted_subtree() {
        let mi = "99 1 0:28 /docker /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let m = parse_cgroup_mounts(mi);
        let Resolved::V1(map) = resolve_cgroups_path("/docker/c1", &m, false, "").unwrap() else {
            panic!()
        };
        assert_eq!(map["memory"], Path::new("/sys/fs/cgroup/memory/c1"));
        assert!(resolve_cgroups_path("/elsewhere/c1", &m, false, "").is_err());
        // "/dockerx" is not inside "/docker".
        assert!(resolve_cgroups_path("/dockerx/c1", &m, false, "").is_err());
    }

    #[test]
    fn start_time_parsing() {
        let stat =
            "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 135209 1000 10";
        assert_eq!(parse_start_time(stat), Some(135209));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(stat_field(stat, 3), Some("S"));
        assert_eq!(stat_field(stat, 4), Some("1"));
        assert_eq!(stat_field(stat, 2), None);
        let me = std::process::id() as i32;
        assert!(proc_start_time(me).is_some());
        assert!(pid_alive(me));
        assert!(!pid_alive(0));
        assert!(!pid_alive(-1));
    }
}
