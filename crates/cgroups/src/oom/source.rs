//! One watch per cgroup version: an eventfd registered with the v1 memory
//! controller, or inotify on v2's `memory.events` and `cgroup.events`; and
//! what the watcher thread makes of an event on it.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::cgroup::Cgroup;
use crate::error::CgroupError;
use crate::files;

/// What is watched for one container, by cgroup version.
#[derive(Debug)]
pub(super) enum Source {
    V1 {
        eventfd: EventFd,
        memory_dir: PathBuf,
    },
    V2 {
        inotify: Inotify,
        memory_events: WatchDescriptor,
        cgroup_events: WatchDescriptor,
        dir: PathBuf,
        last_oom_kill: u64,
    },
}

impl Source {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::V1 { eventfd, .. } => eventfd.as_fd(),
            Source::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

/// What the thread decided after a watch's fd became readable.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) report: bool,
    pub(super) remove: bool,
}

pub(super) fn watch_path(source: &Source) -> &Path {
    match source {
        Source::V1 { memory_dir, .. } => memory_dir,
        Source::V2 { dir, .. } => dir,
    }
}

pub(super) fn watch_v1(cgroup: &Cgroup) -> Result<Source, CgroupError> {
    let dir = cgroup
        .controller_path("memory")
        .ok_or_else(|| CgroupError::MissingController {
            controller: "memory".into(),
        })?;
    if !dir.is_dir() {
        return Err(CgroupError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let eventfd =
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(|source| {
            CgroupError::Sys {
                op: "eventfd",
                path: dir.to_path_buf(),
                source,
            }
        })?;
    let oom_control_path = dir.join("memory.oom_control");
    let oom_control = File::open(&oom_control_path).map_err(|source| CgroupError::Read {
        path: oom_control_path,
        source,
    })?;
    // The kernel keeps its own references to both files; memory.oom_control
    // can be closed right after registration.
    let registration = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
    files::write(&dir.join("cgroup.event_control"), &registration)?;
    Ok(Source::V1 {
        eventfd,
        memory_dir: dir.to_path_buf(),
    })
}

pub(super) fn watch_v2(cgroup: &Cgroup) -> Result<Source, CgroupError> {
    let dir = cgroup
        .unified_path()
        .ok_or_else(|| CgroupError::MissingController {
            controller: "unified (cgroup v2)".into(),
        })?
        .to_path_buf();
    let sys = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| CgroupError::Sys { op, path, source }
    };
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(sys("inotify_init1", &dir))?;
    let events_path = dir.join("memory.events");
    let memory_events = inotify
        .add_watch(&events_path, AddWatchFlags::IN_MODIFY)
        .map_err(|e| {
            if e == Errno::ENOENT && dir.is_dir() {
                CgroupError::MissingController {
                    controller: "memory".into(),
                }
            } else if e == Errno::ENOENT {
                CgroupError::NotFound { path: dir.clone() }
            } else {
                sys("inotify_add_watch", &events_path)(e)
            }
        })?;
    let cg_events_path = dir.join("cgroup.events");
    let cgroup_events = inotify
        .add_watch(&cg_events_path, AddWatchFlags::IN_MODIFY)
        .map_err(sys("inotify_add_watch", &cg_events_path))?;
    let last_oom_kill = read_oom_kill(&dir).unwrap_or(0);
    Ok(Source::V2 {
        inotify,
        memory_events,
        cgroup_events,
        dir,
        last_oom_kill,
    })
}

/// `oom_kill` from `memory.events`; `None` when unreadable (cgroup gone).
fn read_oom_kill(dir: &Path) -> Option<u64> {
    files::read_flat_key(&dir.join("memory.events"), "oom_kill").map(|v| v.unwrap_or(0))
}

/// `populated` from `cgroup.events`; `None` when unreadable (cgroup gone).
fn read_populated(dir: &Path) -> Option<bool> {
    files::read_flat_key(&dir.join("cgroup.events"), "populated").map(|v| v.unwrap_or(1) != 0)
}

/// What a readable watch fd means: an OOM to report, the cgroup gone.
pub(super) fn process(source: &mut Source) -> Outcome {
    match source {
        Source::V1 {
            eventfd,
            memory_dir,
        } => {
            // One read drains the counter; EAGAIN means a spurious wake-up.
            match eventfd.read() {
                Ok(_) => {}
                Err(Errno::EAGAIN) => return Outcome::default(),
                Err(e) => {
                    log::warn!("OOM watcher: read eventfd of {}: {e}", memory_dir.display());
                    return Outcome {
                        report: false,
                        remove: true,
                    };
                }
            }
            // The kernel also signals the eventfd when the cgroup is
            // removed; that is not an OOM.
            if memory_dir.join("memory.oom_control").exists() {
                Outcome {
                    report: true,
                    remove: false,
                }
            } else {
                Outcome {
                    report: false,
                    remove: true,
                }
            }
        }
        Source::V2 {
            inotify,
            memory_events,
            cgroup_events,
            dir,
            last_oom_kill,
        } => {
            let mut outcome = Outcome::default();
            loop {
                let events = match inotify.read_events() {
                    Ok(ev) if !ev.is_empty() => ev,
                    Ok(_) | Err(Errno::EAGAIN) => break,
                    Err(e) => {
                        log::warn!("OOM watcher: read inotify of {}: {e}", dir.display());
                        outcome.remove = true;
                        break;
                    }
                };
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                        outcome.remove = true;
                    } else if ev.wd == *memory_events || ev.wd == *cgroup_events {
                        // Always look at the counter first, so that an OOM
                        // that emptied the cgroup is still reported.
                        match read_oom_kill(dir) {
                            Some(v) if v > *last_oom_kill => {
                                *last_oom_kill = v;
                                outcome.report = true;
                            }
                            Some(_) => {}
                            None => outcome.remove = true,
                        }
                        if ev.wd == *cgroup_events && read_populated(dir) != Some(true) {
                            outcome.remove = true;
                        }
                    }
                }
            }
            outcome
        }
    }
}
