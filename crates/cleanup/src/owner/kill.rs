//! The kill through a cgroup proven to be the container's alone: its own
//! directory's processes, and those of sub-cgroups only when they are in
//! the container's pid namespace while its init lives.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use robust_cgroups::Cgroup;

use super::pid_ns_of;
use crate::cgroup::{self as cg, join_pids, pid_alive};
use crate::logfmt::quote;

/// A cgroup proven to be the container's alone (see the module docs).
#[derive(Debug, Clone)]
pub struct Owned {
    pub(super) cgroup: Cgroup,
    pub(super) dirs: Vec<PathBuf>,
    /// The container's pid namespace, while its init lives.
    pub(super) pid_ns: Option<u64>,
}

/// What a kill through an owned cgroup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Killed {
    /// Pids signalled.
    pub signalled: Vec<u32>,
    /// Pids of the cgroup's own processes still alive at the end of the wait.
    pub left: Vec<u32>,
    /// Pids in sub-cgroups that are not provably the container's: untouched.
    pub spared: Vec<u32>,
}

impl Owned {
    /// The recorded directories that still exist.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The processes to kill and those to spare, as they are now.
    pub fn targets(&self) -> Result<(Vec<u32>, Vec<u32>), String> {
        let tree = match self.cgroup.procs_tree() {
            Ok(t) => t,
            Err(robust_cgroups::CgroupError::NotFound { .. }) => return Ok(Default::default()),
            Err(e) => return Err(format!("cannot list the cgroup's processes: {e}")),
        };
        let me = std::process::id();
        let (mut kill, mut spare) = (Vec::new(), Vec::new());
        for (i, (_, pids)) in tree.into_iter().enumerate() {
            for p in pids {
                if p == me {
                    return Err(format!(
                        "the cgroup holds this shim process (pid {me}); it is not the container's"
                    ));
                }
                let ours = i == 0 || (self.pid_ns.is_some() && pid_ns_of(p as i32) == self.pid_ns);
                if ours {
                    kill.push(p)
                } else {
                    spare.push(p)
                }
            }
        }
        kill.sort_unstable();
        kill.dedup();
        spare.sort_unstable();
        spare.dedup();
        Ok((kill, spare))
    }

    /// Send `sig` once to the processes of [`Owned::targets`]; returns how
    /// many were signalled.
    pub fn signal(&self, sig: Signal, id: &str) -> Result<usize, String> {
        let (pids, spared) = self.targets()?;
        if !spared.is_empty() {
            log::warn!(
                "msg=\"not signalling processes in sub-cgroups that are not provably the container's\" id={id} signal={sig} pids={}",
                quote(join_pids(&spared))
            );
        }
        Ok(pids
            .iter()
            .filter(|p| kill(Pid::from_raw(**p as i32), sig).is_ok())
            .count())
    }

    /// Thaw the cgroup if frozen, SIGKILL its processes (see
    /// [`Owned::targets`]) and wait up to `wait` for them to go (a zero
    /// `wait` signals once and returns).
    pub fn kill(&self, wait: Duration, id: &str) -> Result<Killed, String> {
        let (first, spared) = self.targets()?;
        let mut out = Killed {
            spared,
            ..Default::default()
        };
        if !out.spared.is_empty() {
            log::warn!(
                "msg=\"not killing processes in sub-cgroups that are not provably the container's\" id={id} pids={}",
                quote(join_pids(&out.spared))
            );
        }
        if first.is_empty() {
            return Ok(out);
        }
        cg::thaw_bounded(&self.cgroup, wait.max(THAW_WAIT), id);
        log::warn!(
            "msg=\"killing processes left in the container's cgroup\" id={id} pids={}",
            quote(join_pids(&first))
        );
        let end = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            let (now, _) = self.targets()?;
            let alive: Vec<u32> = now.into_iter().filter(|p| pid_alive(*p as i32)).collect();
            if alive.is_empty() {
                return Ok(out);
            }
            for p in &alive {
                if kill(Pid::from_raw(*p as i32), Signal::SIGKILL).is_ok()
                    && !out.signalled.contains(p)
                {
                    out.signalled.push(*p);
                }
            }
            if Instant::now() >= end {
                out.left = alive;
                return Ok(out);
            }
            std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// How long a kill waits at least for a frozen cgroup to thaw.
const THAW_WAIT: Duration = Duration::from_millis(500);
