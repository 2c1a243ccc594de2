//! Routes reaped exits to the process that owns the pid. One lock orders
//! registration against delivery, so an exit is never lost between a
//! runtime call returning and its pid file being read: an exit of a pid
//! not registered yet is kept for [`EARLY_EXIT_TTL`] and handed over when
//! the pid is registered.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use robust_reaper::Exit;

/// How long an exit of an unknown pid is kept for a process that may
/// register it right after (create/exec returned, pid file not read yet).
pub const EARLY_EXIT_TTL: Duration = Duration::from_secs(30);

/// The process a pid belongs to: (container id, exec id; empty for the
/// init).
pub type Owner = (String, String);

#[derive(Default)]
pub struct ExitRouter {
    pids: HashMap<i32, Owner>,
    early: HashMap<i32, Exit>,
}

impl ExitRouter {
    /// A reaped exit: its owner, or `None` when the pid is not registered
    /// (then it is kept for a registration that may come).
    pub fn route(&mut self, exit: Exit) -> Option<Owner> {
        if let Some(owner) = self.pids.remove(&exit.pid) {
            return Some(owner);
        }
        let now = SystemTime::now();
        self.early
            .retain(|_, e| now.duration_since(e.at).unwrap_or_default() < EARLY_EXIT_TTL);
        self.early.insert(exit.pid, exit);
        None
    }

    /// Register `pid` as `owner`'s; the exit it already had, if any, comes
    /// back to be delivered now.
    pub fn register(&mut self, pid: i32, owner: Owner) -> Option<Exit> {
        match self.early.remove(&pid) {
            Some(e) => Some(e),
            None => {
                self.pids.insert(pid, owner);
                None
            }
        }
    }

    pub fn unregister(&mut self, pid: i32) {
        self.pids.remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robust_reaper::ExitStatus;

    fn exit(pid: i32) -> Exit {
        Exit {
            pid,
            status: ExitStatus::Code(3),
            at: SystemTime::now(),
        }
    }

    /// An exit reaped before its pid is registered is kept and delivered at
    /// the registration, once.
    #[test]
    fn an_exit_before_the_registration_is_kept_for_it() {
        let mut r = ExitRouter::default();
        assert_eq!(r.route(exit(7)), None);
        let owner = ("c1".to_string(), String::new());
        assert_eq!(r.register(7, owner.clone()).map(|e| e.pid), Some(7));
        assert_eq!(r.route(exit(7)), None, "delivered once, not registered");
        assert_eq!(r.register(8, owner.clone()), None);
        assert_eq!(r.route(exit(8)), Some(owner));
        assert_eq!(r.route(exit(8)), None, "routed once");
    }
}
