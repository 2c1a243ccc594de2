//! Taking a container's mounts down: the unmount that retries on `EBUSY`,
//! then detaches lazily and names who held the mount, and never follows a
//! symlink. Mounting is robust-bundle's `mount` module.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use robust_bundle::mount::MountError;

use crate::logfmt::quote;

/// Mount points at or below `target`, deepest first, from
/// `/proc/self/mountinfo`.
pub fn mounts_under(target: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = robust_cgroups::mountinfo::read_self()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(target))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Unmount everything at or below `target`, deepest first. `EBUSY` is
/// retried with backoff until `bound` (one bound for the whole call, not
/// per mount point), then the mount is detached lazily (MNT_DETACH) so the
/// caller can finish; the processes holding it are logged.
/// Returns the mount points that needed a lazy detach.
///
/// Symlinks are never followed: mount points come from
/// `/proc/self/mountinfo` (canonical paths) and every `umount2` carries
/// `UMOUNT_NOFOLLOW`; a `target` that is itself a symlink (a rootfs
/// pointing at `/`, say) is left alone, since nothing can be mounted on a
/// symlink.
pub fn unmount_all(target: &Path, bound: Duration, id: &str) -> Result<Vec<PathBuf>, MountError> {
    unmount_all_lasting(target, bound, id, None)
}

/// Decides, from the processes holding a busy mount, that they hold it for
/// as long as they live and must not be ended (a pod's sandbox holding
/// an app container's rootfs): then retrying cannot free it.
pub type Lasting<'a> = &'a dyn Fn(&[(i32, String)]) -> bool;

/// [`unmount_all`], except that at a mount's first `EBUSY` its holders are
/// looked up and, when `lasting` says they keep it for as long as they live,
/// it is detached lazily at once (logged at info with the holders) instead
/// of after `bound`.
pub fn unmount_all_lasting(
    target: &Path,
    bound: Duration,
    id: &str,
    lasting: Option<Lasting<'_>>,
) -> Result<Vec<PathBuf>, MountError> {
    if std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        log::warn!(
            "msg=\"not unmounting through a symlink\" id={id} target={} points_to={}",
            quote(target.display()),
            quote(
                std::fs::read_link(target)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default()
            )
        );
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + bound;
    let mut detached = Vec::new();
    // Repeat: stacked mounts on one point need one unmount each.
    for _ in 0..16 {
        let points = mounts_under(target);
        if points.is_empty() {
            break;
        }
        for p in points {
            if unmount_one(&p, deadline, bound, id, lasting)? {
                detached.push(p);
            }
        }
    }
    Ok(detached)
}

/// Returns true when it had to detach lazily.
fn unmount_one(
    p: &Path,
    deadline: Instant,
    bound: Duration,
    id: &str,
    lasting: Option<Lasting<'_>>,
) -> Result<bool, MountError> {
    let mut wait = Duration::from_millis(10);
    let mut first_busy = true;
    loop {
        match umount2(p, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(false),
            Err(Errno::EBUSY) if std::mem::take(&mut first_busy) && lasting.is_some() => {
                let h = holders(p);
                if !h.is_empty() && lasting.is_some_and(|f| f(&h)) {
                    log::info!(
                        "msg=\"mount held by processes that keep it while they live; detaching lazily now\" id={id} target=\"{}\" holders=\"{}\"",
                        p.display(),
                        format_holders(&h)
                    );
                    detach(p)?;
                    return Ok(true);
                }
            }
            Err(Errno::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
                wait = (wait * 2).min(Duration::from_millis(200));
            }
            Err(Errno::EBUSY) => {
                log::warn!(
                    "msg=\"mount still busy after retries; detaching lazily\" id={id} target={} bound={bound:?} holders={}",
                    quote(p.display()),
                    quote(holders_text(p))
                );
                detach(p)?;
                return Ok(true);
            }
            Err(errno) => {
                return Err(MountError::Unmount {
                    target: p.to_path_buf(),
                    errno,
                })
            }
        }
    }
}

fn detach(p: &Path) -> Result<(), MountError> {
    umount2(p, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW).map_err(|errno| {
        MountError::Unmount {
            target: p.to_path_buf(),
            errno,
        }
    })
}

/// Processes that hold something under `p`: cwd, root, open fds or mapped
/// files, as `fuser -m` would find them. Formatted `pid(comm)`.
pub fn holders(p: &Path) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let base = e.path();
        let mut hit = ["cwd", "root"]
            .iter()
            .any(|l| std::fs::read_link(base.join(l)).is_ok_and(|t| t.starts_with(p)));
        if !hit {
            if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
                hit = fds
                    .flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(p)));
            }
        }
        if !hit {
            if let Ok(maps) = std::fs::read_to_string(base.join("maps")) {
                hit = maps
                    .lines()
                    .filter_map(|l| l.split_whitespace().nth(5))
                    .any(|f| Path::new(f).starts_with(p));
            }
        }
        if hit {
            let comm = std::fs::read_to_string(base.join("comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            out.push((pid, comm));
        }
    }
    out
}

fn holders_text(p: &Path) -> String {
    format_holders(&holders(p))
}

fn format_holders(h: &[(i32, String)]) -> String {
    if h.is_empty() {
        return "none found".into();
    }
    h.iter()
        .map(|(pid, comm)| format!("{pid}({comm})"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::mount::{mount, MsFlags};

    #[test]
    fn a_symlinked_target_is_never_followed() {
        let d = tempfile::tempdir().unwrap();
        // A mount outside, and a rootfs that is a symlink to it: it stays
        // mounted (only this mount is checked: others on the machine may
        // come and go meanwhile).
        let canary = d.path().join("canary");
        std::fs::create_dir(&canary).unwrap();
        mount(
            Some("tmpfs"),
            &canary,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let rootfs = d.path().join("rootfs");
        std::os::unix::fs::symlink(&canary, &rootfs).unwrap();
        let res = unmount_all(&rootfs, Duration::from_millis(50), "t");
        let still = mounts_under(&canary).contains(&canary);
        let listed = mounts_under(&rootfs);
        let _ = umount2(&canary, MntFlags::MNT_DETACH);
        assert!(res.unwrap().is_empty());
        assert!(still, "the mount behind the symlink was unmounted");
        // Nothing under a symlinked path is ever listed either.
        assert!(listed.is_empty());
    }

    #[test]
    fn busy_mount_is_detached_within_the_bound_and_holder_named() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root to mount");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("rootfs");
        std::fs::create_dir(&target).unwrap();
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::create_dir(target.join("sub")).unwrap();
        mount(
            Some("tmpfs"),
            &target.join("sub"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let mut holder = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(target.join("sub"))
            .spawn()
            .unwrap();
        let pid = holder.id() as i32;
        assert!(holders(&target)
            .iter()
            .any(|(p, c)| *p == pid && c == "sleep"));
        let started = Instant::now();
        let detached = unmount_all(&target, Duration::from_millis(300), "t").unwrap();
        let took = started.elapsed();
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(mounts_under(&target).is_empty(), "still mounted");
        assert!(!detached.is_empty(), "expected a lazy detach");
        // One bound for the whole call, whatever the number of mounts.
        assert!(took < Duration::from_millis(1000), "took {took:?}");
    }

    /// A mount held by processes that keep it while they live (`lasting`
    /// says so) is detached at its first EBUSY, not after the bound; one held
    /// by anyone else is still retried for the whole bound.
    #[test]
    fn a_mount_held_by_lasting_holders_is_detached_at_once() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root to mount");
            return;
        }
        for lasting_holder in [true, false] {
            let d = tempfile::tempdir().unwrap();
            let target = d.path().join("rootfs");
            std::fs::create_dir(&target).unwrap();
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            let mut holder = std::process::Command::new("sleep")
                .arg("30")
                .current_dir(&target)
                .spawn()
                .unwrap();
            let pid = holder.id() as i32;
            let keeps = |h: &[(i32, String)]| lasting_holder && h.iter().all(|(p, _)| *p == pid);
            let bound = Duration::from_millis(600);
            let started = Instant::now();
            let detached = unmount_all_lasting(&target, bound, "t", Some(&keeps)).unwrap();
            let took = started.elapsed();
            let _ = holder.kill();
            let _ = holder.wait();
            assert!(mounts_under(&target).is_empty(), "still mounted");
            assert_eq!(detached, vec![target.clone()]);
            if lasting_holder {
                assert!(took < Duration::from_millis(300), "took {took:?}");
            } else {
                assert!(took >= bound, "took {took:?}, less than the bound");
            }
        }
    }
}
