//! The OCI runtime driver: the seam between the shim and a runtime family
//! ([`ContainerRuntime`]), its two families, and the CLI every call goes
//! through, each call with a deadline.
//!
//! - [`ContainerRuntime`]: the verbs (create, start, exec, kill, delete,
//!   state, ps, update, pause/resume, stats) and what the shim must know
//!   of a family so that it never asks which one it drives: where a
//!   container is placed, how its exit is learned, what `kill --all`
//!   reaches, what a delete leaves behind.
//! - [`runc::Runc`] and [`runsc::Runsc`]: the two families, each owning its
//!   quirks. [`RuntimeSpec`] resolves a config to one of them, once, for
//!   the daemon, `delete` and `sweep`.
//! - [`delete::delete`]: the runtime-delete policy every path shares.
//! - [`Cli`]: the runtime's command line. Children are spawned through the
//!   shim's [`robust_reaper::Reaper`] as process-group leaders; when a
//!   deadline passes the whole group is killed and reaped, and the call
//!   returns [`RuntimeError::Timeout`]. The runtime's own words (its
//!   `--log` JSON and stderr) are kept whole in [`RuntimeError::Failed`];
//!   [`RuntimeError::kind`] classifies them in one place.
//! - `fake` (feature `testing`): a scriptable runtime for tests.
#![deny(unsafe_code)]

mod cli;
mod container_runtime;
pub mod delete;
mod error;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod procfs;
mod resolve;
pub mod runc;
pub mod runsc;
pub mod states;

pub use cli::{
    last_log_error, parse_ps, parse_state, Cli, CliConfig, ContainerState, CreateOpts, Deadlines,
    ExecOpts, Stdio,
};
pub use container_runtime::{
    ContainerRuntime, ExitSource, Leftovers, Placement, SpecEdit, StateRecord, Subject,
};
pub use error::{ErrorKind, RuntimeError};
pub use resolve::RuntimeSpec;
pub use runsc::parse_wait;
pub use runsc::stats::{
    parse_stats, CpuStats, CpuUsage, MemoryEntry, MemoryStats, PidsStats, RuntimeStats,
};
pub use states::{held_in, probe, Held, Holds};
