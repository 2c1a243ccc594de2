//! Bundle files: atomic writes and tolerant reads.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `data` to `dir/name` atomically: a temp file in the same
/// directory, fsync, then rename over the target.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Read a small bundle file as trimmed text; `None` if missing or unreadable
/// (the caller decides what to assume and logs it).
pub fn read_text(dir: &Path, name: &str) -> Option<String> {
    let p: PathBuf = dir.join(name);
    // Never follow a symlink planted in the bundle.
    let meta = fs::symlink_metadata(&p).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    fs::read_to_string(&p).ok().map(|s| s.trim().to_string())
}

/// Read a pid file; `None` when missing, empty or not a positive number.
pub fn read_pid(dir: &Path, name: &str) -> Option<i32> {
    read_text(dir, name)?.parse::<i32>().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "init.pid", b"123").unwrap();
        write_atomic(d.path(), "init.pid", b"45").unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), Some(45));
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }

    #[test]
    fn tolerant_reads() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), None);
        fs::write(d.path().join("init.pid"), "garbage").unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), None);
        fs::write(d.path().join("init.pid"), "-1").unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), None);
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("runtime")).unwrap();
        assert_eq!(read_text(d.path(), "runtime"), None);
    }
}
