//! Reading and writing bundle files: atomic writes (temp + rename), reads
//! that never follow a symlink, never block on a FIFO and are bounded, and
//! the pid files.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Largest bundle file read (a `config.json` is a few KiB).
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// Write `data` to `dir/name` atomically: a temp file in the same
/// directory, fsync, then rename over the target (and a best-effort fsync
/// of the directory, so the rename itself is durable).
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    res
}

/// What reading one bundle file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRead {
    /// The file is not there.
    Missing,
    /// It is there but cannot be used: a symlink, not a regular file, too
    /// large, unreadable. The text says why.
    Unusable(String),
    /// Its bytes.
    Bytes(Vec<u8>),
}

/// Read `dir/name` without following a symlink planted in the bundle,
/// without blocking on a FIFO, and at most [`MAX_FILE_LEN`] bytes.
pub fn read_file(dir: &Path, name: &str) -> FileRead {
    let p = dir.join(name);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileRead::Missing,
        Err(e) => return FileRead::Unusable(format!("cannot stat: {e}")),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let to = fs::read_link(&p)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        return FileRead::Unusable(format!("is a symlink (to {to:?}); not followed"));
    }
    if !ft.is_file() {
        return FileRead::Unusable("is not a regular file".into());
    }
    if meta.len() > MAX_FILE_LEN {
        return FileRead::Unusable(format!("is larger than {MAX_FILE_LEN} bytes"));
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&p);
    let f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileRead::Missing,
        Err(e) => return FileRead::Unusable(format!("cannot open: {e}")),
    };
    let mut buf = Vec::new();
    match f.take(MAX_FILE_LEN + 1).read_to_end(&mut buf) {
        Ok(_) if buf.len() as u64 > MAX_FILE_LEN => {
            FileRead::Unusable(format!("is larger than {MAX_FILE_LEN} bytes"))
        }
        Ok(_) => FileRead::Bytes(buf),
        Err(e) => FileRead::Unusable(format!("cannot read: {e}")),
    }
}

/// Read a small bundle file as trimmed text; `None` if missing or unusable
/// (the caller decides what to assume and logs it).
pub fn read_text(dir: &Path, name: &str) -> Option<String> {
    match read_file(dir, name) {
        FileRead::Bytes(b) => String::from_utf8(b).ok().map(|s| s.trim().to_string()),
        _ => None,
    }
}

/// A bundle file, read and decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<T> {
    /// Present and usable.
    Ok(T),
    /// Not there.
    Missing,
    /// There but truncated, corrupt, a symlink, ...: why.
    Unusable(String),
}

impl<T> Input<T> {
    /// The value, if usable.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Input::Ok(v) => Some(v),
            _ => None,
        }
    }

    /// `"missing"` or `"unusable (why)"`, for logs; `"ok"` when usable.
    pub fn describe(&self) -> String {
        match self {
            Input::Ok(_) => "ok".into(),
            Input::Missing => "missing".into(),
            Input::Unusable(why) => format!("unusable ({why})"),
        }
    }
}

impl FileRead {
    /// The file's bytes decoded by `decode`, whose error says why they
    /// cannot be used; a missing or unusable file stays so.
    pub fn decode<T>(self, decode: impl FnOnce(Vec<u8>) -> Result<T, String>) -> Input<T> {
        match self {
            FileRead::Missing => Input::Missing,
            FileRead::Unusable(why) => Input::Unusable(why),
            FileRead::Bytes(b) => match decode(b) {
                Ok(v) => Input::Ok(v),
                Err(why) => Input::Unusable(why),
            },
        }
    }
}

/// The kernel's largest pid plus one (`/proc/sys/kernel/pid_max`); when
/// that cannot be read, the most any kernel allows (`PID_MAX_LIMIT`, 2^22).
pub fn pid_max() -> i32 {
    const PID_MAX_LIMIT: i32 = 1 << 22;
    fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(PID_MAX_LIMIT)
}

/// Parse the text of a pid file: a positive number below [`pid_max`].
/// The error says why not.
pub fn parse_pid(text: &str) -> Result<i32, String> {
    let shown: String = text.chars().take(40).collect();
    let pid = match text.trim().parse::<i64>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("not a positive pid: {shown:?}")),
    };
    let max = pid_max();
    if pid >= i64::from(max) {
        return Err(format!("pid {pid} is beyond the kernel's pid_max {max}"));
    }
    Ok(pid as i32)
}

/// Read a pid file; `None` when missing, empty, not a positive number, or
/// a number no pid can have (at or above the kernel's `pid_max`).
pub fn read_pid(dir: &Path, name: &str) -> Option<i32> {
    parse_pid(&read_text(dir, name)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
        fs::write(d.path().join("init.pid"), "").unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), None);
        fs::write(d.path().join("init.pid"), "4294967295").unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), None);
        fs::write(d.path().join("init.pid"), " 42\n").unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), Some(42));
        // A number no pid can have on this kernel is no pid.
        let max = pid_max();
        fs::write(d.path().join("init.pid"), max.to_string()).unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), None);
        fs::write(d.path().join("init.pid"), (max - 1).to_string()).unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), Some(max - 1));
        fs::write(d.path().join("init.pid"), "2147483647").unwrap();
        assert_eq!(read_pid(d.path(), "init.pid"), None);
        symlink("/etc/hostname", d.path().join("runtime")).unwrap();
        assert_eq!(read_text(d.path(), "runtime"), None);
        assert!(
            matches!(read_file(d.path(), "runtime"), FileRead::Unusable(m) if m.contains("symlink"))
        );
        fs::create_dir(d.path().join("config.json")).unwrap();
        assert!(matches!(
            read_file(d.path(), "config.json"),
            FileRead::Unusable(_)
        ));
        assert_eq!(read_file(d.path(), "nope"), FileRead::Missing);
        fs::write(d.path().join("bin"), [0xff, 0xfe]).unwrap();
        assert_eq!(read_text(d.path(), "bin"), None);
    }

    #[test]
    fn a_fifo_in_the_bundle_does_not_block_the_read() {
        let d = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &d.path().join("init.pid"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert!(matches!(
            read_file(d.path(), "init.pid"),
            FileRead::Unusable(_)
        ));
    }

    #[test]
    fn pid_max_is_the_kernels() {
        let max = pid_max();
        let want: i32 = fs::read_to_string("/proc/sys/kernel/pid_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(max, want);
        assert!(parse_pid(&max.to_string())
            .unwrap_err()
            .contains("beyond the kernel's pid_max"));
        assert_eq!(parse_pid("1"), Ok(1));
        assert!(parse_pid("0").unwrap_err().contains("not a positive pid"));
        assert!(parse_pid("12a").is_err());
    }
}
