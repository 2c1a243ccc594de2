//! Unmounting everything under the bundle (never through a symlinked
//! rootfs), bounded, and removing the dead shim's sockets that nobody
//! listens on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::budget::{bounded, Budget, Notes, MIN_STEP};
use super::plan::Plan;
use super::{q, DeleteRequest, Remain};
use crate::mount;

/// Unmounts what is mounted under `bundle`; returns the mount points that
/// had to be detached lazily. What stays mounted is a remain; a mount the
/// dead shim left is found.
pub(super) fn unmount(
    plan: &Plan,
    req: &DeleteRequest,
    bundle: &Path,
    budget: &Budget,
    notes: &mut Notes,
    found: &mut Vec<String>,
    remains: &mut Vec<Remain>,
) -> Vec<PathBuf> {
    if !plan.present {
        return Vec::new();
    }
    let id = req.id.as_str();
    let rootfs = bundle.join("rootfs");
    let rootfs_meta = std::fs::symlink_metadata(&rootfs).ok();
    match &rootfs_meta {
        Some(m) if m.file_type().is_symlink() => notes.assume(
            format!(
                "rootfs is a symlink (to {:?})",
                std::fs::read_link(&rootfs).unwrap_or_default()
            ),
            "not followed: nothing is unmounted or removed through it".into(),
        ),
        Some(_) => {}
        None => notes.assume("rootfs missing".into(), "nothing to unmount there".into()),
    }
    let mut detached = Vec::new();
    let mounted = mount::mounts_under(bundle);
    if mounted.is_empty() {
        // The normal state after a Task Delete (the shim unmounted it):
        // no input is missing, so no warning.
        if rootfs_meta.is_some_and(|m| m.is_dir()) {
            log::info!("msg=\"cleanup: rootfs not mounted; nothing to unmount\" id={id}");
        }
    } else {
        found.push(match mounted.len() {
            1 => "1 mount".to_string(),
            n => format!("{n} mounts"),
        });
        let b = budget.cap(
            "unmount",
            plan.choice.config.timeouts.unmount,
            req.limits.unmount,
            MIN_STEP,
        );
        let target = bundle.to_path_buf();
        let idc = id.to_string();
        match bounded("unmount", b + Duration::from_millis(500), move || {
            mount::unmount_all(&target, b, &idc)
        }) {
            Some(Ok(d)) => detached = d,
            Some(Err(e)) => {
                log::warn!("msg=\"cleanup: unmount failed\" id={id} error={}", q(&e))
            }
            None => log::warn!(
                "msg=\"cleanup: unmount did not finish within its bound\" id={id} bound={b:?}"
            ),
        }
    }
    let left = mount::mounts_under(bundle);
    if !left.is_empty() {
        remains.push(Remain::Mounted(left));
    }
    detached
}

/// Removes the shim sockets (the bundle's `address`, the caller's) that
/// nobody listens on, so the next `start` of the group finds its path free.
pub(super) fn remove_stale_sockets(plan: &Plan, req: &DeleteRequest) {
    let mut sockets: Vec<&str> = plan
        .inputs
        .address
        .ok()
        .map(String::as_str)
        .into_iter()
        .collect();
    for s in &req.sockets {
        if !sockets.contains(&s.as_str()) {
            sockets.push(s);
        }
    }
    for addr in sockets {
        crate::sweep::remove_stale_socket(addr, &req.id);
    }
}
