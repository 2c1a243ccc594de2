//! A container: its bundle, its runtime, its init and its execs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use robust_config::{Config, RuntimeKind};
use robust_reaper::Reaper;
use robust_runtime::{Deadlines, Runc, RuncConfig};

use crate::error::{Error, Result};
use crate::process::Process;

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runc: Runc,
    pub config: Config,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// The rootfs we mounted (and so must unmount), if any.
    pub rootfs: Option<PathBuf>,
    /// The init's cgroup, found at create: still usable after the init is
    /// gone, to kill what is left in it.
    pub cgroup: Option<robust_cgroups::Cgroup>,
    /// An escalation is already running for this container.
    pub escalating: std::sync::atomic::AtomicBool,
    /// The cgroup's OOM-kill count already published as TaskOOM events.
    pub oom_published: Mutex<u64>,
    /// The init exited while execs still ran: its TaskExit waits for theirs.
    pub init_exit_held: Mutex<bool>,
    /// The runtime family (runc or runsc) driving this container.
    pub kind: RuntimeKind,
    /// The pod's sandbox, or a container of its own (not an app container
    /// of a pod): with runsc only this one owns the sandbox process.
    pub owns_sandbox: bool,
}

/// CRI's annotation telling the sandbox from the containers of a pod.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// True unless the bundle's spec says this is an app container of a pod.
pub fn owns_sandbox(bundle: &std::path::Path) -> bool {
    let Ok(raw) = std::fs::read(bundle.join("config.json")) else {
        return true;
    };
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&raw) else {
        return true;
    };
    spec.get("annotations")
        .and_then(|a| a.get(CONTAINER_TYPE))
        .and_then(|v| v.as_str())
        .is_none_or(|t| t == "sandbox")
}

impl Container {
    /// The init (empty exec id) or the named exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .map_err(|_| Error::poisoned("execs"))?
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(format!("exec {exec_id} of container {} not found", self.id))
            })
    }

    /// Execs that were started and have not exited yet.
    pub fn live_execs(&self) -> Vec<Arc<Process>> {
        self.execs
            .lock()
            .map(|m| {
                m.values()
                    .filter(|p| {
                        p.lock()
                            .map(|s| s.pid > 0 && s.exited_at.is_none())
                            .unwrap_or(false)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when the container has its own pid namespace (the kernel then
    /// kills everything in it when the init dies).
    pub fn own_pid_namespace(&self) -> bool {
        let Ok(raw) = std::fs::read(self.bundle.join("config.json")) else {
            return true;
        };
        let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            return true;
        };
        spec.pointer("/linux/namespaces")
            .and_then(|n| n.as_array())
            .map(|ns| {
                ns.iter().any(|n| {
                    n.get("type").and_then(|t| t.as_str()) == Some("pid")
                        && n.get("path")
                            .and_then(|p| p.as_str())
                            .unwrap_or("")
                            .is_empty()
                })
            })
            .unwrap_or(false)
    }

    pub fn pid_file(&self, exec_id: &str) -> PathBuf {
        if exec_id.is_empty() {
            self.bundle.join("init.pid")
        } else {
            self.bundle.join(format!("{exec_id}.pid"))
        }
    }
}

/// The runtime driver a config asks for, in `namespace`.
pub fn runc_from_config(cfg: &Config, namespace: &str, reaper: Reaper) -> Result<Runc> {
    let root = cfg.runtime_root(namespace)?;
    let mut per_verb = BTreeMap::new();
    for verb in [
        "create", "start", "exec", "kill", "delete", "state", "pause", "resume", "update", "ps",
    ] {
        per_verb.insert(verb.to_string(), cfg.timeouts.for_verb(verb));
    }
    let global_flags = match cfg.runtime_kind() {
        RuntimeKind::Runsc => cfg.runsc_flags(),
        RuntimeKind::Runc => Vec::new(),
    };
    Ok(Runc::new(
        RuncConfig {
            binary: PathBuf::from(&cfg.runtime.binary),
            root,
            systemd_cgroup: cfg.runtime.systemd_cgroup,
            global_flags,
            deadlines: Deadlines {
                per_verb,
                default: cfg.timeouts.for_verb("default"),
            },
        },
        reaper,
    ))
}
