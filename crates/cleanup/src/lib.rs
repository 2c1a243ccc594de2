//! Cleanup: everything that puts a container's files and mounts in place
//! and takes them away again, with or without a live shim.
//!
//! The bundle's files, its spec and the rootfs mount are robust-bundle's;
//! this crate takes them down again.
//!
//! - [`mount`]: the unmount that retries on `EBUSY`, then detaches lazily
//!   and names who held the mount; it never follows a symlink.
//! - [`runtime_choice`]: which runtime and root to drive for a dead shim's
//!   container, from what its bundle still says. What each runtime family
//!   leaves and how it is ended is the family's
//!   (`robust_runtime::Leftovers`).
//! - [`owner`]: the ownership rule: a cgroup is killed, thawed or removed
//!   only when the shim recorded it at create as the container's alone and
//!   no other container uses it now.
//! - [`cgroup`]: cgroup paths and mounts, pids, start times, a bounded thaw.
//! - [`delete`]: the tolerant delete run by `<shim> delete` after a shim
//!   died, bounded well inside containerd's 5 s cleanup kill.
//! - [`sweep`]: a node sweep of bundles no live shim owns.
#![deny(unsafe_code)]

pub mod cgroup;
pub mod delete;
pub mod logfmt;
pub mod mount;
pub mod owner;
pub mod runtime_choice;
pub mod sweep;

pub use delete::{delete_bundle, DeleteOutcome, DeleteRequest, Limits, Refused};
