//! Which directory the sweep reads: containerd's state dir or its task
//! directory, whichever the operator names.

use std::path::{Path, PathBuf};

use robust_bundle as bundle;

use super::TASK_DIR;

/// The task state directory to sweep, from what an operator names:
/// containerd's state dir itself (`/run/containerd`, where the task
/// directory is [`TASK_DIR`]) or the task directory. A directory named
/// otherwise, without a [`TASK_DIR`] under it, is taken as a task
/// directory (its subdirectories are namespaces) unless it holds
/// containerd's own `io.containerd.*` directories: then it is a state dir
/// with no task state. The path is checked like a bundle path (absolute,
/// no `..`, no symlinked component).
pub fn resolve_state_dir(dir: &Path) -> Result<PathBuf, String> {
    let dir = bundle::check_dir_path(dir, "state dir")?;
    let how = "containerd keeps it under its state dir (`state` in its config.toml, \
               /run/containerd by default): pass --state-dir with containerd's state dir \
               or its io.containerd.runtime.v2.task subdirectory";
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    if !is_dir(&dir) {
        let why = match std::fs::symlink_metadata(&dir) {
            Ok(_) => "not a directory".to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such directory".into(),
            Err(e) => e.to_string(),
        };
        return Err(format!(
            "no containerd task state at {} ({why}); {how}",
            dir.display()
        ));
    }
    if dir.file_name().is_some_and(|n| n == TASK_DIR) {
        return Ok(dir);
    }
    let tasks = dir.join(TASK_DIR);
    if let Ok(m) = std::fs::symlink_metadata(&tasks) {
        if m.is_dir() {
            return Ok(tasks);
        }
        return Err(format!("{} is not a directory", tasks.display()));
    }
    let containerds = std::fs::read_dir(&dir)
        .map_err(|e| format!("state dir {}: {e}", dir.display()))?
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("io.containerd.")
        });
    if containerds {
        return Err(format!(
            "no containerd task state at {} (it is containerd's state dir, without {TASK_DIR}); {how}",
            tasks.display()
        ));
    }
    Ok(dir)
}
