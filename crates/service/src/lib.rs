//! The Task service of containerd-shim-robust-v2: containers, their
//! processes and stdio, and the events published about them.
//!
//! - [`Service`] implements containerd's Task API (v2 and v3 share it,
//!   `task`) over a [`robust_runtime::ContainerRuntime`]; one module per
//!   verb: `create`, `start`, `exec`, `kill` (with every signal the shim
//!   delivers), `delete`, `state` (with `Wait` and `Pids`), `rest` (the
//!   other verbs); `stop` runs the bounded stops with escalation.
//! - [`order`]: the exit-ordering rules and a process's state, pure;
//!   `exits` applies them to every exit and OOM; `router` maps reaped pids
//!   to processes.
//! - [`events::Publisher`] forwards task events to containerd, in order,
//!   with retry.
//! - [`stdio`] copies between the container and containerd's FIFOs without
//!   ever blocking the daemon, on the daemon's [`event_loop`].
#![deny(unsafe_code)]

pub mod container;
mod create;
mod delete;
pub mod error;
pub mod event_loop;
pub mod events;
mod exec;
mod exits;
mod kill;
pub mod order;
pub mod process;
mod pty;
mod rest;
mod router;
mod runtime_stats;
mod service;
mod start;
mod state;
pub mod stdio;
mod stop;
mod task;
#[cfg(test)]
mod tests;

pub use stop::StopReport;

pub use error::{Error, Result};
pub use service::Service;
