//! The tolerant delete: what runs after a shim died, from containerd's
//! `<shim> delete` (cleanupAfterDeadShim, SIGKILLed after 5 s) and from
//! `sweep`. It cleans up with whatever the bundle still holds, always
//! finishes inside its time budget, and fails only when something really
//! remains (a mount, runtime state, a live process), saying exactly what.
//!
//! Steps, each bounded:
//! 1. refuse bad input (ids, a bundle path with `..`, relative, or reached
//!    through a symlink);
//! 2. read the bundle's files ([`robust_bundle::inputs`]); each missing or corrupt
//!    one is logged once at warn with what was assumed instead;
//! 3. find the init pid (`init.pid`, else `runtime state`, else runc's
//!    `state.json`, else 0); it is killed only when confirmed by the
//!    shim's record or the runtime's state (pid and start time);
//! 4. prove the container's cgroup with [`crate::owner`] (the shim's
//!    record at create, the same directory still, no other container in it
//!    or below); only then thaw it and SIGKILL what is in it, before and
//!    after the runtime's forced delete (tolerating "does not exist", "not
//!    running", "in state created"). Unproven, the runtime's delete alone
//!    ends the container, and the log says why nothing else was killed;
//! 5. unmount everything under the bundle ([`crate::mount::unmount_all`]:
//!    EBUSY retries, then a lazy detach naming the holders);
//! 6. check what remains.
//!
//! The steps are modules: [`plan`] (2-4, before anything is touched),
//! [`kill`], [`runtime`], [`unmount`] and [`verify`]; [`budget`] holds the
//! time budget every step draws from.

mod budget;
mod kill;
mod plan;
mod runtime;
mod unmount;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use robust_bundle::{self as bundle, check_bundle_path};
use robust_config::{ids, ConfigError};
use robust_reaper::Reaper;

use crate::cgroup::join_pids;
use crate::runtime_choice;
use budget::{Budget, Notes};

/// Exit status reported for a container whose shim died: SIGKILL.
pub const EXIT_STATUS: u32 = 128 + libc::SIGKILL as u32;

/// Time limits of one delete. The defaults keep the whole run well inside
/// containerd's 5 s cleanup kill, whatever the configured timeouts say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole delete.
    pub total: Duration,
    /// Cap of one runtime call (the configured deadline is used when it is
    /// shorter).
    pub runtime_call: Duration,
    /// Cap of the unmount bound (EBUSY retries before a lazy detach).
    pub unmount: Duration,
    /// How long killed processes get to disappear.
    pub kill_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            total: Duration::from_millis(3500),
            runtime_call: Duration::from_millis(1500),
            unmount: Duration::from_secs(1),
            kill_wait: Duration::from_millis(500),
        }
    }
}

/// One delete to run.
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    pub namespace: String,
    pub id: String,
    /// `<state>/<namespace>/<id>`.
    pub bundle: PathBuf,
    pub limits: Limits,
    /// Runtime root parents probed when `options.json` is unusable
    /// (default: [`runtime_choice::PROBE_ROOTS`]).
    pub probe_parents: Vec<PathBuf>,
    /// Also look one and two levels below this directory (default `/run`)
    /// for `<ns>/<id>/state.json` labelled with this bundle: a custom
    /// runtime root whose record (`options.json`) is gone.
    pub scan_dir: Option<PathBuf>,
    /// Shim addresses (`unix:///path`) the caller knows besides the
    /// bundle's `address` file (it may be gone); a socket among them that
    /// nobody listens on is removed, so the next `start` of the group finds
    /// its path free.
    pub sockets: Vec<String>,
}

impl DeleteRequest {
    pub fn new(namespace: &str, id: &str, bundle: &Path) -> DeleteRequest {
        DeleteRequest {
            namespace: namespace.to_string(),
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            limits: Limits::default(),
            probe_parents: runtime_choice::PROBE_ROOTS
                .iter()
                .map(PathBuf::from)
                .collect(),
            scan_dir: Some(PathBuf::from("/run")),
            sockets: Vec::new(),
        }
    }
}

/// Input the delete refuses to work with.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("refusing to clean up: {0}")]
    Id(#[from] ConfigError),
    #[error("refusing to clean up: {0}")]
    Bundle(String),
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    pub id: String,
    /// The init's pid when known, 0 when not (never -1).
    pub pid: u32,
    /// Always [`EXIT_STATUS`] (137).
    pub exit_status: u32,
    pub exited_at: SystemTime,
    /// The runtime binary driven and where that choice came from.
    pub runtime: String,
    pub runtime_source: &'static str,
    /// Each fallback taken: `what: assumed`.
    pub assumed: Vec<String>,
    /// Mount points that had to be detached lazily (a holder kept them busy).
    pub detached: Vec<PathBuf>,
    /// What really remains; empty when the cleanup is complete.
    pub remains: Vec<Remain>,
    /// What the dead shim had left and this cleanup ended: the runtime's
    /// state of the container, mounts under the bundle, live processes.
    /// Empty after a normal Task Delete (containerd runs `delete` after
    /// every shim exit): then there was nothing to clean.
    pub found: Vec<String>,
    pub took: Duration,
}

impl DeleteOutcome {
    /// Nothing remains.
    pub fn is_clean(&self) -> bool {
        self.remains.is_empty()
    }

    /// Nothing for an operator to act on: nothing was left behind, no
    /// bundle input was missing, nothing was detached, nothing remains.
    /// This is what a `delete` after a normal Task Delete finds; its log
    /// stays below warn.
    pub fn is_routine(&self) -> bool {
        self.remains.is_empty()
            && self.found.is_empty()
            && self.assumed.is_empty()
            && self.detached.is_empty()
    }

    /// What remains, `; `-separated.
    pub fn remains_text(&self) -> String {
        let each: Vec<String> = self.remains.iter().map(Remain::to_string).collect();
        each.join("; ")
    }

    /// The error to print when something remains.
    pub fn error_message(&self) -> Option<String> {
        (!self.remains.is_empty()).then(|| {
            format!(
                "container {}: cleanup incomplete; still left: {}",
                self.id,
                self.remains_text()
            )
        })
    }
}

/// Something a delete could not end, named for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remain {
    /// Processes still alive in the container's proven cgroup.
    LiveInCgroup { pids: Vec<u32>, cgroup: PathBuf },
    /// The container's confirmed init, alive after its SIGKILL.
    LiveInit(i32),
    /// Mount points under the bundle still mounted.
    Mounted(Vec<PathBuf>),
    /// The runtime still holds the container's state: `what` it is and
    /// `why` its delete did not remove it.
    RuntimeState { what: String, why: String },
}

impl fmt::Display for Remain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remain::LiveInCgroup { pids, cgroup } => write!(
                f,
                "live processes {} in the container's cgroup {}",
                join_pids(pids),
                cgroup.display()
            ),
            Remain::LiveInit(pid) => write!(f, "live process: init pid {pid}"),
            Remain::Mounted(points) => {
                let points: Vec<_> = points.iter().map(|p| p.display().to_string()).collect();
                write!(f, "mounted: {}", points.join(", "))
            }
            Remain::RuntimeState { what, why } => write!(f, "runtime state {what} ({why})"),
        }
    }
}

pub(crate) use crate::logfmt::quote as q;

/// Clean up after a dead shim. See the module docs for the steps.
///
/// `Err` only for refused input; every other problem is tolerated, and
/// whatever really remains is listed in [`DeleteOutcome::remains`].
pub fn delete_bundle(req: &DeleteRequest, reaper: &Reaper) -> Result<DeleteOutcome, Refused> {
    let started = Instant::now();
    let id = req.id.as_str();
    ids::validate_namespace(&req.namespace)?;
    ids::validate_container_id(id)?;
    let bundle = check_bundle_path(&req.bundle, id).map_err(Refused::Bundle)?;
    let lim = req.limits;
    let budget = Budget {
        deadline: started + lim.total,
        id: id.to_string(),
    };
    let mut notes = Notes {
        id: id.to_string(),
        list: Vec::new(),
    };
    let plan = plan::plan(req, &bundle, &budget, &mut notes, reaper);

    let mut found = Vec::new();
    let mut kills = kill::before_runtime(&plan, id, &budget, &lim);
    let mut runtime_err = None;
    if !plan.skip_runtime {
        if plan.runtime_held {
            found.push(format!("runtime state ({})", plan.rt.family()));
        }
        runtime_err = runtime::delete(
            &plan.choice,
            plan.rt.as_ref(),
            id,
            &bundle,
            &budget,
            &lim,
            reaper,
        );
    }
    let mut remains = Vec::new();
    kill::after_runtime(&plan, id, &budget, &lim, &mut kills, &mut remains);
    if let Some(e) = runtime_err {
        let nothing_alive = kill::nothing_alive(&plan, &kills);
        runtime_err = runtime::forget_dead(plan.rt.as_ref(), id, nothing_alive, e);
    }

    let detached = unmount::unmount(
        &plan,
        req,
        &bundle,
        &budget,
        &mut notes,
        &mut found,
        &mut remains,
    );
    unmount::remove_stale_sockets(&plan, req);
    let steps = verify::Steps {
        assumed: notes.list,
        found,
        remains,
        detached,
        killed: kills.signalled,
        runtime_err,
    };
    Ok(verify::finish(&plan, id, steps, started))
}

/// A bundle's `init.pid` without the rest of the routine (for callers that
/// only report).
pub fn recorded_pid(bundle: &Path) -> u32 {
    bundle::read_pid(bundle, "init.pid").unwrap_or(0).max(0) as u32
}

#[cfg(test)]
pub(crate) mod tests;
