//! runc (and runc-compatible CLIs such as crun): the family whose container
//! is its own host process. Every hook of [`ContainerRuntime`] keeps its
//! default: the init is reaped by host pid, its cgroup may be the
//! container's own, `kill --all` is never used (the shim signals the rest
//! through a proven cgroup), and the init's cgroup gives `Stats`.

use std::path::Path;

use crate::cli::{cli_verbs, Cli};
use crate::container_runtime::ContainerRuntime;

/// runc, driven through the shared CLI.
pub struct Runc {
    cli: Cli,
}

impl Runc {
    pub fn new(cli: Cli) -> Runc {
        Runc { cli }
    }
}

impl ContainerRuntime for Runc {
    fn family(&self) -> &'static str {
        "runc"
    }

    fn root(&self) -> &Path {
        &self.cli.config().root
    }

    cli_verbs!(cli);
}
