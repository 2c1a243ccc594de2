//! Cleanup: everything that puts a container's files and mounts in place
//! and takes them away again, with or without a live shim.
//!
//! - [`mount`]: mounting the rootfs from containerd's mount list, and the
//!   unmount that retries on `EBUSY`, then detaches lazily and names who
//!   held the mount; it never follows a symlink.
//! - [`bundle`]: tolerant reads of bundle files (never through a symlink),
//!   atomic writes (temp + rename), bundle path checks, and a removal that
//!   neither follows symlinks nor crosses mounts.
//! - [`inputs`]: what a dead shim's bundle still says (runtime, options,
//!   init pid, cgroups path), and which runtime and root to drive.
//! - [`owner`]: the ownership rule: a cgroup is killed, thawed or removed
//!   only when the shim recorded it at create as the container's alone and
//!   no other container uses it now.
//! - [`cgroup`]: cgroup paths and mounts, pids, start times, a bounded thaw.
//! - [`runsc`]: what a dead shim's gVisor container leaves (sandbox and
//!   gofer host processes, state files) and how it is ended.
//! - [`delete`]: the tolerant delete run by `<shim> delete` after a shim
//!   died, bounded well inside containerd's 5 s cleanup kill.
//! - [`sweep`]: a node sweep of bundles no live shim owns.
#![deny(unsafe_code)]

pub mod bundle;
pub mod cgroup;
pub mod delete;
pub mod inputs;
pub mod logfmt;
pub mod mount;
pub mod owner;
pub mod runsc;
pub mod sweep;

pub use delete::{delete_bundle, DeleteOutcome, DeleteRequest, Limits, Refused};
