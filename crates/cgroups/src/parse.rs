//! Pure text parsers for procfs and cgroupfs files.
//!
//! Everything here takes `&str` so that it can be tested with sample
//! strings, without root and without a particular kernel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcCgroupEntry {
    /// Hierarchy id; `0` is the cgroup v2 (unified) hierarchy.
    pub hierarchy_id: u32,
    /// Controllers bound to the hierarchy, e.g. `["cpu", "cpuacct"]` or
    /// `["name=systemd"]`; empty for the unified hierarchy.
    pub controllers: Vec<String>,
    /// Path of the cgroup, relative to the root of the hierarchy.
    pub path: String,
}

/// Parses the content of `/proc/<pid>/cgroup`.
pub(crate) fn parse_proc_cgroup(text: &str) -> Result<Vec<ProcCgroupEntry>, String> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // The path itself may contain ':', hence splitn.
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "line {}: expected `id:controllers:path`, got {line:?}",
                idx + 1
            ));
        };
        let hierarchy_id = id
            .parse()
            .map_err(|_| format!("line {}: invalid hierarchy id {id:?}", idx + 1))?;
        let controllers = if controllers.is_empty() {
            Vec::new()
        } else {
            controllers.split(',').map(str::to_owned).collect()
        };
        out.push(ProcCgroupEntry {
            hierarchy_id,
            controllers,
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// Maps a cgroup path as seen in `/proc/<pid>/cgroup` to a directory below
/// `mount_point`, taking the root of the mount into account.
///
/// Returns `None` when the path climbs upwards (`..`), which happens for
/// processes outside our cgroup namespace: such a cgroup has no directory
/// under the mount.
pub(crate) fn cgroup_dir(
    mount_point: &Path,
    mount_root: &str,
    cgroup_path: &str,
) -> Option<PathBuf> {
    let rel = strip_mount_root(mount_root, cgroup_path);
    let mut dir = mount_point.to_path_buf();
    for comp in rel.split('/') {
        match comp {
            "" | "." => {}
            ".." => return None,
            c => dir.push(c),
        }
    }
    Some(dir)
}

fn strip_mount_root<'a>(root: &str, path: &'a str) -> &'a str {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return path;
    }
    match path.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Parses an unsigned cgroup value the way containerd does: negative numbers
/// (e.g. `-1` for "no limit" in some v1 files) become 0.
pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    let digits = s.strip_prefix('-')?;
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(0)
    } else {
        None
    }
}

/// Parses a single-value file such as `memory.usage_in_bytes` or
/// `pids.max`. `max` maps to `max_value` (containerd uses 0 for cgroup v1 and
/// `u64::MAX` for cgroup v2).
pub(crate) fn parse_single(text: &str, max_value: u64) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        Some(max_value)
    } else {
        parse_uint(t)
    }
}

/// Parses a flat-keyed file (`key value` per line) such as `memory.stat`,
/// `cpu.stat` or `memory.events`.
///
/// Lines that do not have exactly two fields or whose value is not a number
/// are skipped: a new kernel adding an odd line must not break `Stats`.
pub(crate) fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if let Some(v) = parse_uint(v) {
            out.insert(k.to_owned(), v);
        }
    }
    out
}

/// Parses `/proc/partitions` into `(major, minor) -> /dev/<name>`; the
/// first occurrence of a device number wins.
pub(crate) fn parse_partitions(text: &str) -> HashMap<(u64, u64), String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let (Ok(major), Ok(minor)) = (f[0].parse(), f[1].parse()) else {
            continue;
        };
        out.entry((major, minor))
            .or_insert_with(|| format!("/dev/{}", f[3]));
    }
    out
}

/// Turns a `/sys/kernel/mm/hugepages` entry such as `hugepages-2048kB` into
/// the size label the kernel uses in hugetlb cgroup file names (`2MB`).
pub(crate) fn hugepage_label(dir_name: &str) -> Option<String> {
    let kb: u64 = dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    // Same rounding as the kernel's hugetlb_cgroup (mem_fmt), in kB units.
    Some(if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    })
}

/// One line of `rdma.current` / `rdma.max`: device, `hca_handle`,
/// `hca_object` (`max` maps to `u32::MAX`).
pub(crate) fn parse_rdma(text: &str) -> Vec<(String, u32, u32)> {
    let value = |kv: &str, key: &str| -> Option<u32> {
        let v = kv.strip_prefix(key)?.strip_prefix('=')?;
        if v == "max" {
            Some(u32::MAX)
        } else {
            v.parse().ok()
        }
    };
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let mut handles = 0;
            let mut objects = 0;
            for kv in &f[1..] {
                if let Some(v) = value(kv, "hca_handle") {
                    handles = v;
                } else if let Some(v) = value(kv, "hca_object") {
                    objects = v;
                }
            }
            Some((f[0].to_owned(), handles, objects))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_HYBRID: &str = "\
12:hugetlb:/
11:cpu,cpuacct:/system.slice/containerd.service
10:name=systemd:/system.slice/containerd.service
9:memory:/kubepods/pod1/abc
8:pids:/kubepods/pod1/abc
0::/system.slice/containerd.service
";

    #[test]
    fn proc_cgroup_v1() {
        let e = parse_proc_cgroup(V1_HYBRID).unwrap();
        assert_eq!(e.len(), 6);
        assert_eq!(e[1].hierarchy_id, 11);
        assert_eq!(e[1].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(e[1].path, "/system.slice/containerd.service");
        assert_eq!(e[2].controllers, vec!["name=systemd"]);
        assert_eq!(e[3].path, "/kubepods/pod1/abc");
        assert_eq!(e[5].hierarchy_id, 0);
        assert!(e[5].controllers.is_empty());
    }

    #[test]
    fn proc_cgroup_v2_and_colon_in_path() {
        let e = parse_proc_cgroup("0::/user.slice/a:b.scope\n").unwrap();
        assert_eq!(
            e,
            vec![ProcCgroupEntry {
                hierarchy_id: 0,
                controllers: vec![],
                path: "/user.slice/a:b.scope".into()
            }]
        );
    }

    #[test]
    fn proc_cgroup_malformed() {
        assert!(parse_proc_cgroup("garbage\n").is_err());
        assert!(parse_proc_cgroup("x:memory:/\n").is_err());
        assert_eq!(parse_proc_cgroup("").unwrap(), vec![]);
    }

    #[test]
    fn dir_mapping() {
        let mp = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            cgroup_dir(mp, "/", "/a/b").unwrap(),
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(cgroup_dir(mp, "/", "/").unwrap(), mp);
        assert_eq!(
            cgroup_dir(mp, "/kubepods", "/kubepods/pod1").unwrap(),
            Path::new("/sys/fs/cgroup/memory/pod1")
        );
        assert_eq!(cgroup_dir(mp, "/kubepods", "/kubepods").unwrap(), mp);
        // "/kubepodsX" is not below "/kubepods": joined as is.
        assert_eq!(
            cgroup_dir(mp, "/kubepods", "/kubepodsX").unwrap(),
            Path::new("/sys/fs/cgroup/memory/kubepodsX")
        );
        assert!(cgroup_dir(mp, "/", "/../../x").is_none());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_uint("42"), Some(42));
        assert_eq!(parse_uint("-1"), Some(0));
        assert_eq!(parse_uint("-99999999999999999999999"), Some(0));
        assert_eq!(parse_uint("x"), None);
        assert_eq!(parse_uint("-"), None);
        assert_eq!(parse_single("max\n", 0), Some(0));
        assert_eq!(parse_single("max\n", u64::MAX), Some(u64::MAX));
        assert_eq!(parse_single("123\n", 0), Some(123));
        assert_eq!(parse_single("", 0), None);
    }

    #[test]
    fn flat_keyed() {
        let m = parse_flat_keyed("a 1\nb -1\nbogus\nc x\nd 1 2\n\ne 18446744073709551615\n");
        assert_eq!(m.len(), 3);
        assert_eq!(m["a"], 1);
        assert_eq!(m["b"], 0);
        assert_eq!(m["e"], u64::MAX);
    }

    #[test]
    fn partitions() {
        let text = "major minor  #blocks  name\n\n   8        0  488386584 sda\n   8        1     524288 sda1\n 254        0  268435456 vda\n";
        let p = parse_partitions(text);
        assert_eq!(p.len(), 3);
        assert_eq!(p[&(8, 1)], "/dev/sda1");
        assert_eq!(p[&(254, 0)], "/dev/vda");
    }

    #[test]
    fn rdma() {
        let r = parse_rdma(
            "mlx4_0 hca_handle=2 hca_object=2000\nocrdma1 hca_handle=3 hca_object=max\nbad line\n",
        );
        assert_eq!(
            r,
            vec![
                ("mlx4_0".to_owned(), 2, 2000),
                ("ocrdma1".to_owned(), 3, u32::MAX)
            ]
        );
    }

    #[test]
    fn hugepage_labels() {
        assert_eq!(hugepage_label("hugepages-2048kB").unwrap(), "2MB");
        assert_eq!(hugepage_label("hugepages-1048576kB").unwrap(), "1GB");
        assert_eq!(hugepage_label("hugepages-64kB").unwrap(), "64KB");
        assert_eq!(hugepage_label("hugepages-32768kB").unwrap(), "32MB");
        assert!(hugepage_label("something").is_none());
    }
}
