//! The runtime's forced delete by the shared policy
//! (`robust_runtime::delete`), each call capped by the delete's budget and
//! run on its own thread; then, if it did not finish, the family's removal
//! of its state once nothing it describes runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use robust_reaper::Reaper;
use robust_runtime::delete::{self as policy, DeleteHow, Deleted};
use robust_runtime::{ContainerRuntime, RuntimeError, RuntimeSpec};

use super::budget::{bounded, Budget};
use super::{q, Limits};
use crate::cgroup::join_pids;
use crate::runtime_choice::RuntimeChoice;

/// The chosen runtime, every call under `deadline`.
pub(super) fn runtime_for(
    choice: &RuntimeChoice,
    deadline: Duration,
    reaper: &Reaper,
) -> Arc<dyn ContainerRuntime> {
    RuntimeSpec::new(&choice.config, choice.root.clone())
        .with_deadline(deadline)
        .open(reaper.clone())
}

/// The runtime's delete; `None` when the container is gone from the
/// runtime, else why it may not be.
pub(super) fn delete(
    choice: &RuntimeChoice,
    rt: &dyn ContainerRuntime,
    id: &str,
    bundle: &Path,
    budget: &Budget,
    lim: &Limits,
    reaper: &Reaper,
) -> Option<String> {
    let left = rt.leftovers();
    // A family whose forced delete of a live container is slow (a ptrace
    // sandbox's alone takes ~1.3 s) gets more of the budget.
    let cap = lim.runtime_call.max(left.delete_floor());
    // What the family keeps on the host besides the init is ended first:
    // its delete is quick once those are gone.
    let alive = left.end_host_processes(id, bundle, lim.kill_wait);
    if !alive.is_empty() {
        log::warn!(
            "msg=\"cleanup: the runtime's host processes still alive after SIGKILL\" id={id} pids={}",
            q(join_pids(&alive.iter().map(|p| *p as u32).collect::<Vec<_>>()))
        );
    }
    let mut call = |force: bool| -> Result<(), RuntimeError> {
        let d = budget.cap(
            "runtime delete",
            choice.config.timeouts.delete,
            cap,
            lim.unmount + lim.kill_wait,
        );
        let rt = runtime_for(choice, d, reaper);
        let idc = id.to_string();
        bounded(
            "runtime-delete",
            d + Duration::from_millis(300),
            move || rt.delete(&idc, force),
        )
        .unwrap_or(Err(RuntimeError::Timeout {
            verb: "delete",
            id: id.to_string(),
            after: d,
        }))
    };
    let how = DeleteHow {
        force: true,
        retry_timeout: true,
    };
    match policy::delete_with(rt, id, bundle, how, &mut call) {
        Ok(Deleted::Done) => {
            log::info!("msg=\"cleanup: deleted in the runtime\" id={id}");
            None
        }
        Ok(Deleted::Gone(e)) => {
            log::info!(
                "msg=\"cleanup: container already gone from the runtime\" id={id} said={}",
                q(&e)
            );
            None
        }
        Ok(Deleted::NotRunning(e)) | Err(e) => Some(e.to_string()),
    }
}

/// The runtime did not finish its delete in time (a loaded node): its
/// family removes the state by hand once nothing it describes runs any
/// more (`nothing_alive`). Returns what still keeps the state, if anything.
pub(super) fn forget_dead(
    rt: &dyn ContainerRuntime,
    id: &str,
    nothing_alive: bool,
    err: String,
) -> Option<String> {
    match rt.leftovers().forget_dead(id, nothing_alive, &err) {
        Ok(true) => None,
        Ok(false) => Some(err),
        Err(why) => Some(format!("{err}; {why}")),
    }
}
