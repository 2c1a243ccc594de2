//! runc (and runc-compatible CLIs such as crun): the family whose container
//! is its own host process. Every hook of [`ContainerRuntime`] keeps its
//! default: the init is reaped by host pid, its cgroup may be the
//! container's own, `kill --all` is never used (the shim signals the rest
//! through a proven cgroup), and the init's cgroup gives `Stats`. Its
//! state of a container is a directory, `<root>/<id>`, with `state.json`
//! ([`state_file`]).

pub mod state_file;

use std::path::{Path, PathBuf};

use robust_logfmt::quote;

use crate::cli::{cli_verbs, Cli};
use crate::container_runtime::{ContainerRuntime, Leftovers, StateRecord};

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

    fn leftovers(&self) -> &dyn Leftovers {
        self
    }
}

impl Runc {
    /// runc's state directory of the container.
    fn state_dir(&self, id: &str) -> PathBuf {
        self.cli.config().root.join(id)
    }
}

impl Leftovers for Runc {
    fn has_state(&self, id: &str) -> bool {
        std::fs::symlink_metadata(self.state_dir(id)).is_ok()
    }

    fn describe_state(&self, id: &str) -> String {
        self.state_dir(id).display().to_string()
    }

    fn state_record(&self, id: &str) -> Option<StateRecord> {
        let s = state_file::read_runc_state(&self.state_dir(id))?;
        Some(StateRecord {
            bundle: s.bundle,
            init_pid: s.init_pid,
            init_start: s.init_start,
        })
    }

    /// runc did not finish its delete in time (a loaded node), but nothing
    /// of the container runs any more: what runc would still remove is its
    /// state dir, so remove that (without following symlinks).
    fn forget_dead(&self, id: &str, nothing_alive: bool, cause: &str) -> Result<bool, String> {
        let dir = self.state_dir(id);
        if !nothing_alive || std::fs::symlink_metadata(&dir).is_err() {
            return Ok(false);
        }
        match robust_bundle::remove_tree_one_fs(&dir) {
            Ok(()) => {
                log::warn!(
                    "msg=\"cleanup: runc could not delete in time; removed its state of the dead container by hand\" id={id} dir={} runtime_error={}",
                    quote(dir.display()),
                    quote(cause)
                );
                Ok(true)
            }
            Err(e) => {
                log::warn!(
                    "msg=\"cleanup: cannot remove runc's state dir\" id={id} dir={} error={}",
                    quote(dir.display()),
                    quote(&e)
                );
                Ok(false)
            }
        }
    }
}
