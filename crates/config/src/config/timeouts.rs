//! The `[timeouts]` table: every deadline and grace period of the shim.

use std::time::Duration;

/// Every deadline and grace period of the shim (`[timeouts]`).
///
/// Each is non-zero and at most [`crate::duration::MAX_DURATION`] when it comes
/// from a parsed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Runtime `create`.
    pub create: Duration,
    /// Runtime `start`.
    pub start: Duration,
    /// Runtime `exec`.
    pub exec: Duration,
    /// Runtime `kill`.
    pub kill: Duration,
    /// Runtime `delete`.
    pub delete: Duration,
    /// Runtime `state`.
    pub state: Duration,
    /// Runtime `pause`.
    pub pause: Duration,
    /// Runtime `resume`.
    pub resume: Duration,
    /// Runtime `update`.
    pub update: Duration,
    /// Runtime `ps`.
    pub ps: Duration,
    /// Any other runtime verb.
    pub default: Duration,
    /// SIGTERM to SIGKILL, in the shim's own escalations.
    pub stop_grace: Duration,
    /// After SIGKILL, before a forced delete.
    pub kill_grace: Duration,
    /// After the daemon has stopped its containers on SIGTERM/SIGINT: how
    /// long it may spend delivering the events still queued.
    pub shutdown: Duration,
    /// EBUSY retries of an unmount before a lazy detach.
    pub unmount: Duration,
    /// Retries of publishing one ordinary event (exits and OOMs are retried
    /// until delivered).
    pub publish: Duration,
    /// After a process exited: how long its output is still copied while a
    /// background process keeps the pipe or terminal open.
    pub io_drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            create: s(30),
            start: s(30),
            exec: s(30),
            kill: s(10),
            delete: s(10),
            state: s(5),
            pause: s(10),
            resume: s(10),
            update: s(10),
            ps: s(5),
            default: s(10),
            stop_grace: s(10),
            kill_grace: s(2),
            shutdown: s(5),
            unmount: s(2),
            publish: s(30),
            io_drain: s(2),
        }
    }
}

impl Timeouts {
    /// The keys of the `[timeouts]` table, in documentation order.
    pub const KEYS: [&'static str; 17] = [
        "create",
        "start",
        "exec",
        "kill",
        "delete",
        "state",
        "pause",
        "resume",
        "update",
        "ps",
        "default",
        "stop_grace",
        "kill_grace",
        "shutdown",
        "unmount",
        "publish",
        "io_drain",
    ];

    /// The deadline of one runtime call: `"create"`, `"start"`, `"exec"`,
    /// `"kill"`, `"delete"`, `"state"`, `"pause"`, `"resume"`, `"update"`,
    /// `"ps"`; any other verb gets [`Timeouts::default`](field@Timeouts::default).
    pub fn for_verb(&self, verb: &str) -> Duration {
        match verb {
            "create" => self.create,
            "start" => self.start,
            "exec" => self.exec,
            "kill" => self.kill,
            "delete" => self.delete,
            "state" => self.state,
            "pause" => self.pause,
            "resume" => self.resume,
            "update" => self.update,
            "ps" => self.ps,
            _ => self.default,
        }
    }

    /// The value of a `[timeouts]` key, `None` for an unknown key.
    pub fn get(&self, key: &str) -> Option<Duration> {
        let mut copy = *self;
        copy.slot_mut(key).map(|d| *d)
    }

    /// `(key, value)` for every key, in [`Timeouts::KEYS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        Self::KEYS
            .iter()
            .filter_map(move |k| self.get(k).map(|d| (*k, d)))
    }

    pub(crate) fn slot_mut(&mut self, key: &str) -> Option<&mut Duration> {
        Some(match key {
            "create" => &mut self.create,
            "start" => &mut self.start,
            "exec" => &mut self.exec,
            "kill" => &mut self.kill,
            "delete" => &mut self.delete,
            "state" => &mut self.state,
            "pause" => &mut self.pause,
            "resume" => &mut self.resume,
            "update" => &mut self.update,
            "ps" => &mut self.ps,
            "default" => &mut self.default,
            "stop_grace" => &mut self.stop_grace,
            "kill_grace" => &mut self.kill_grace,
            "shutdown" => &mut self.shutdown,
            "unmount" => &mut self.unmount,
            "publish" => &mut self.publish,
            "io_drain" => &mut self.io_drain,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_verb_maps_every_verb() {
        let mut t = Timeouts::default();
        for (i, k) in Timeouts::KEYS.iter().enumerate() {
            *t.slot_mut(k).unwrap() = Duration::from_millis(100 + i as u64);
        }
        for (i, verb) in [
            "create", "start", "exec", "kill", "delete", "state", "pause", "resume", "update", "ps",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(t.for_verb(verb), Duration::from_millis(100 + i as u64));
        }
        assert_eq!(t.for_verb("checkpoint"), t.default);
        assert_eq!(t.for_verb(""), t.default);
        assert_eq!(t.for_verb("CREATE"), t.default);
        assert_eq!(t.get("publish"), Some(t.publish));
        assert_eq!(t.get("nope"), None);
    }
}
