//! Read-only cgroup access for the robust shim.
//!
//! The shim needs cgroups for three things, all provided here, and the
//! mount table they are found in:
//!
//! * **Statistics** for the Task `Stats` RPC: [`Cgroup::metrics`] returns
//!   [`Metrics`], either `io.containerd.cgroups.v1.Metrics` or
//!   `io.containerd.cgroups.v2.Metrics` filled the way containerd's Go shim
//!   fills them, and [`Metrics::to_any`] packs them with the type URLs
//!   containerd expects.
//! * **OOM events**: one [`OomWatcher`] (one epoll instance, served by a
//!   thread of its own or, [`OomWatcher::polled`], by the caller's event
//!   loop) watches every container and sends the container id of each OOM
//!   kill to a channel.
//! * **Process control**: [`Cgroup::pids`] lists every process of a
//!   container, [`Cgroup::freeze`] / [`Cgroup::thaw`] / [`Cgroup::is_frozen`]
//!   drive the freezer, so that every process of a (frozen) container can be
//!   killed.
//! * **The mount table**: [`mountinfo`] is the workspace's one parser of
//!   `/proc/<pid>/mountinfo`, used here to find cgroup mounts and by
//!   robust-cleanup to find what is mounted under a rootfs.
//!
//! A [`Cgroup`] is found with [`Cgroup::for_pid`], which reads
//! `/proc/<pid>/cgroup` and maps it onto the cgroup mounts in
//! `/proc/self/mountinfo`. Both cgroup v1 (including "hybrid" hosts with an
//! empty cgroup2 tree at `/sys/fs/cgroup/unified`) and unified cgroup v2 are
//! supported; the mode is detected with `statfs(/sys/fs/cgroup)`.
//!
//! Nothing here creates or configures cgroups: that is runc's job.
//!
//! ```no_run
//! use robust_cgroups::{Cgroup, OomWatcher};
//!
//! let cgroup = Cgroup::for_pid(1234)?;
//! let stats = cgroup.metrics()?.to_any();
//! assert!(stats.type_url.starts_with("io.containerd.cgroups."));
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! let watcher = OomWatcher::new(tx)?;
//! watcher.watch("my-container", &cgroup)?;
//! // rx.recv() yields "my-container" on every OOM kill.
//! # drop(rx);
//! # Ok::<(), robust_cgroups::CgroupError>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cgroup;
mod error;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod metrics;
pub mod mountinfo;
mod oom;
mod parse;

pub use cgroup::{is_unified, Cgroup, CgroupVersion, CGROUP_ROOT};
pub use error::CgroupError;
pub use metrics::{Metrics, V1_METRICS_TYPE_URL, V2_METRICS_TYPE_URL};
pub use oom::{OomEvents, OomWatcher};
