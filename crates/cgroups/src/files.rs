//! Small file helpers that turn I/O errors into [`CgroupError`]s naming the
//! file, and that treat vanished files as "missing" rather than as errors.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::error::CgroupError;

/// True when an error means "this file (or its cgroup) is not there".
///
/// Files of a removed cgroup can also fail with `ENODEV` when they were
/// opened just before the removal.
pub(crate) fn is_missing(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
        || err.raw_os_error() == Some(nix::errno::Errno::ENODEV as i32)
}

/// Reads a whole file; `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_missing(&e) => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The value of `key` in a flat-keyed file (`memory.events`,
/// `cgroup.events`, ...): `None` when the file cannot be read (its cgroup
/// is gone), `Some(None)` when it has no such key.
pub(crate) fn read_flat_key(path: &Path, key: &str) -> Option<Option<u64>> {
    let text = read_optional(path).ok()??;
    Some(crate::parse::parse_flat_keyed(&text).get(key).copied())
}

/// Reads a whole file; a missing file is an error too.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `data` to an existing (cgroup) file in a single `write(2)`.
///
/// Unlike [`std::fs::write`] this never creates the file.
pub(crate) fn write(path: &Path, data: &str) -> Result<(), CgroupError> {
    let wrap = |source| CgroupError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(wrap)?;
    f.write_all(data.as_bytes()).map_err(wrap)
}
