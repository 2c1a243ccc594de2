//! The one resolve step from a container's config to the runtime that
//! drives it, used by the daemon (containerd's options), the dead-shim
//! `delete` and `sweep` (the bundle's `options.json`, or what the cleanup
//! assumed in its place).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use robust_config::{Config, ConfigError, RuntimeKind};
use robust_reaper::Reaper;

use crate::cli::{Cli, CliConfig, Deadlines};
use crate::container_runtime::ContainerRuntime;
use crate::runc::Runc;
use crate::runsc::Runsc;

/// The verbs whose deadline comes from `[timeouts]`; the others get its
/// `default`.
const TIMED_VERBS: [&str; 10] = [
    "create", "start", "exec", "kill", "delete", "state", "pause", "resume", "update", "ps",
];

/// A resolved runtime: its family and how to run its CLI. Cheap to clone;
/// [`RuntimeSpec::open`] gives the runtime itself.
#[derive(Debug, Clone)]
pub struct RuntimeSpec {
    pub kind: RuntimeKind,
    pub cli: CliConfig,
}

impl RuntimeSpec {
    /// The runtime `cfg` asks for, with its state under `root`: the family
    /// (`[runtime] kind`, else the binary's name), the binary, the cgroup
    /// driver, the family's global flags and a deadline per verb.
    pub fn new(cfg: &Config, root: PathBuf) -> RuntimeSpec {
        let kind = cfg.runtime_kind();
        let per_verb: BTreeMap<String, Duration> = TIMED_VERBS
            .iter()
            .map(|v| (v.to_string(), cfg.timeouts.for_verb(v)))
            .collect();
        let global_flags = match kind {
            RuntimeKind::Runsc => cfg.runsc_flags(),
            RuntimeKind::Runc => Vec::new(),
        };
        RuntimeSpec {
            kind,
            cli: CliConfig {
                binary: PathBuf::from(&cfg.runtime.binary),
                root,
                systemd_cgroup: cfg.runtime.systemd_cgroup,
                global_flags,
                deadlines: Deadlines {
                    per_verb,
                    default: cfg.timeouts.for_verb("default"),
                },
            },
        }
    }

    /// [`RuntimeSpec::new`] with the root `cfg` gives `namespace`.
    pub fn for_namespace(cfg: &Config, namespace: &str) -> Result<RuntimeSpec, ConfigError> {
        Ok(RuntimeSpec::new(cfg, cfg.runtime_root(namespace)?))
    }

    /// Every call under `deadline` (the dead-shim cleanup caps each call
    /// by what is left of its budget).
    pub fn with_deadline(mut self, deadline: Duration) -> RuntimeSpec {
        self.cli.deadlines = Deadlines {
            per_verb: BTreeMap::new(),
            default: deadline,
        };
        self
    }

    /// The runtime, its calls spawned through `reaper`.
    pub fn open(&self, reaper: Reaper) -> Arc<dyn ContainerRuntime> {
        let cli = Cli::new(self.cli.clone(), reaper);
        match self.kind {
            RuntimeKind::Runc => Arc::new(Runc::new(cli)),
            RuntimeKind::Runsc => Arc::new(Runsc::new(cli)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_its_flags_and_deadlines_come_from_the_config() {
        let mut cfg = Config::default();
        let s = RuntimeSpec::for_namespace(&cfg, "ns1").unwrap();
        assert_eq!(s.kind, RuntimeKind::Runc);
        assert!(s.cli.global_flags.is_empty());
        assert!(s.cli.root.ends_with("ns1"), "{:?}", s.cli.root);
        assert_eq!(
            s.cli.deadlines.for_verb("kill"),
            cfg.timeouts.for_verb("kill")
        );
        cfg.runtime.binary = "/usr/bin/runsc".into();
        cfg.runsc_config.insert(
            "platform".into(),
            robust_config::RunscValue::String("ptrace".into()),
        );
        let s = RuntimeSpec::new(&cfg, PathBuf::from("/r"));
        assert_eq!(s.kind, RuntimeKind::Runsc);
        assert_eq!(s.cli.global_flags, ["--platform=ptrace"]);
        let capped = s.with_deadline(Duration::from_millis(300));
        assert_eq!(
            capped.cli.deadlines.for_verb("delete"),
            Duration::from_millis(300)
        );
    }
}
