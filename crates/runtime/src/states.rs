//! What runtime roots hold, read from their files without running a
//! runtime: which family has state of a container under a root (the
//! dead-shim cleanup's probe when `options.json` is gone), and the
//! containers whose state lies in a directory, with what each holds (the
//! ownership rule's look at other containers). Each family's layout is
//! its own module's (`runc::state_file`, `runsc::state`).

use std::path::{Path, PathBuf};

use robust_config::RuntimeKind;

use crate::{runc, runsc};

/// The family holding state of container `id` under `root` (a runtime
/// root, namespace included): a runc state dir `<id>/` (whose `state.json`,
/// when readable, must name `bundle` in its `bundle=` label), or a runsc
/// state file `<id>_sandbox:*.state`.
pub fn probe(root: &Path, id: &str, bundle: &Path) -> Option<RuntimeKind> {
    let st = root.join(id);
    if std::fs::symlink_metadata(&st).is_ok_and(|m| m.is_dir()) {
        let other_bundle = runc::state_file::read_runc_state(&st)
            .and_then(|s| s.bundle)
            .is_some_and(|b| b != bundle);
        return (!other_bundle).then_some(RuntimeKind::Runc);
    }
    runsc::state::has_state(root, id).then_some(RuntimeKind::Runsc)
}

/// What a container's runtime state says it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// These cgroup directories (runc's `cgroup_paths`).
    Cgroups(Vec<PathBuf>),
    /// The cgroups of this live host process (a runsc sandbox).
    Pid(i32),
}

/// A container whose state a runtime root holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Which state, for a log line.
    pub who: String,
    /// The bundle the runtime recorded.
    pub bundle: Option<PathBuf>,
    pub holds: Holds,
}

/// The containers whose state lies directly in `dir`: `dir` itself as a
/// runc state dir (`state.json`), and the runsc state files in it (at most
/// `limit` entries looked at; one without a sandbox pid holds nothing).
pub fn held_in(dir: &Path, limit: usize) -> Vec<Held> {
    let mut out = Vec::new();
    if let Some(s) = runc::state_file::read_runc_state(dir) {
        out.push(Held {
            who: format!("the runtime state {}", dir.display()),
            bundle: s.bundle,
            holds: Holds::Cgroups(s.cgroup_paths.into_iter().map(|(_, p)| p).collect()),
        });
    }
    out.extend(
        runsc::state::states_in(dir, limit)
            .into_iter()
            .filter(|s| s.sandbox_pid > 0)
            .map(|s| Held {
                who: format!("the runsc state {}/{}", dir.display(), s.file),
                bundle: s.bundle,
                holds: Holds::Pid(s.sandbox_pid),
            }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_by_its_layout() {
        let d = tempfile::tempdir().unwrap();
        let b = Path::new("/b/c1");
        assert_eq!(probe(d.path(), "c1", b), None);
        std::fs::create_dir(d.path().join("c1")).unwrap();
        assert_eq!(probe(d.path(), "c1", b), Some(RuntimeKind::Runc));
        std::fs::write(
            d.path().join("c1/state.json"),
            r#"{"init_process_pid":5,"cgroup_paths":{"pids":"/cg/c1"},"config":{"labels":["bundle=/other"]}}"#,
        )
        .unwrap();
        assert_eq!(probe(d.path(), "c1", b), None, "another bundle's");
        let held = held_in(&d.path().join("c1"), 100);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].holds, Holds::Cgroups(vec![PathBuf::from("/cg/c1")]));
        std::fs::write(
            d.path().join("c2_sandbox:pod.state"),
            r#"{"bundleDir":"/b/c2","sandbox":{"id":"pod","pid":77}}"#,
        )
        .unwrap();
        std::fs::write(d.path().join("c3_sandbox:pod.state"), r#"{"sandbox":{}}"#).unwrap();
        assert_eq!(probe(d.path(), "c2", b), Some(RuntimeKind::Runsc));
        let held = held_in(d.path(), 100);
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].holds, Holds::Pid(77));
        assert_eq!(held[0].bundle.as_deref(), Some(Path::new("/b/c2")));
    }
}
