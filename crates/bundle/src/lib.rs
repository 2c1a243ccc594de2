//! The bundle: the directory containerd hands the shim for a container,
//! and everything the shim reads and writes in it. Used by `start` (the
//! group's socket), the daemon's `create` (files, rootfs), the dead-shim
//! `delete` and the sweep.
//!
//! - [`files`]: atomic writes (temp + rename), and reads that never follow
//!   a symlink, never block on a FIFO and are bounded; pid files.
//! - [`paths`]: checks of bundle paths before anything under them is
//!   touched, and a removal that neither follows symlinks nor crosses
//!   mounts.
//! - [`spec`]: what the shim takes from `config.json` (cgroups path, the
//!   pod and sandbox annotations, the pid namespace), resolved in one
//!   place; [`group_of`] is the one pod-group rule.
//! - [`inputs`]: every file a shim leaves in its bundle, read tolerantly
//!   (what a dead shim's cleanup starts from).
//! - [`mount`]: mounting the rootfs from containerd's mount list.
#![deny(unsafe_code)]

pub mod files;
pub mod inputs;
pub mod mount;
pub mod paths;
pub mod spec;

pub use files::{
    parse_pid, pid_max, read_file, read_pid, read_text, write_atomic, FileRead, Input, MAX_FILE_LEN,
};
pub use inputs::{read_inputs, BundleInputs};
pub use paths::{check_bundle_path, check_dir_path, remove_tree_one_fs};
pub use spec::{group_of, read_spec, spec_or_assumed, SpecInfo};
