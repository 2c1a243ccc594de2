//! What really remains after the steps, the outcome, and its one log line.

use std::time::{Instant, SystemTime};

use super::plan::Plan;
use super::{q, DeleteOutcome, Remain, EXIT_STATUS};
use crate::cgroup::join_pids;

/// What the steps left and did, for [`finish`].
pub(super) struct Steps {
    pub(super) assumed: Vec<String>,
    pub(super) found: Vec<String>,
    pub(super) remains: Vec<Remain>,
    pub(super) detached: Vec<std::path::PathBuf>,
    pub(super) killed: Vec<u32>,
    /// Why the runtime may still hold the container (its delete failed).
    pub(super) runtime_err: Option<String>,
}

/// Checks the runtime's state once more, builds the outcome and logs it:
/// info when routine, warn when something was found or assumed, error
/// when something remains.
pub(super) fn finish(plan: &Plan, id: &str, mut s: Steps, started: Instant) -> DeleteOutcome {
    let left = plan.rt.leftovers();
    if !plan.skip_runtime && left.has_state(id) {
        s.remains.push(Remain::RuntimeState {
            what: left.describe_state(id),
            why: s
                .runtime_err
                .unwrap_or_else(|| "still there after the runtime's delete".into()),
        });
    }
    s.killed.sort_unstable();
    s.killed.dedup();
    if !s.killed.is_empty() {
        s.found
            .push(format!("live processes {}", join_pids(&s.killed)));
    }
    let outcome = DeleteOutcome {
        id: id.to_string(),
        pid: plan.pid.max(0) as u32,
        exit_status: EXIT_STATUS,
        exited_at: SystemTime::now(),
        runtime: plan.choice.config.runtime.binary.clone(),
        runtime_source: plan.choice.source,
        assumed: s.assumed,
        detached: s.detached,
        remains: s.remains,
        found: s.found,
        took: started.elapsed(),
    };
    match outcome.error_message() {
        // After a normal Task Delete nothing was left: not a warning (the
        // `delete` action then writes nothing at all, see docs/cleanup.md).
        None => log::log!(
            if outcome.is_routine() {
                log::Level::Info
            } else {
                log::Level::Warn
            },
            "msg=\"cleanup finished\" id={id} pid={} runtime={} took={:?} found={} assumed={} detached={}",
            outcome.pid,
            q(&outcome.runtime),
            outcome.took,
            q(outcome.found.join(", ")),
            outcome.assumed.len(),
            outcome.detached.len()
        ),
        Some(m) => log::error!("msg={} id={id} took={:?}", q(&m), outcome.took),
    }
    outcome
}
