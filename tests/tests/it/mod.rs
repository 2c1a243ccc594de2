//! The cases, by the interface they drive.

pub use robust_integration::*;
pub use std::time::Duration;

/// Cases driven through the containerd gRPC API.
pub mod api_cases;
/// Bystanders of cleanup: host processes and containers in sibling, parent, child and
/// shared cgroups survive every delete path; a host-pid-namespace init's leftovers die
/// with it (issue 12).
pub mod bystander;
/// Cases driven through the CRI API.
pub mod cri_cases;
/// Cases driven through `ctr` commands.
pub mod ctr_cases;
/// Dead shims and dead-shim cleanup: missing bundle files, busy rootfs, sweep (issue 4).
pub mod dead_shim;
/// Events and state across restarts, OOMs, load and shared pid namespaces (issue 5).
pub mod events;
/// A process that leaves a background child holding its output: bounded drain (issue 12 A).
pub mod exec_io;
/// gVisor: runsc through the same shim: ctr, CRI handler `gvisor`, F2, dead shims (issue 6).
pub mod gvisor;
/// A runtime that hangs on one verb (integration/fault-runtime.sh): deadlines (issue 3).
pub mod hangs;
/// Input edges: non-UTF-8 arguments, over-long ids, resize after the exit (issue 12 B).
pub mod input_edges;
/// Reaping on every path and bounded stops with escalation (issue 3).
pub mod reaping;
