//! Bundle paths: the checks made before anything under a path is touched,
//! and a removal that neither follows symlinks nor crosses mounts.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Check a directory path before anything under it is touched: absolute,
/// no `.` or `..` component, and no component that is a symlink (a path
/// reached through a symlink could be anywhere, `/` included). Components
/// that do not exist are fine. Returns the path normalized (no trailing
/// `/`).
pub fn check_dir_path(path: &Path, what: &str) -> Result<PathBuf, String> {
    let raw = path.as_os_str().to_string_lossy();
    if !path.is_absolute() {
        return Err(format!("{what} {raw:?} is not absolute"));
    }
    // `Path::components` silently drops `.`; look at the raw text.
    if raw
        .split('/')
        .any(|c| c == "." || c == ".." || c.contains('\0'))
    {
        return Err(format!(
            "{what} {raw:?} contains a \".\" or \"..\" component"
        ));
    }
    let mut norm = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => norm.push(n),
            _ => return Err(format!("{what} {raw:?} has an unexpected component")),
        }
    }
    let mut cur = PathBuf::from("/");
    for c in norm.components().skip(1) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = fs::read_link(&cur)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "{what} {raw:?}: component {} is a symlink (to {to:?}); refusing to follow it",
                    cur.display()
                ));
            }
            Ok(m) if !m.is_dir() => {
                return Err(format!(
                    "{what} {raw:?}: {} is not a directory",
                    cur.display()
                ));
            }
            Ok(_) => {}
            Err(_) => break, // missing from here on: nothing to follow
        }
    }
    Ok(norm)
}

/// [`check_dir_path`] for a bundle, which must also end in the container
/// id.
pub fn check_bundle_path(bundle: &Path, id: &str) -> Result<PathBuf, String> {
    let norm = check_dir_path(bundle, "bundle path")?;
    if norm.file_name().and_then(|n| n.to_str()) != Some(id) {
        return Err(format!(
            "bundle path {:?} does not end in the container id {id:?}",
            bundle.as_os_str().to_string_lossy()
        ));
    }
    Ok(norm)
}

/// Remove `path` and everything below it, never following a symlink and
/// never crossing into another filesystem (a mount the caller failed to
/// see): such a directory makes the removal fail instead of emptying
/// whatever is mounted there. A missing `path` is success.
pub fn remove_tree_one_fs(path: &Path) -> std::io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    remove_dir_on(path, meta.dev())
}

fn remove_dir_on(dir: &Path, dev: u64) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        let m = fs::symlink_metadata(&p)?;
        if m.is_dir() {
            if m.dev() != dev {
                return Err(std::io::Error::other(format!(
                    "{} is on another filesystem (a mount point?); not removed",
                    p.display()
                )));
            }
            remove_dir_on(&p, dev)?;
        } else {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn bundle_paths_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("ns").join("c1");
        fs::create_dir_all(&real).unwrap();
        assert_eq!(check_bundle_path(&real, "c1").unwrap(), real);
        // Trailing slash is normalized.
        let slash = PathBuf::from(format!("{}/", real.display()));
        assert_eq!(check_bundle_path(&slash, "c1").unwrap(), real);
        // Missing bundle: fine.
        let missing = d.path().join("ns").join("gone");
        assert!(check_bundle_path(&missing, "gone").is_ok());
        for bad in [
            PathBuf::from("ns/c1"),
            PathBuf::from("c1"),
            d.path().join("ns/../ns/c1"),
            d.path().join("ns/./c1"),
            d.path().join("ns/c1/.."),
        ] {
            let e = check_bundle_path(&bad, "c1").unwrap_err();
            assert!(
                e.contains("not absolute") || e.contains("\"..\""),
                "{bad:?}: {e}"
            );
        }
        assert!(check_bundle_path(&real, "c2")
            .unwrap_err()
            .contains("does not end in the container id"));
        // The bundle itself a symlink (to /): refused.
        let link = d.path().join("ns").join("c3");
        symlink("/", &link).unwrap();
        let e = check_bundle_path(&link, "c3").unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        // A symlinked ancestor: refused too.
        let alias = d.path().join("alias");
        symlink(d.path().join("ns"), &alias).unwrap();
        let e = check_bundle_path(&alias.join("c1"), "c1").unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
    }

    #[test]
    fn removal_never_follows_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "x").unwrap();
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("c1");
        fs::create_dir_all(b.join("rootfs/etc")).unwrap();
        fs::write(b.join("rootfs/etc/passwd"), "root").unwrap();
        symlink(outside.path(), b.join("work")).unwrap();
        symlink(outside.path(), b.join("rootfs/escape")).unwrap();
        remove_tree_one_fs(&b).unwrap();
        assert!(!b.exists());
        assert!(outside.path().join("keep").exists());
        // Missing: success.
        remove_tree_one_fs(&b).unwrap();
    }
}
