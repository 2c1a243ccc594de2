//! The shim's configuration: the [`Config`] type, its defaults, the TOML
//! entry points and what is resolved from it (runtime family, root, runsc
//! flags). The key-by-key reading lives in the private `walk` module; the
//! `[runtime]` table is in `runtime`, the `[timeouts]` table in `timeouts`,
//! and the bundle's `options.json` in `options_json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use log::LevelFilter;

use crate::error::ConfigError;
use crate::{ids, walk};

mod options_json;
mod runtime;
#[cfg(test)]
mod tests;
mod timeouts;

pub use runtime::{RunscValue, RuntimeConfig, RuntimeKind};
pub use timeouts::Timeouts;

/// Largest config file (or `options.json`) the crate reads, in bytes.
///
/// A real config is a few hundred bytes; the bound keeps a wrong path such
/// as `/dev/zero` from eating the shim's memory.
pub const MAX_FILE_LEN: u64 = 1 << 20;

/// Parent of the runtime root when none is configured: the effective root
/// is `/run/containerd/runc/<namespace>`, as with containerd's runc shim.
pub const DEFAULT_ROOT_PARENT: &str = "/run/containerd/runc";

/// Default parent of runsc's state root (`--root <parent>/<namespace>`).
pub const DEFAULT_RUNSC_ROOT_PARENT: &str = "/run/containerd/runsc";

/// Default runtime binary.
pub const DEFAULT_BINARY: &str = "runc";

/// The shim's configuration, with safe defaults.
///
/// Build it with [`Config::default`], [`Config::load`], [`Config::parse`],
/// [`crate::options::config_from_any`] or [`Config::from_options_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The OCI runtime and how to call it (`[runtime]`).
    pub runtime: RuntimeConfig,
    /// Every deadline and grace period (`[timeouts]`).
    pub timeouts: Timeouts,
    /// The shim's log level (`log_level`).
    pub log_level: LevelFilter,
    /// Extra runsc flags (`[runsc_config]`), sorted by name. See
    /// [`Config::runsc_flags`].
    pub runsc_config: BTreeMap<String, RunscValue>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            runtime: RuntimeConfig::default(),
            timeouts: Timeouts::default(),
            log_level: LevelFilter::Info,
            runsc_config: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Reads and parses the TOML file at `path`.
    ///
    /// Errors name the file: it cannot be read, is larger than
    /// [`MAX_FILE_LEN`], is not UTF-8 or not TOML, or a key is wrong.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Config::parse(&text, path)
    }

    /// Parses TOML text. `origin` names the text in errors and warnings
    /// (the file it came from, or a pseudo path).
    ///
    /// Unknown keys are logged at warn level (once per origin and key) and
    /// otherwise ignored; a key of the wrong type or an invalid value is an
    /// error.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let parsed = walk::parse_toml(text, origin)?;
        walk::warn_unknown(origin, &parsed.unknown);
        Ok(parsed.config)
    }

    /// The runtime family: `[runtime] kind` when set, else inferred from
    /// the binary's file name ([`RuntimeKind::from_binary`]).
    pub fn runtime_kind(&self) -> RuntimeKind {
        self.runtime
            .kind
            .unwrap_or_else(|| RuntimeKind::from_binary(&self.runtime.binary))
    }

    /// The runtime's `--root` for a namespace: the configured root (or
    /// [`DEFAULT_ROOT_PARENT`], [`DEFAULT_RUNSC_ROOT_PARENT`] for runsc)
    /// joined with the namespace, as containerd's runc shim does. The
    /// namespace is validated first, since it becomes a path component.
    pub fn runtime_root(&self, namespace: &str) -> Result<PathBuf, ConfigError> {
        ids::validate(ids::NAMESPACE, namespace)?;
        let default = match self.runtime_kind() {
            RuntimeKind::Runc => DEFAULT_ROOT_PARENT,
            RuntimeKind::Runsc => DEFAULT_RUNSC_ROOT_PARENT,
        };
        let parent = self.runtime.root.as_deref().unwrap_or(Path::new(default));
        Ok(parent.join(namespace))
    }

    /// The `[runsc_config]` table as runsc flags, `--key=value`, sorted by
    /// key; booleans are written `--key=true` / `--key=false`.
    pub fn runsc_flags(&self) -> Vec<String> {
        self.runsc_config
            .iter()
            .map(|(k, v)| format!("--{k}={v}"))
            .collect()
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    // A FIFO (or a terminal) would block the open or the read forever, and
    // `start` with it: only a regular file (or a symlink to one) is read.
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::other("not a regular file")));
    }
    let file = File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() as u64 > MAX_FILE_LEN {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_LEN,
        });
    }
    Ok(buf)
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = read_bounded(path)?;
    String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: format!("not utf-8 (at byte {})", e.utf8_error().valid_up_to()),
    })
}
