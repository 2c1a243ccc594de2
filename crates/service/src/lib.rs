//! The Task service of containerd-shim-robust-v2: containers, their
//! processes and stdio, and the events published about them.
//!
//! - [`Service`] implements containerd's Task API (v2 and v3 share it) over
//!   the runtime driver of `robust-runtime`.
//! - [`events::Publisher`] forwards task events to containerd, in order,
//!   with retry.
//! - [`stdio`] copies between the container and containerd's FIFOs without
//!   ever blocking the daemon, on the daemon's [`event_loop`].
#![deny(unsafe_code)]

pub mod container;
pub mod error;
pub mod event_loop;
pub mod events;
pub mod process;
mod pty;
mod runsc_stats;
mod service;
pub mod stdio;
mod stop;

pub use stop::StopReport;

pub use error::{Error, Result};
pub use service::Service;
