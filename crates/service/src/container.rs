//! A container: its bundle, its runtime, its init and its execs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use robust_config::Config;
use robust_runtime::{ContainerRuntime, ExitSource, Placement, Subject};

use crate::error::{Error, Result};
use crate::process::Process;

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Arc<dyn ContainerRuntime>,
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
    /// Where its runtime placed it: with a host pid and cgroup of its own,
    /// or inside its pod's sandbox.
    pub placement: Placement,
    /// How its init's exit is learned.
    pub exit_source: ExitSource,
    /// The pod's sandbox id its spec names, if any.
    pub pod_sandbox: Option<String>,
}

/// CRI's annotation telling the sandbox from the containers of a pod.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// CRI's annotation naming the pod's sandbox container.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// What the shim takes from the bundle's `config.json` at create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFacts {
    /// An app container of a pod (not the sandbox, not a container of its
    /// own).
    pub pod_app: bool,
    /// The pod sandbox id its spec names, if any.
    pub sandbox_id: Option<String>,
    /// Its spec asks for a pid namespace of its own (the kernel then kills
    /// everything in it when the init dies).
    pub own_pid_ns: bool,
}

impl SpecFacts {
    /// Read once at create, bounded and without following a symlink;
    /// without a usable spec: a container of its own, with its own pid
    /// namespace (nothing extra is killed).
    pub fn read(bundle: &Path) -> SpecFacts {
        let spec = match robust_cleanup::bundle::read_file(bundle, "config.json") {
            robust_cleanup::bundle::FileRead::Bytes(b) => {
                serde_json::from_slice::<serde_json::Value>(&b).ok()
            }
            _ => None,
        };
        let Some(spec) = spec else {
            return SpecFacts {
                pod_app: false,
                sandbox_id: None,
                own_pid_ns: true,
            };
        };
        let annotation = |k: &str| {
            spec.get("annotations")
                .and_then(|a| a.get(k))
                .and_then(|v| v.as_str())
        };
        SpecFacts {
            pod_app: annotation(CONTAINER_TYPE).is_some_and(|t| t != "sandbox"),
            sandbox_id: annotation(SANDBOX_ID).map(str::to_string),
            own_pid_ns: spec
                .pointer("/linux/namespaces")
                .and_then(|n| n.as_array())
                .is_some_and(|ns| {
                    ns.iter().any(|n| {
                        n.get("type").and_then(|t| t.as_str()) == Some("pid")
                            && n.get("path")
                                .and_then(|p| p.as_str())
                                .unwrap_or("")
                                .is_empty()
                    })
                }),
        }
    }
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
            .map(|m| m.values().filter(|p| p.is_live()).cloned().collect())
            .unwrap_or_default()
    }

    pub fn pid_file(&self, exec_id: &str) -> PathBuf {
        if exec_id.is_empty() {
            self.bundle.join("init.pid")
        } else {
            self.bundle.join(format!("{exec_id}.pid"))
        }
    }

    /// What the runtime's hooks need to know of it.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            id: &self.id,
            bundle: &self.bundle,
            placement: self.placement,
            pod_sandbox: self.pod_sandbox.as_deref(),
            init_pid: self.init.pid(),
        }
    }

    /// The cgroup's OOM-kill count now, when the cgroup is the container's
    /// own (an app container of a pod sandbox shares the sandbox's: its
    /// OOMs are the sandbox's to report).
    pub fn oom_count(&self) -> Option<u64> {
        if !self.placement.is_own() {
            return None;
        }
        self.cgroup.as_ref().and_then(|cg| cg.oom_kill_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_facts_from_cri_annotations_and_namespaces() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            SpecFacts::read(d.path()),
            SpecFacts {
                pod_app: false,
                sandbox_id: None,
                own_pid_ns: true
            },
            "no spec"
        );
        std::fs::write(
            d.path().join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.container-type":"container",
                "io.kubernetes.cri.sandbox-id":"pod1"},
               "linux":{"namespaces":[{"type":"pid","path":"/proc/9/ns/pid"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            SpecFacts::read(d.path()),
            SpecFacts {
                pod_app: true,
                sandbox_id: Some("pod1".into()),
                own_pid_ns: false
            }
        );
        std::fs::write(
            d.path().join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox"},
               "linux":{"namespaces":[{"type":"pid"}]}}"#,
        )
        .unwrap();
        let f = SpecFacts::read(d.path());
        assert!(!f.pod_app && f.own_pid_ns);
    }
}
