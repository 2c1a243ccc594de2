//! Error type of the crate.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while reading or driving a cgroup.
///
/// Every variant names the pid, path or file involved so that a log line is
/// enough to understand what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// `/proc/<pid>/cgroup` could not be read (usually: the process is gone).
    #[error("cannot read cgroup membership of pid {pid} from {path}: {source}")]
    ProcCgroup {
        /// The process whose cgroup was looked up.
        pid: u32,
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The process is not in any cgroup hierarchy mounted in our mount
    /// namespace.
    #[error("no mounted cgroup hierarchy found for pid {pid} ({detail})")]
    NoCgroup {
        /// The process whose cgroup was looked up.
        pid: u32,
        /// What exactly was missing.
        detail: String,
    },

    /// A file had content we could not make sense of.
    #[error("malformed content in {path}: {reason}")]
    Parse {
        /// The offending file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The cgroup directory does not exist (any more).
    #[error("cgroup {path} does not exist")]
    NotFound {
        /// The missing cgroup directory.
        path: PathBuf,
    },

    /// The operation needs a controller this (v1) cgroup is not attached to,
    /// or a cgroup v2 interface file the kernel does not provide.
    #[error("cgroup has no {controller} controller")]
    MissingController {
        /// Name of the missing controller, e.g. `memory` or `freezer`.
        controller: String,
    },

    /// Freezing or thawing did not complete in time.
    #[error("cgroup {path} did not become {state} within {timeout:?}")]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// The state that was requested (`FROZEN` or `THAWED`).
        state: &'static str,
        /// How long we waited.
        timeout: Duration,
    },

    /// A system call failed.
    #[error("{op} failed for {path}: {source}")]
    Sys {
        /// The operation, e.g. `eventfd` or `inotify_add_watch`.
        op: &'static str,
        /// The file or cgroup the operation was about.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
    },

    /// The OOM watcher's background thread is no longer running.
    #[error("the OOM watcher thread is not running")]
    WatcherStopped,
}
