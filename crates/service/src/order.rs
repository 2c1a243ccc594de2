//! The exit-ordering rules, pure: a process's state ([`Phase`], the one
//! state of a process, with checked transitions) and what to publish, in
//! which order, when it starts, exits or is reported OOM. No lock, no I/O,
//! no runtime: the caller holds the process's lock, asks here, and
//! publishes what comes back, in that order, under the same lock
//! (docs/events.md, "Exit ordering").
//!
//! The rules:
//! 1. **Deferred start exits.** An exit that arrives while the process's
//!    start is in flight is published by the starter, after its start
//!    event ([`Phase::end_start`]).
//! 2. **Execs before the init.** The init's exit is held while execs of the
//!    container still run, and published once the last one exited or the
//!    grace is over ([`init_exit`], [`release_held`]).
//! 3. **OOM before the exit.** A rise of the cgroup's OOM-kill count is
//!    published before the init exit it caused, once per kill, whichever
//!    of the exit and the OOM watcher sees it first ([`init_exit`],
//!    [`oom_watched`]).
//! 4. **Exactly once.** Every process's exit is published once, whatever
//!    reports it (the reaper, the runtime's wait, a process found gone, an
//!    assumed exit): only the first report is recorded.
//!
//! (An exit that arrives before its pid is known is the router's: it is
//! kept and delivered when the pid is registered, `router.rs`.)

use std::time::SystemTime;

/// An exit, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    pub code: u32,
    pub at: SystemTime,
}

/// What containerd's API reports of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

/// A live process's status while a SIGKILL watchdog runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    Created,
    Running,
    Paused,
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Created,
    /// Its start (the runtime call and its event) is under way; an exit
    /// that arrives meanwhile waits here for the start event (rule 1).
    Starting {
        early: Option<Exit>,
    },
    Running,
    Paused,
    /// A SIGKILL was sent and a watchdog escalates unless the exit comes
    /// within `kill_grace`; reported as what it was (`was`).
    Killing {
        was: Live,
    },
    /// It exited. `held`: the init's exit waits for its execs' (rule 2).
    Exited {
        exit: Exit,
        held: bool,
    },
}

/// A transition that makes no sense from where the process is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("process cannot {what} in state {from:?}")]
pub struct Refused {
    pub what: &'static str,
    pub from: Status,
}

/// What to publish, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// The start event (TaskStart, TaskExecStarted).
    Started,
    /// TaskOOM.
    Oom,
    /// TaskExit.
    Exit(Exit),
}

/// How an exit report was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first report: recorded.
    First,
    /// The first report, while the start is in flight: recorded, published
    /// by the starter.
    Deferred,
    /// Already recorded: ignored.
    Again,
}

impl Phase {
    /// What the API reports.
    pub fn status(&self) -> Status {
        match self {
            Phase::Created | Phase::Starting { early: None } => Status::Created,
            Phase::Running | Phase::Killing { was: Live::Running } => Status::Running,
            Phase::Paused | Phase::Killing { was: Live::Paused } => Status::Paused,
            Phase::Killing { was: Live::Created } => Status::Created,
            Phase::Starting { early: Some(_) } | Phase::Exited { .. } => Status::Stopped,
        }
    }

    /// The recorded exit, if any.
    pub fn exit(&self) -> Option<Exit> {
        match self {
            Phase::Starting { early } => *early,
            Phase::Exited { exit, .. } => Some(*exit),
            _ => None,
        }
    }

    pub fn is_starting(&self) -> bool {
        matches!(self, Phase::Starting { .. })
    }

    fn refuse(&self, what: &'static str) -> Refused {
        Refused {
            what,
            from: self.status(),
        }
    }

    /// A start begins: only a created process starts, once at a time (a
    /// SIGKILL watchdog may run meanwhile: its mark goes, it does not).
    pub fn begin_start(&mut self) -> Result<(), Refused> {
        match self {
            Phase::Created | Phase::Killing { was: Live::Created } => {
                *self = Phase::Starting { early: None };
                Ok(())
            }
            _ => Err(self.refuse("start")),
        }
    }

    /// The start ended (`ok`: the runtime started it). A process whose
    /// failed start is final (an exec) records `failed_exit`, unpublished;
    /// an init stays created. Returns what to publish (rule 1: the start
    /// event, then an exit that arrived meanwhile).
    pub fn end_start(&mut self, ok: bool, failed_exit: Option<Exit>) -> Vec<Publish> {
        let Phase::Starting { early } = *self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if ok {
            out.push(Publish::Started);
        }
        *self = match (early, ok, failed_exit) {
            (Some(exit), _, _) => {
                out.push(Publish::Exit(exit));
                Phase::Exited { exit, held: false }
            }
            (None, true, _) => Phase::Running,
            (None, false, Some(exit)) => Phase::Exited { exit, held: false },
            (None, false, None) => Phase::Created,
        };
        out
    }

    /// Record an exit report (rule 4: only the first counts).
    pub fn exited(&mut self, exit: Exit) -> Arrival {
        match self {
            Phase::Starting { early: None } => {
                *self = Phase::Starting { early: Some(exit) };
                Arrival::Deferred
            }
            Phase::Starting { early: Some(_) } | Phase::Exited { .. } => Arrival::Again,
            _ => {
                *self = Phase::Exited { exit, held: false };
                Arrival::First
            }
        }
    }

    /// An exit the shim decided itself (a process found gone, an exit
    /// assumed after every escalation step): recorded, and published at
    /// once unless a start is in flight (then the starter does).
    pub fn exit_now(&mut self, exit: Exit) -> Option<Publish> {
        (self.exited(exit) == Arrival::First).then_some(Publish::Exit(exit))
    }

    pub fn pause(&mut self) -> Result<(), Refused> {
        *self = match self {
            Phase::Running => Phase::Paused,
            Phase::Killing { was: Live::Running } => Phase::Killing { was: Live::Paused },
            _ => return Err(self.refuse("pause")),
        };
        Ok(())
    }

    /// Resume a paused process; anything else is left as it is.
    pub fn resume(&mut self) {
        match self {
            Phase::Paused => *self = Phase::Running,
            Phase::Killing { was: Live::Paused } => *self = Phase::Killing { was: Live::Running },
            _ => {}
        }
    }

    /// A SIGKILL watchdog begins: false when one already runs, or the
    /// process is starting or exited (no watchdog then).
    pub fn begin_kill_watch(&mut self) -> bool {
        let was = match self {
            Phase::Created => Live::Created,
            Phase::Running => Live::Running,
            Phase::Paused => Live::Paused,
            _ => return false,
        };
        *self = Phase::Killing { was };
        true
    }

    /// The watchdog ended; a process it did not see exit is what it was.
    pub fn end_kill_watch(&mut self) {
        if let Phase::Killing { was } = *self {
            *self = match was {
                Live::Created => Phase::Created,
                Live::Running => Phase::Running,
                Live::Paused => Phase::Paused,
            };
        }
    }
}

/// Rule 3: whether a TaskOOM is due, from the cgroup's OOM-kill count
/// `now` (`None`: unreadable, or no cgroup of the container's own) and
/// the count already published (`seen`, updated).
pub fn oom_due(seen: &mut u64, now: Option<u64>) -> bool {
    match now {
        Some(n) if n > *seen => {
            *seen = n;
            true
        }
        _ => false,
    }
}

/// The OOM watcher fired: a TaskOOM is due when the count rose, or when
/// there is no count to tell (the watcher alone is reason enough).
pub fn oom_watched(seen: &mut u64, now: Option<u64>) -> bool {
    now.is_none() || oom_due(seen, now)
}

/// What the init's exit report leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitExit {
    /// The report was recorded (first or deferred): the rest of the
    /// container may now be killed, before anything is published.
    pub recorded: bool,
    /// Publish these, in order.
    pub publish: Vec<Publish>,
    /// The exit is held (rule 2): release it once no exec runs any more,
    /// or after the grace.
    pub held: bool,
}

/// The init's exit report (rules 1 to 4). `execs_live`: execs of the
/// container still run; `oom_now`: the cgroup's OOM-kill count now, when
/// the container has a cgroup of its own.
pub fn init_exit(
    phase: &mut Phase,
    oom_seen: &mut u64,
    exit: Exit,
    execs_live: bool,
    oom_now: Option<u64>,
) -> InitExit {
    let arrival = phase.exited(exit);
    let mut out = InitExit {
        recorded: arrival != Arrival::Again,
        publish: Vec::new(),
        held: false,
    };
    if arrival == Arrival::Again {
        return out;
    }
    if oom_due(oom_seen, oom_now) {
        out.publish.push(Publish::Oom);
    }
    if arrival == Arrival::First {
        if execs_live {
            *phase = Phase::Exited { exit, held: true };
            out.held = true;
        } else {
            out.publish.push(Publish::Exit(exit));
        }
    }
    out
}

/// An exec's exit report: published unless its start is in flight (rule
/// 1) or it was reported before (rule 4).
pub fn exec_exit(phase: &mut Phase, exit: Exit) -> (Arrival, Option<Publish>) {
    let arrival = phase.exited(exit);
    (
        arrival,
        (arrival == Arrival::First).then_some(Publish::Exit(exit)),
    )
}

/// The init's held exit, once (rule 2).
pub fn release_held(init: &mut Phase) -> Option<Publish> {
    match *init {
        Phase::Exited { exit, held: true } => {
            *init = Phase::Exited { exit, held: false };
            Some(Publish::Exit(exit))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: u32) -> Exit {
        Exit {
            pid: 42,
            code,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn transitions_are_checked() {
        let mut p = Phase::Created;
        assert!(p.pause().is_err());
        p.begin_start().unwrap();
        assert!(p.begin_start().is_err(), "one start at a time");
        assert_eq!(p.end_start(true, None), [Publish::Started]);
        assert_eq!(p, Phase::Running);
        assert!(p.begin_start().is_err(), "a running process is not started");
        p.pause().unwrap();
        assert_eq!(p.status(), Status::Paused);
        assert!(p.pause().is_err());
        p.resume();
        assert_eq!(p, Phase::Running);
        assert_eq!(p.exited(exit(0)), Arrival::First);
        assert!(p.pause().is_err());
        p.resume();
        assert_eq!(p.status(), Status::Stopped);
    }

    #[test]
    fn a_failed_start_leaves_an_init_created_and_ends_an_exec() {
        let mut init = Phase::Created;
        init.begin_start().unwrap();
        assert!(init.end_start(false, None).is_empty());
        assert_eq!(init, Phase::Created);
        let mut exec = Phase::Created;
        exec.begin_start().unwrap();
        assert!(exec.end_start(false, Some(exit(255))).is_empty());
        assert_eq!(exec.exit(), Some(exit(255)));
    }

    /// Rule 1: an exit during the start is published after the start event.
    #[test]
    fn rule1_an_exit_during_the_start_follows_the_start_event() {
        let mut p = Phase::Created;
        p.begin_start().unwrap();
        let mut seen = 0;
        let out = init_exit(&mut p, &mut seen, exit(3), false, None);
        assert!(out.recorded);
        assert!(out.publish.is_empty(), "nothing before the start event");
        assert_eq!(p.status(), Status::Stopped, "State already says stopped");
        assert_eq!(
            p.end_start(true, None),
            [Publish::Started, Publish::Exit(exit(3))]
        );
        // The same for an exec, and for a start that failed.
        let mut e = Phase::Created;
        e.begin_start().unwrap();
        assert_eq!(exec_exit(&mut e, exit(1)), (Arrival::Deferred, None));
        assert_eq!(
            e.end_start(false, Some(exit(255))),
            [Publish::Exit(exit(1))]
        );
        // An exit the shim decides itself waits for the starter too.
        let mut s = Phase::Created;
        s.begin_start().unwrap();
        assert_eq!(s.exit_now(exit(137)), None);
        assert_eq!(
            s.end_start(true, None),
            [Publish::Started, Publish::Exit(exit(137))]
        );
    }

    /// Rule 2: the init's exit waits for its execs'.
    #[test]
    fn rule2_the_init_exit_is_held_while_execs_run() {
        let mut p = Phase::Running;
        let mut seen = 0;
        let out = init_exit(&mut p, &mut seen, exit(0), true, None);
        assert!(out.held);
        assert!(out.publish.is_empty(), "{:?}", out.publish);
        assert_eq!(p.status(), Status::Stopped, "State already says stopped");
        assert_eq!(release_held(&mut p), Some(Publish::Exit(exit(0))));
        assert_eq!(release_held(&mut p), None, "released once");
        // Without execs it goes at once.
        let mut q = Phase::Running;
        let out = init_exit(&mut q, &mut seen, exit(0), false, None);
        assert!(!out.held);
        assert_eq!(out.publish, [Publish::Exit(exit(0))]);
        assert_eq!(release_held(&mut q), None);
    }

    /// Rule 3: an OOM kill is published before the exit, once.
    #[test]
    fn rule3_the_oom_comes_before_the_exit_and_once() {
        let mut p = Phase::Running;
        let mut seen = 0;
        let out = init_exit(&mut p, &mut seen, exit(137), false, Some(1));
        assert_eq!(out.publish, [Publish::Oom, Publish::Exit(exit(137))]);
        assert!(!oom_watched(&mut seen, Some(1)), "the watcher comes late");
        // The watcher first, then the exit: one TaskOOM.
        let mut q = Phase::Running;
        let mut seen = 0;
        assert!(oom_watched(&mut seen, Some(2)));
        let out = init_exit(&mut q, &mut seen, exit(137), false, Some(2));
        assert_eq!(out.publish, [Publish::Exit(exit(137))]);
        // No count: the exit publishes none, the watcher does.
        let mut seen = 0;
        assert!(!oom_due(&mut seen, None));
        assert!(oom_watched(&mut seen, None));
        // Held behind an exec, the OOM still goes first.
        let mut h = Phase::Running;
        let mut seen = 0;
        let out = init_exit(&mut h, &mut seen, exit(137), true, Some(1));
        assert_eq!(out.publish, [Publish::Oom]);
        assert_eq!(release_held(&mut h), Some(Publish::Exit(exit(137))));
    }

    /// Rule 4: whatever reports it, an exit is published once.
    #[test]
    fn rule4_every_exit_is_published_once() {
        let mut p = Phase::Running;
        let mut seen = 0;
        let first = init_exit(&mut p, &mut seen, exit(0), false, Some(1));
        assert_eq!(first.publish.len(), 2);
        for again in [
            init_exit(&mut p, &mut seen, exit(9), false, Some(5)),
            init_exit(&mut p, &mut seen, exit(9), true, None),
        ] {
            assert!(!again.recorded);
            assert!(again.publish.is_empty(), "{:?}", again.publish);
        }
        assert_eq!(p.exit_now(exit(255)), None);
        assert_eq!(p.exit(), Some(exit(0)), "the first exit stays");
        let mut e = Phase::Running;
        assert_eq!(
            exec_exit(&mut e, exit(1)),
            (Arrival::First, Some(Publish::Exit(exit(1))))
        );
        assert_eq!(exec_exit(&mut e, exit(1)), (Arrival::Again, None));
        assert_eq!(e.exit_now(exit(255)), None);
        // A deferred exit is not recorded twice either.
        let mut s = Phase::Created;
        s.begin_start().unwrap();
        assert_eq!(s.exited(exit(1)), Arrival::Deferred);
        assert_eq!(s.exited(exit(2)), Arrival::Again);
        assert_eq!(
            s.end_start(true, None),
            [Publish::Started, Publish::Exit(exit(1))]
        );
    }

    #[test]
    fn one_kill_watchdog_at_a_time_reporting_what_the_process_was() {
        let mut p = Phase::Paused;
        assert!(p.begin_kill_watch());
        assert!(!p.begin_kill_watch(), "one watchdog");
        assert_eq!(p.status(), Status::Paused);
        p.resume();
        assert_eq!(p.status(), Status::Running);
        p.pause().unwrap();
        p.end_kill_watch();
        assert_eq!(p, Phase::Paused);
        assert!(p.begin_kill_watch());
        assert_eq!(p.exited(exit(137)), Arrival::First);
        p.end_kill_watch();
        assert_eq!(p.status(), Status::Stopped, "the exit stays");
        let mut s = Phase::Starting { early: None };
        assert!(!s.begin_kill_watch());
        let mut k = Phase::Created;
        assert!(k.begin_kill_watch());
        k.begin_start().unwrap();
        assert!(k.is_starting());
    }
}
