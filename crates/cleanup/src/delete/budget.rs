//! The time budget of one delete, its bounded steps, and its notes (each
//! fallback logged once at warn).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::q;

/// No step gets less than this, whatever is left of the budget.
pub(super) const MIN_STEP: Duration = Duration::from_millis(100);

/// The fallbacks of one delete: each logged once, at warn.
pub(super) struct Notes {
    pub(super) id: String,
    pub(super) list: Vec<String>,
}

impl Notes {
    pub(super) fn assume(&mut self, what: String, assumed: String) {
        log::warn!(
            "msg=\"cleanup: bundle input unusable; assumed instead\" id={} what={} assumed={}",
            self.id,
            q(&what),
            q(&assumed)
        );
        self.list.push(format!("{what}: {assumed}"));
    }
}

/// The time budget of one delete.
pub(super) struct Budget {
    pub(super) deadline: Instant,
    pub(super) id: String,
}

impl Budget {
    pub(super) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// `configured`, capped by `cap` and by what is left after `reserve`
    /// (never below [`MIN_STEP`]); logs when a cap applies.
    pub(super) fn cap(
        &self,
        step: &str,
        configured: Duration,
        cap: Duration,
        reserve: Duration,
    ) -> Duration {
        let avail = self.left().saturating_sub(reserve).max(MIN_STEP);
        let used = configured.min(cap).min(avail);
        if used < configured {
            log::info!(
                "msg=\"cleanup: deadline capped to stay inside containerd's cleanup timeout\" id={} step={step} configured={configured:?} used={used:?}",
                self.id
            );
        }
        used
    }

    /// How long killed processes get to go: `kill_wait`, within the budget.
    pub(super) fn kill_wait(&self, kill_wait: Duration) -> Duration {
        kill_wait.min(self.left().saturating_sub(MIN_STEP))
    }
}

/// Run `f` on its own thread and wait at most `limit` for it: a step that
/// hangs in the kernel cannot hold the delete past its budget.
pub(super) fn bounded<T: Send + 'static>(
    name: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        });
    if spawned.is_err() {
        return None;
    }
    rx.recv_timeout(limit).ok()
}
