//! The OCI runtime driver: every call into `runc` (or a runc-compatible CLI)
//! goes through here, and every call has a deadline.
//!
//! - [`Runc`] holds the binary, its root, global flags and the per-verb
//!   [`Deadlines`]; each verb is a method.
//! - Children are spawned through the shim's [`robust_reaper::Reaper`] as
//!   process-group leaders; when a deadline passes the whole group is killed
//!   and reaped, and the call returns [`RuntimeError::Timeout`].
//! - The runtime's own words (its `--log` JSON and stderr) are kept whole in
//!   [`RuntimeError::Failed`]; [`RuntimeError::kind`] classifies them in one
//!   place.
#![deny(unsafe_code)]

mod error;
mod runc;

pub use error::{ErrorKind, RuntimeError};
pub use runc::{
    last_log_error, parse_ps, parse_state, parse_wait, ContainerState, CreateOpts, Deadlines,
    ExecOpts, Runc, RuncConfig, RunscStats, Stdio,
};
pub use runc::{parse_stats, stats};
