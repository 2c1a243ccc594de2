//! Cleanup: everything that puts a container's files and mounts in place
//! and takes them away again.
//!
//! - [`mount`]: mounting the rootfs from containerd's mount list, and the
//!   unmount that retries on `EBUSY`, then detaches lazily and names who
//!   held the mount.
//! - [`bundle`]: tolerant reads of bundle files and atomic writes
//!   (temp + rename), so a crash never leaves a half-written file behind.
#![deny(unsafe_code)]

pub mod bundle;
pub mod mount;
