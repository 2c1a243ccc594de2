//! Rule 3, *alone*: no other container uses the cgroup or one below it.
//! Other containers are looked for in every other bundle (its record, its
//! live init, its `cgroupsPath`) and every runtime state under the runtime
//! roots (each family's: the cgroups a state names, the cgroup of a live
//! sandbox a state names; `robust_runtime::held_in`). Anything
//! read here only ever stops a kill.

use std::path::{Path, PathBuf};

use robust_bundle::{self as bundle, Input};
use robust_cgroups::Cgroup;

use super::{CgroupDir, OwnerRecord, Scope};
use crate::cgroup::{self as cg, pid_alive};
use robust_runtime::Holds;

/// At most this many entries are looked at per directory of a scan.
const SCAN_LIMIT: usize = 4096;

/// Another container using one of `dirs` or a cgroup below it: who, for
/// the log; `None` when there is none.
pub fn conflict(scope: &Scope, dirs: &[CgroupDir]) -> Option<String> {
    let mut f = Finder { dirs, found: None };
    other_bundles(scope, &mut f);
    if f.found.is_none() {
        runtime_states(scope, &mut f);
    }
    f.found
}

/// The first other container found in one of `dirs` or below.
struct Finder<'a> {
    dirs: &'a [CgroupDir],
    found: Option<String>,
}

impl Finder<'_> {
    fn check(&mut self, who: impl Fn() -> String, theirs: &[PathBuf]) {
        if self.found.is_some() {
            return;
        }
        for t in theirs {
            if let Some(d) = self.dirs.iter().find(|d| t.starts_with(&d.path)) {
                self.found = Some(format!(
                    "cgroup {} is also used by {} ({})",
                    d.path.display(),
                    who(),
                    t.display()
                ));
                return;
            }
        }
    }
}

fn subdirs(d: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .take(SCAN_LIMIT)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup directories of a live process.
fn dirs_of_pid(pid: i32) -> Vec<PathBuf> {
    if !pid_alive(pid) {
        return Vec::new();
    }
    match Cgroup::for_pid(pid as u32) {
        Ok(c) => match c.unified_path() {
            Some(p) => vec![p.to_path_buf()],
            None => c.v1_paths().map(|(_, p)| p.to_path_buf()).collect(),
        },
        Err(_) => Vec::new(),
    }
}

/// Every other bundle under `<state>` (the bundle's grandparent): its
/// record, its live init, its `cgroupsPath`.
fn other_bundles(scope: &Scope, f: &mut Finder) {
    let Some(state) = scope.bundle.parent().and_then(Path::parent) else {
        return;
    };
    let mounts = cg::own_cgroup_mounts();
    let unified = robust_cgroups::is_unified().unwrap_or(false);
    // Relative paths resolve against the cgroup of whoever ran the runtime:
    // this process's is the best guess there is. Read once for every bundle.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for ns in subdirs(state) {
        for b in subdirs(&ns) {
            if b == scope.bundle {
                continue;
            }
            let who = || format!("the container of bundle {}", b.display());
            if let Input::Ok(r) = OwnerRecord::read(&b) {
                let d: Vec<PathBuf> = r.cgroup.iter().map(|d| d.path.clone()).collect();
                f.check(who, &d);
            }
            if let Some(pid) = bundle::read_pid(&b, "init.pid") {
                f.check(who, &dirs_of_pid(pid));
            }
            if let Some(cp) = bundle::read_spec(&b)
                .ok()
                .and_then(|s| s.cgroups_path.clone())
            {
                if let Ok(r) = cg::resolve_cgroups_path(&cp, &mounts, unified, &own) {
                    f.check(who, &r.dirs());
                }
            }
        }
    }
}

/// Every runtime state under the roots that is not of this bundle, in
/// each family's layout (`robust_runtime::held_in`): `<root>/<id>/` (runc
/// without namespaces) and `<root>/<ns>/<id>/` state dirs, and the state
/// files in `<root>/<ns>/`.
fn runtime_states(scope: &Scope, f: &mut Finder) {
    let mut seen = std::collections::HashSet::new();
    for root in &scope.runtime_roots {
        for d1 in subdirs(root) {
            let mut dirs = vec![d1.clone()];
            dirs.extend(subdirs(&d1));
            for sd in dirs {
                if !seen.insert(sd.clone()) {
                    continue;
                }
                for held in robust_runtime::held_in(&sd, SCAN_LIMIT) {
                    if held.bundle.as_deref() == Some(scope.bundle.as_path()) {
                        continue;
                    }
                    let theirs = match held.holds {
                        Holds::Cgroups(dirs) => dirs,
                        Holds::Pid(pid) => dirs_of_pid(pid),
                    };
                    f.check(|| held.who.clone(), &theirs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::RECORD_FILE;

    /// Another bundle's record or a runtime state naming the same cgroup,
    /// or one below it, is a conflict; a sibling or the parent is not.
    #[test]
    fn conflicts_with_other_containers() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        let mine = state.join("ns").join("c1");
        let other = state.join("ns2").join("c2");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let cg = |p: &str| CgroupDir {
            controller: "pids".into(),
            path: d.path().join(p),
            ino: 0,
        };
        let scope = Scope {
            bundle: mine.clone(),
            runtime_roots: vec![d.path().join("runc")],
        };
        let record = |path: &str| OwnerRecord {
            id: "c2".into(),
            init_pid: 0,
            init_start: 0,
            pid_ns: None,
            shared_init: false,
            cgroup: vec![cg(path)],
            not_owned: None,
        };
        for (theirs, clash) in [
            ("cg/shared", true),
            ("cg/shared/child", true),
            ("cg", false),
            ("cg/sibling", false),
            ("cg/shared2", false),
        ] {
            record(theirs).write(&other).unwrap();
            let got = conflict(&scope, &[cg("cg/shared")]);
            assert_eq!(got.is_some(), clash, "{theirs}: {got:?}");
        }
        std::fs::remove_file(other.join(RECORD_FILE)).unwrap();
        // Our own record is not a conflict.
        record("cg/shared").write(&mine).unwrap();
        assert_eq!(conflict(&scope, &[cg("cg/shared")]), None);
        // A runc state of another bundle.
        let st = d.path().join("runc").join("ns").join("c3");
        std::fs::create_dir_all(&st).unwrap();
        let json = |bundle: &Path| {
            serde_json::json!({
                "init_process_pid": 1,
                "cgroup_paths": {"pids": d.path().join("cg/shared").display().to_string()},
                "config": {"labels": [format!("bundle={}", bundle.display())]}
            })
            .to_string()
        };
        std::fs::write(st.join("state.json"), json(&mine)).unwrap();
        assert_eq!(conflict(&scope, &[cg("cg/shared")]), None);
        std::fs::write(st.join("state.json"), json(&other)).unwrap();
        let got = conflict(&scope, &[cg("cg/shared")]).unwrap();
        assert!(got.contains("runtime state"), "{got}");
    }
}
