//! Ending the container's processes: only through what the plan proved (the
//! cgroup the shim recorded, the init it confirmed), never a pid or path
//! merely read from a file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::budget::Budget;
use super::plan::Plan;
use super::{q, Limits, Remain};
use crate::cgroup::pid_alive;

/// What the kills did.
#[derive(Default)]
pub(super) struct Kills {
    /// Every pid signalled.
    pub(super) signalled: Vec<u32>,
    /// The container's cgroup is empty (or gone): nothing of it runs.
    pub(super) cgroup_empty: bool,
}

/// Before the runtime's delete: `runc delete --force` signals the
/// container's processes and waits for them to go; on a loaded node that
/// wait outran the runtime deadline (4 times in 1000 soak cycles, 3 in 12
/// kill -9s with the CPUs busy) and the state stayed. Killing the proven
/// cgroup ourselves leaves the runtime only its state to remove.
pub(super) fn before_runtime(plan: &Plan, id: &str, budget: &Budget, lim: &Limits) -> Kills {
    let mut kills = Kills {
        cgroup_empty: plan.cgroup_gone,
        ..Kills::default()
    };
    if let Some(o) = &plan.owned {
        match o.kill(budget.kill_wait(lim.kill_wait), id) {
            Ok(k) => kills.signalled.extend(k.signalled),
            Err(e) => log::warn!(
                "msg=\"cleanup: cgroup kill before the runtime delete skipped\" id={id} error={}",
                q(&e)
            ),
        }
    }
    kills
}

/// After the runtime's delete: what is left in the proven cgroup, then the
/// confirmed init. Unproven, nothing says the container's processes are
/// all gone (the cgroup is not called empty).
pub(super) fn after_runtime(
    plan: &Plan,
    id: &str,
    budget: &Budget,
    lim: &Limits,
    kills: &mut Kills,
    remains: &mut Vec<Remain>,
) {
    if let Some(o) = &plan.owned {
        match o.kill(budget.kill_wait(lim.kill_wait), id) {
            Ok(k) if k.left.is_empty() => {
                kills.signalled.extend(k.signalled);
                kills.cgroup_empty = true;
                remove_cgroup_dirs(o.dirs(), id)
            }
            Ok(k) => remains.push(Remain::LiveInCgroup {
                pids: k.left,
                cgroup: o.dirs().first().cloned().unwrap_or_default(),
            }),
            Err(e) => log::warn!(
                "msg=\"cleanup: cgroup kill skipped\" id={id} error={}",
                q(&e)
            ),
        }
    }
    let pid = plan.pid;
    if plan.confirmed && pid_alive(pid) {
        log::warn!("msg=\"cleanup: killing the container's init\" id={id} pid={pid}");
        kills.signalled.push(pid as u32);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let end = Instant::now() + lim.kill_wait.min(budget.left());
        while pid_alive(pid) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if pid_alive(pid) {
            remains.push(Remain::LiveInit(pid));
        }
    }
}

/// Nothing the runtime's state describes runs any more: the cgroup is
/// empty and no confirmed or recorded init lives.
pub(super) fn nothing_alive(plan: &Plan, kills: &Kills) -> bool {
    kills.cgroup_empty
        && !(plan.confirmed && plan.pid > 0 && pid_alive(plan.pid))
        && !plan
            .record
            .as_ref()
            .is_some_and(crate::owner::OwnerRecord::owns_live_init)
}

/// Remove the (empty) cgroup directories of the container that the
/// runtime did not remove (it could not: its state was gone). Only leaf
/// directories named after the container are touched.
fn remove_cgroup_dirs(dirs: &[PathBuf], id: &str) {
    for d in dirs {
        let named = d
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(id));
        if !named || !d.is_dir() {
            continue;
        }
        match std::fs::remove_dir(d) {
            Ok(()) => log::info!(
                "msg=\"cleanup: removed the container's leftover cgroup\" id={id} dir={}",
                q(d.display())
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!(
                "msg=\"cleanup: cannot remove the container's cgroup\" id={id} dir={} error={}",
                q(d.display()),
                q(&e)
            ),
        }
    }
}
