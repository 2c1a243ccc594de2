//! The runtime-delete policy, written once: the Task `Delete`, the daemon's
//! shutdown (SIGTERM, `Shutdown` with `now`) and the dead-shim `delete`
//! (and so `sweep`) all delete a container from its runtime this way.
//!
//! 1. The runtime's delete, forced or not as the caller asks.
//! 2. "Does not exist": the container is gone; done.
//! 3. "Not running" to a forced delete: the runtime refuses to signal a
//!    container that is created or already stopped ("cannot signal
//!    container in state created", "sandbox is not running"): deleted
//!    plainly instead. "Not running" to a plain delete: done, and the
//!    caller checks what state is left if that matters to it.
//! 4. A deadline: the hung call already used its whole time. Retried by
//!    force once only when the caller asks (the dead-shim cleanup, whose
//!    budget covers it); otherwise the error goes back.
//! 5. Any other failure: retried by force once; the error is final only
//!    when that fails too.
//! 6. Whatever the outcome, the family removes what its delete leaves
//!    behind ([`ContainerRuntime::after_delete`]).

use std::path::Path;

use robust_logfmt::quote;

use crate::container_runtime::ContainerRuntime;
use crate::{ErrorKind, RuntimeError};

/// How the policy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteHow {
    /// Force the first call (the second, when there is one, always is).
    pub force: bool,
    /// Retry once after the first call ran out of its deadline.
    pub retry_timeout: bool,
}

/// How a delete that did not fail ended.
#[derive(Debug)]
pub enum Deleted {
    /// The runtime deleted the container.
    Done,
    /// The runtime no longer had it.
    Gone(RuntimeError),
    /// The runtime refused, saying the container does not run: its state
    /// may still be there.
    NotRunning(RuntimeError),
}

/// Delete `id` from `rt` by the policy. `Err` is the last failure.
pub fn delete(
    rt: &dyn ContainerRuntime,
    id: &str,
    bundle: &Path,
    how: DeleteHow,
) -> Result<Deleted, RuntimeError> {
    delete_with(rt, id, bundle, how, &mut |force| rt.delete(id, force))
}

/// [`delete`] with each runtime call made by `call(force)` (the dead-shim
/// cleanup bounds each call by its budget, on its own thread).
pub fn delete_with(
    rt: &dyn ContainerRuntime,
    id: &str,
    bundle: &Path,
    how: DeleteHow,
    call: &mut dyn FnMut(bool) -> Result<(), RuntimeError>,
) -> Result<Deleted, RuntimeError> {
    let mut first = settle(call(how.force));
    if how.force && matches!(first, Ok(Deleted::NotRunning(_))) {
        if let Ok(Deleted::NotRunning(e)) = &first {
            log::debug!(
                "msg=\"runtime refused a forced delete; deleting plainly\" id={id} said={}",
                quote(e)
            );
        }
        first = settle(call(false));
    }
    let outcome = match first {
        Err(e) if e.is_timeout() && !how.retry_timeout => Err(e),
        Err(e) => {
            log::warn!(
                "msg=\"runtime delete failed; forcing\" id={id} error={}",
                quote(&e)
            );
            settle(call(true))
        }
        done => done,
    };
    rt.after_delete(id, bundle, outcome.is_ok());
    outcome
}

/// A call's result by the policy: `Err` only for what steps 4 and 5 retry.
fn settle(r: Result<(), RuntimeError>) -> Result<Deleted, RuntimeError> {
    match r {
        Ok(()) => Ok(Deleted::Done),
        Err(e) => match e.kind() {
            ErrorKind::NotFound => Ok(Deleted::Gone(e)),
            ErrorKind::NotRunning => Ok(Deleted::NotRunning(e)),
            ErrorKind::Other => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeRuntime, Step};

    fn run(steps: &[Step], how: DeleteHow) -> (Result<Deleted, RuntimeError>, Vec<String>) {
        let fake = FakeRuntime::new(Path::new("/nonexistent"));
        for s in steps {
            fake.script("delete", "c1", s.clone());
        }
        let r = delete(&fake, "c1", Path::new("/b/c1"), how);
        let calls = fake
            .calls()
            .into_iter()
            .map(|c| format!("{}{}", c.verb, if c.flag { "!" } else { "" }))
            .collect();
        (r, calls)
    }

    const FORCE: DeleteHow = DeleteHow {
        force: true,
        retry_timeout: false,
    };

    #[test]
    fn the_policy_step_by_step() {
        // not there: gone, the leftovers removed all the same
        let (r, calls) = run(&[], FORCE);
        assert!(matches!(r, Ok(Deleted::Gone(_))), "{r:?}");
        assert_eq!(calls, ["delete!", "after_delete!"]);
        // a forced delete refused: deleted plainly
        let refused = Step::Fail("cannot signal container in state created".into());
        let (r, calls) = run(
            &[
                refused.clone(),
                Step::Fail("container \"c1\" does not exist".into()),
            ],
            FORCE,
        );
        assert!(matches!(r, Ok(Deleted::Gone(_))), "{r:?}");
        assert_eq!(calls, ["delete!", "delete", "after_delete!"]);
        // a refused plain delete is the caller's to judge
        let plain = DeleteHow {
            force: false,
            ..FORCE
        };
        let (r, calls) = run(&[refused], plain);
        assert!(matches!(r, Ok(Deleted::NotRunning(_))), "{r:?}");
        assert_eq!(calls, ["delete", "after_delete!"]);
        // any other failure: forced once more, final if that fails too
        let busy = Step::Fail("device or resource busy".into());
        let (r, calls) = run(&[busy.clone(), busy.clone()], plain);
        assert!(r.is_err());
        assert_eq!(calls, ["delete", "delete!", "after_delete"]);
        // a deadline: back to the caller, unless it asks for the retry
        let (r, calls) = run(&[Step::Timeout], FORCE);
        assert!(r.unwrap_err().is_timeout());
        assert_eq!(calls, ["delete!", "after_delete"]);
        let retry = DeleteHow {
            retry_timeout: true,
            ..FORCE
        };
        let (r, calls) = run(&[Step::Timeout], retry);
        assert!(matches!(r, Ok(Deleted::Gone(_))), "{r:?}");
        assert_eq!(calls, ["delete!", "delete!", "after_delete!"]);
    }
}
