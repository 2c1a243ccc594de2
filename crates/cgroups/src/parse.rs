//! Pure text parsers for procfs and cgroupfs files.
//!
//! Everything here takes `&str` so that it can be tested with sample
//! strings, without root and without a particular kernel.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
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

/// The fields of a `/proc/<pid>/mountinfo` line that we care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// Root of the mount within the filesystem (field 4), e.g. `/` or, for a
    /// bind mount of a cgroup subtree, `/docker/abc`.
    pub root: String,
    /// Where it is mounted (field 5).
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `cgroup` or `cgroup2`.
    pub fs_type: String,
    /// Per-superblock options, e.g. `["rw", "cpu", "cpuacct"]`.
    pub super_options: Vec<String>,
}

/// Parses `/proc/<pid>/mountinfo`. Malformed lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() < 10 {
        return None;
    }
    // Optional fields (field 7 onwards) are terminated by a single "-".
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fs_type = *fields.get(sep + 1)?;
    let super_options = fields.get(sep + 3).copied().unwrap_or("");
    Some(MountInfo {
        root: String::from_utf8_lossy(&unescape_octal(fields[3])).into_owned(),
        mount_point: PathBuf::from(OsString::from_vec(unescape_octal(fields[4]))),
        fs_type: fs_type.to_owned(),
        super_options: super_options.split(',').map(str::to_owned).collect(),
    })
}

/// Undoes the `\NNN` octal escaping the kernel applies to spaces, tabs,
/// newlines and backslashes in mountinfo paths.
fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
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

    const MOUNTINFO: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /kubepods /sys/fs/cgroup/memory rw,relatime shared:1 master:2 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 1 8:1 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
";

    #[test]
    fn mountinfo() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 7);
        assert_eq!(m[2].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[2].fs_type, "cgroup");
        assert_eq!(m[2].super_options, vec!["rw", "cpu", "cpuacct"]);
        // optional fields "shared:1 master:2" are skipped
        assert_eq!(m[3].root, "/kubepods");
        assert_eq!(m[3].fs_type, "cgroup");
        assert_eq!(m[3].super_options, vec!["rw", "memory"]);
        assert!(m[4].super_options.iter().any(|o| o == "name=systemd"));
        assert_eq!(m[5].fs_type, "cgroup2");
        assert_eq!(m[6].mount_point, Path::new("/mnt/with space"));
        assert!(parse_mountinfo("too short line\n").is_empty());
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
