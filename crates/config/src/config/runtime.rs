//! The `[runtime]` table and the runtime family it names.

use std::path::{Path, PathBuf};

use super::DEFAULT_BINARY;

/// The `[runtime]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The runtime binary: a name looked up in `PATH`, or a path.
    pub binary: String,
    /// The runtime's state root parent; `None` means
    /// [`super::DEFAULT_ROOT_PARENT`]. See [`super::Config::runtime_root`].
    pub root: Option<PathBuf>,
    /// Use the systemd cgroup driver (`--systemd-cgroup`).
    pub systemd_cgroup: bool,
    /// Pass `--no-pivot` to `create`.
    pub no_pivot_root: bool,
    /// Pass `--no-new-keyring` to `create`.
    pub no_new_keyring: bool,
    /// The criu binary for checkpoint / restore.
    pub criu_path: Option<PathBuf>,
    /// The runtime family, when set explicitly. `None` means inferred from
    /// the binary's file name: see [`super::Config::runtime_kind`].
    pub kind: Option<RuntimeKind>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            binary: DEFAULT_BINARY.to_string(),
            root: None,
            systemd_cgroup: false,
            no_pivot_root: false,
            no_new_keyring: false,
            criu_path: None,
            kind: None,
        }
    }
}

/// The runtime family: it decides how the shim drives the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// runc and runtimes with runc's CLI.
    Runc,
    /// gVisor's runsc.
    Runsc,
}

impl RuntimeKind {
    /// The name as written in the config: `"runc"` or `"runsc"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Runsc => "runsc",
        }
    }

    /// Parses `"runc"` or `"runsc"`.
    pub fn from_name(name: &str) -> Option<RuntimeKind> {
        match name {
            "runc" => Some(RuntimeKind::Runc),
            "runsc" => Some(RuntimeKind::Runsc),
            _ => None,
        }
    }

    /// Infers the family from a binary name or path: runsc when the file
    /// name is `runsc` or starts with `runsc` (e.g. `runsc-debug`), runc
    /// otherwise.
    pub fn from_binary(binary: &str) -> RuntimeKind {
        let file_name = Path::new(binary)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        if file_name.starts_with("runsc") {
            RuntimeKind::Runsc
        } else {
            RuntimeKind::Runc
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value of the `[runsc_config]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunscValue {
    /// A string flag value.
    String(String),
    /// A boolean flag, written `--key=true` or `--key=false`.
    Bool(bool),
    /// An integer flag value.
    Integer(i64),
}

impl std::fmt::Display for RunscValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunscValue::String(s) => f.write_str(s),
            RunscValue::Bool(b) => write!(f, "{b}"),
            RunscValue::Integer(i) => write!(f, "{i}"),
        }
    }
}
