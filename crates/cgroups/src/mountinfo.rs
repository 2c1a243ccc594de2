//! `/proc/<pid>/mountinfo`: the one parser of it in the workspace.
//!
//! Every reader of the mount table uses it: the cgroup lookup of this crate
//! (which cgroup mounts hold a process's cgroup), the OOM watcher's tests,
//! and robust-cleanup (the mounts under a rootfs it takes down, the cgroup
//! mounts a `cgroupsPath` resolves under). It lives here because this is
//! the lowest crate all of them depend on: robust-cleanup already depends
//! on robust-cgroups, and robust-cgroups depends on no other crate of the
//! workspace. The parser is pure text work and is tested without root.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// The fields of a mountinfo line the shim uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Root of the mount within the filesystem (field 4), e.g. `/` or, for a
    /// bind mount of a cgroup subtree, `/docker/abc`.
    pub root: String,
    /// Where it is mounted (field 5), byte for byte as the kernel wrote it.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `cgroup` or `cgroup2`.
    pub fs_type: String,
    /// Per-superblock options, e.g. `["rw", "cpu", "cpuacct"]`.
    pub super_options: Vec<String>,
}

/// Parses a mountinfo text. Malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// `/proc/self/mountinfo`, parsed; empty when it cannot be read.
pub fn read_self() -> Vec<MountInfo> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

fn parse_line(line: &str) -> Option<MountInfo> {
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
        root: String::from_utf8_lossy(&unescape(fields[3])).into_owned(),
        mount_point: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
        fs_type: fs_type.to_owned(),
        super_options: super_options.split(',').map(str::to_owned).collect(),
    })
}

/// Undoes the `\NNN` octal escaping the kernel applies to spaces, tabs,
/// newlines and backslashes in mountinfo paths.
fn unescape(s: &str) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
    fn lines() {
        let m = parse(MOUNTINFO);
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
        assert!(parse("too short line\n").is_empty());
        assert!(parse("garbage\n\n1 2 3\n").is_empty());
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("/a\\040b"), b"/a b");
        assert_eq!(unescape("/plain"), b"/plain");
        assert_eq!(unescape("/end\\"), b"/end\\");
        assert_eq!(unescape("/tab\\011x\\134y"), b"/tab\tx\\y");
        // Not three octal digits, or beyond a byte: kept as written.
        assert_eq!(unescape("/a\\08x"), b"/a\\08x");
        assert_eq!(unescape("/a\\777"), b"/a\\777");
    }

    /// A mount point that is not UTF-8 is kept byte for byte: an unmount
    /// of a lossily decoded path would miss it.
    #[test]
    fn a_mount_point_that_is_not_utf8_is_kept_as_is() {
        let m = parse("60 1 0:40 / /run/b/\\377x rw - tmpfs tmpfs rw\n");
        assert_eq!(
            m[0].mount_point,
            PathBuf::from(OsString::from_vec(b"/run/b/\xffx".to_vec()))
        );
    }

    #[test]
    fn this_process_has_a_mount_table() {
        assert!(read_self().iter().any(|m| m.mount_point == Path::new("/")));
    }
}
