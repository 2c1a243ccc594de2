//! What the shim takes from the bundle's `config.json` (the OCI spec),
//! resolved in this one place: the cgroups path, the CRI annotations that
//! say which pod a container belongs to and whether it is the pod's
//! sandbox, and whether it gets a pid namespace of its own.
//!
//! The file is read as every bundle file is ([`crate::read_file`]): never
//! through a symlink, never blocking, bounded.

use std::path::Path;

use serde_json::Value;

use crate::files::{read_file, Input};

/// CRI's annotation naming the pod's sandbox container.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// CRI's annotation telling the sandbox (`sandbox`) from the containers of
/// a pod (`container`).
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// The facts of a `config.json` the shim uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecInfo {
    /// `linux.cgroupsPath`, if set.
    pub cgroups_path: Option<String>,
    /// An app container of a CRI pod ([`CONTAINER_TYPE`] set and not
    /// `sandbox`). In a runtime that runs a pod in one sandbox its host pid
    /// is the pod's sandbox, shared by every container of the pod.
    pub pod_app: bool,
    /// The pod's sandbox id ([`SANDBOX_ID`]), as written (even empty).
    pub sandbox_id: Option<String>,
    /// The spec asks for a new pid namespace (a `pid` entry without a
    /// path): when the init dies the kernel ends the rest.
    pub own_pid_ns: bool,
}

impl SpecInfo {
    /// What is assumed without a usable `config.json`: a container of its
    /// own (no pod, so it owns its sandbox), in a pid namespace of its own
    /// (so nothing beyond its init is killed for it), no cgroups path.
    pub fn assumed() -> SpecInfo {
        SpecInfo {
            own_pid_ns: true,
            ..SpecInfo::default()
        }
    }

    fn from_json(v: &Value) -> SpecInfo {
        let annotation = |key: &str| v.get("annotations")?.get(key)?.as_str();
        SpecInfo {
            cgroups_path: v
                .pointer("/linux/cgroupsPath")
                .and_then(|p| p.as_str())
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            pod_app: annotation(CONTAINER_TYPE).is_some_and(|t| t != "sandbox"),
            sandbox_id: annotation(SANDBOX_ID).map(str::to_string),
            own_pid_ns: v
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

    /// The pod's sandbox container, or the container itself: not an app
    /// container of a pod. In a runtime that runs a pod in one sandbox only
    /// this one owns the sandbox process.
    pub fn owns_sandbox(&self) -> bool {
        !self.pod_app
    }

    /// The daemon group of container `id`: its pod (the sandbox id), or
    /// itself when it names no pod.
    pub fn group<'a>(&'a self, id: &'a str) -> &'a str {
        self.sandbox_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(id)
    }
}

/// The bundle's `config.json`, read tolerantly: missing, unusable (with
/// why), or its facts.
pub fn read_spec(bundle: &Path) -> Input<SpecInfo> {
    read_file(bundle, "config.json").decode(|b| match serde_json::from_slice::<Value>(&b) {
        Ok(v) if v.is_object() => Ok(SpecInfo::from_json(&v)),
        Ok(_) => Err("not a json object".into()),
        Err(e) => Err(format!("invalid json: {e}")),
    })
}

/// The bundle's spec facts, or [`SpecInfo::assumed`] when `config.json` is
/// missing or unusable.
pub fn spec_or_assumed(bundle: &Path) -> SpecInfo {
    match read_spec(bundle) {
        Input::Ok(s) => s,
        _ => SpecInfo::assumed(),
    }
}

/// The daemon group of the container of `bundle` ([`SpecInfo::group`]),
/// the one rule `start` (which socket to serve), the dead-shim `delete`
/// (which socket to remove) and the daemon agree on.
pub fn group_of(bundle: &Path, id: &str) -> String {
    spec_or_assumed(bundle).group(id).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(d: &Path, json: &str) {
        fs::write(d.join("config.json"), json).unwrap();
    }

    #[test]
    fn the_spec_says_whether_it_is_an_app_container_of_a_pod() {
        let d = tempfile::tempdir().unwrap();
        let kind = |t: &str| {
            write(
                d.path(),
                &format!(
                    r#"{{"annotations":{{"io.kubernetes.cri.container-type":"{t}","io.kubernetes.cri.sandbox-id":"p1"}}}}"#
                ),
            );
            read_spec(d.path())
        };
        assert!(matches!(kind("container"), Input::Ok(s) if s.pod_app && !s.owns_sandbox()));
        assert!(matches!(kind("sandbox"), Input::Ok(s) if !s.pod_app && s.owns_sandbox()));
        // ctr's containers carry no annotation: not an app container
        write(d.path(), r#"{"annotations":{}}"#);
        assert!(matches!(read_spec(d.path()), Input::Ok(s) if !s.pod_app));
        // Without a spec: a container of its own.
        fs::remove_file(d.path().join("config.json")).unwrap();
        assert!(spec_or_assumed(d.path()).owns_sandbox());
    }

    #[test]
    fn group_from_sandbox_annotation() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(group_of(d.path(), "c1"), "c1");
        write(
            d.path(),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        );
        assert_eq!(group_of(d.path(), "c1"), "pod1");
        assert_eq!(
            spec_or_assumed(d.path()).sandbox_id.as_deref(),
            Some("pod1")
        );
        write(
            d.path(),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":""}}"#,
        );
        assert_eq!(group_of(d.path(), "c1"), "c1");
        assert_eq!(spec_or_assumed(d.path()).sandbox_id.as_deref(), Some(""));
        write(d.path(), "not json");
        assert_eq!(group_of(d.path(), "c1"), "c1");
        write(d.path(), r#"["io.kubernetes.cri.sandbox-id"]"#);
        assert_eq!(group_of(d.path(), "c1"), "c1");
    }

    /// Issue 14: `start` read `config.json` through a symlink while the
    /// dead-shim `delete` did not, so the two could place the group's
    /// socket differently. The one rule never follows a symlink: a
    /// `config.json` that is one names no pod.
    #[test]
    fn a_symlinked_config_json_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("spec.json");
        fs::write(
            &target,
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"elsewhere"}}"#,
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("config.json")).unwrap();
        assert!(matches!(read_spec(d.path()), Input::Unusable(w) if w.contains("symlink")));
        assert_eq!(group_of(d.path(), "c1"), "c1");
        assert_eq!(spec_or_assumed(d.path()), SpecInfo::assumed());
    }

    #[test]
    fn cgroups_path_and_pid_namespace() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "{}");
        assert_eq!(read_spec(d.path()), Input::Ok(SpecInfo::default()));
        write(
            d.path(),
            r#"{"linux":{"cgroupsPath":"/default/c1","namespaces":[{"type":"mount"},{"type":"pid"}]}}"#,
        );
        let s = spec_or_assumed(d.path());
        assert_eq!(s.cgroups_path.as_deref(), Some("/default/c1"));
        assert!(s.own_pid_ns);
        // Joining another namespace (a path) is not one of its own; no pid
        // entry at all is the host's.
        write(
            d.path(),
            r#"{"linux":{"cgroupsPath":"","namespaces":[{"type":"pid","path":"/proc/1/ns/pid"}]}}"#,
        );
        let s = spec_or_assumed(d.path());
        assert_eq!(s.cgroups_path, None);
        assert!(!s.own_pid_ns);
        write(d.path(), r#"{"linux":{"namespaces":[{"type":"mount"}]}}"#);
        assert!(!spec_or_assumed(d.path()).own_pid_ns);
        // Without a spec, assumed.
        fs::remove_file(d.path().join("config.json")).unwrap();
        assert!(spec_or_assumed(d.path()).own_pid_ns);
    }
}
