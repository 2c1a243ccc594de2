//! robust-config: every configuration input of `containerd-shim-robust-v2`,
//! parsed and validated in one place.
//!
//! The shim's inputs, and the entry point for each:
//!
//! | input | entry point |
//! | --- | --- |
//! | the shim's TOML config file (`runtime-config/robust.toml` is a commented sample) | [`Config::load`], [`Config::parse`] |
//! | runtime options in a protobuf `Any` (runc `Options` or CRI `runtimeoptions`) | [`options::config_from_any`] |
//! | the `start` stdin (an options `Any` from containerd 1.6 to 2.2, a `BootstrapParams` from 2.3) | [`start_input::parse`] |
//! | the effective config persisted in the bundle as `options.json` | [`Config::to_options_json`], [`Config::from_options_json`], [`Config::load_options_json`] |
//! | container ids, exec ids and namespaces | [`ids::validate`] |
//!
//! A typical `start`:
//!
//! ```no_run
//! # fn main() -> Result<(), robust_config::ConfigError> {
//! let stdin: Vec<u8> = Vec::new(); // read at most start_input::MAX_INPUT_LEN bytes
//! let input = robust_config::start_input::parse(&stdin)?;
//! let config = match &input.options {
//!     Some((type_url, value)) => robust_config::options::config_from_any(type_url, value)?,
//!     None => robust_config::Config::default(),
//! };
//! let deadline = config.timeouts.for_verb("create");
//! let root = config.runtime_root("k8s.io")?;
//! # let _ = (deadline, root);
//! # Ok(()) }
//! ```
//!
//! Rules shared by every input:
//! - Defaults are safe without any file ([`Config::default`]).
//! - Unknown keys, fields and option types are not errors (containerd and
//!   CRI evolve); unknown config keys are logged at warn level, once per
//!   file and key.
//! - A wrong type, an invalid value, an unparsable or zero duration, or
//!   undecodable bytes are errors: one [`ConfigError`] whose message is
//!   lower case and names the file (or input) and the key.
//! - No input makes the crate panic; sizes and durations are bounded
//!   ([`config::MAX_FILE_LEN`], [`start_input::MAX_INPUT_LEN`],
//!   [`duration::MAX_DURATION`]).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod duration;
mod error;
pub mod ids;
pub mod options;
pub mod start_input;
mod walk;

pub use config::{Config, RunscValue, RuntimeConfig, RuntimeKind, Timeouts};
pub use error::ConfigError;
pub use start_input::{Bootstrap, StartInput};
