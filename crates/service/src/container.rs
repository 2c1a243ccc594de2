//! A container: its bundle, its runtime, its init and its execs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
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
    /// What the shim saw at create: the init (pid, start time) and, when it
    /// was the container's alone, its cgroup. Every kill through the
    /// cgroup is checked against it (`robust_cleanup::owner`).
    pub owner: robust_cleanup::owner::OwnerRecord,
    /// The container has a pid namespace of its own (its spec asks for a
    /// new one): when its init dies the kernel ends the rest.
    pub own_pid_ns: bool,
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
    /// runsc: the highest OOM-kill count read from the sandbox's cgroup,
    /// shared by the containers of the pod, for when that cgroup is gone
    /// (`runsc_oom::pod_count`).
    pub pod_oom_kills: Arc<std::sync::atomic::AtomicU64>,
}

/// runsc: put an app container that shares the pod's pid namespace into the
/// sandbox's root pid namespace, where the pause container is pid 1.
///
/// CRI names the shared namespace as `/proc/<sandbox pid>/ns/pid`. runsc
/// only uses that path as a key: the first app container carrying it gets
/// a new pid namespace of its own and the next ones join *that*, so when
/// the first one's init dies gVisor kills every container of the pod
/// ("init process terminating, killing namespace"). Without a pid
/// namespace entry runsc uses the sandbox's, which is what the pod asked
/// for and what runc gives. Returns whether the spec was changed.
pub fn join_sandbox_pid_namespace(bundle: &Path, sandbox_pid: i32, id: &str) -> Result<bool> {
    if sandbox_pid <= 0 {
        return Ok(false);
    }
    let name = "config.json";
    let raw = match robust_bundle::read_file(bundle, name) {
        robust_bundle::FileRead::Bytes(b) => b,
        robust_bundle::FileRead::Missing => {
            return Err(Error::InvalidArgument(format!(
                "container {id}: the bundle has no {name}"
            )))
        }
        robust_bundle::FileRead::Unusable(why) => {
            return Err(Error::InvalidArgument(format!(
                "container {id}: {name} {why}"
            )))
        }
    };
    let mut spec: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::InvalidArgument(format!("container {id}: {name}: {e}")))?;
    let shared = format!("/proc/{sandbox_pid}/ns/pid");
    let Some(namespaces) = spec
        .pointer_mut("/linux/namespaces")
        .and_then(|n| n.as_array_mut())
    else {
        return Ok(false);
    };
    let before = namespaces.len();
    namespaces.retain(|n| {
        !(n.get("type").and_then(|t| t.as_str()) == Some("pid")
            && n.get("path").and_then(|p| p.as_str()) == Some(shared.as_str()))
    });
    if namespaces.len() == before {
        return Ok(false);
    }
    let out = serde_json::to_vec(&spec)
        .map_err(|e| Error::Other(format!("container {id}: encode {name}: {e}")))?;
    robust_bundle::write_atomic(bundle, name, &out)
        .map_err(|e| Error::Io(format!("container {id}: write {name}: {e}")))?;
    log::info!(
        "msg=\"runsc: app container shares the pod's pid namespace; placed in the sandbox's\" id={id} path={}",
        robust_cleanup::logfmt::quote(&shared)
    );
    Ok(true)
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
