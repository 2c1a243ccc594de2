//! runsc's state of a container under its root
//! (`<root>/<id>_sandbox:<sandbox-id>.state` and `.lock`), and what a dead
//! shim's container leaves: its host processes (the pod's `runsc-sandbox`,
//! each container's `runsc-gofer`) and those state files.
//!
//! `runsc delete --force` of a live ptrace sandbox takes a second or more,
//! longer with a pod's containers deleted at once; cut off at the cleanup's
//! deadline it leaves the state behind. So the dead-shim delete first ends
//! the host processes itself ([`kill_host_processes`], every pid checked
//! against its command line first), after which runsc's delete is quick;
//! and if runsc still cannot delete, state files whose processes are all
//! gone are removed by hand ([`remove_dead_state`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Deserialize;

use robust_bundle::{read_file, FileRead};
use robust_logfmt::quote;

use super::host::{gofers_of, is_gofer_process, is_sandbox_process};
use crate::procfs::{cmdline, pid_alive};

/// The parts of a runsc state file the cleanup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunscState {
    /// The state file's name under the root.
    pub file: String,
    /// The pod's sandbox id (the id of the container that owns it).
    pub sandbox_id: String,
    /// Host pid of the sandbox (`runsc-sandbox`), 0 when unknown.
    pub sandbox_pid: i32,
    /// Host pid of this container's gofer (`runsc-gofer`), 0 when unknown.
    pub gofer_pid: i32,
    /// The bundle runsc recorded.
    pub bundle: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawState {
    #[serde(rename = "goferPid", default)]
    gofer_pid: i64,
    #[serde(rename = "bundleDir", default)]
    bundle_dir: Option<String>,
    #[serde(default)]
    sandbox: Option<RawSandbox>,
}

#[derive(Deserialize)]
struct RawSandbox {
    #[serde(default)]
    id: String,
    #[serde(default)]
    pid: i64,
}

fn pid_of(v: i64) -> i32 {
    i32::try_from(v).ok().filter(|p| *p > 0).unwrap_or(0)
}

/// Parse a runsc state file. `Err` names what is wrong with it.
pub fn parse_state(file: &str, bytes: &[u8]) -> Result<RunscState, String> {
    let raw: RawState =
        serde_json::from_slice(bytes).map_err(|e| format!("runsc state {file}: {e}"))?;
    let sandbox = raw.sandbox.unwrap_or(RawSandbox {
        id: String::new(),
        pid: 0,
    });
    let sandbox_id = if sandbox.id.is_empty() {
        // `<id>_sandbox:<sandbox-id>.state`
        file.split_once("_sandbox:")
            .and_then(|(_, rest)| rest.strip_suffix(".state"))
            .unwrap_or_default()
            .to_string()
    } else {
        sandbox.id
    };
    Ok(RunscState {
        file: file.to_string(),
        sandbox_id,
        sandbox_pid: pid_of(sandbox.pid),
        gofer_pid: pid_of(raw.gofer_pid),
        bundle: raw.bundle_dir.map(PathBuf::from),
    })
}

/// The names of the container's state files under `root`
/// (`<id>_sandbox:*.state`).
fn state_files(root: &Path, id: &str) -> Vec<String> {
    let prefix = format!("{id}_sandbox:");
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".state"))
        .collect();
    names.sort();
    names
}

/// The container's runsc state, read without following symlinks; `None`
/// when there is none or it cannot be used (logged).
pub fn read_state(root: &Path, id: &str) -> Option<RunscState> {
    let name = state_files(root, id).into_iter().next()?;
    match read_file(root, &name) {
        FileRead::Bytes(b) => match parse_state(&name, &b) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!(
                    "msg=\"cleanup: runsc state unusable\" id={id} error={q_error}",
                    q_error = quote(&e)
                );
                None
            }
        },
        FileRead::Missing => None,
        FileRead::Unusable(why) => {
            log::warn!(
                "msg=\"cleanup: runsc state unusable\" id={id} file={} error={}",
                quote(name),
                quote(&why)
            );
            None
        }
    }
}

/// The verified host processes of the container: its gofer, and the
/// sandbox when the container owns it (`sandbox_id == id`). An app
/// container's delete never touches the pod's sandbox.
fn host_processes(
    st: &RunscState,
    root: &Path,
    id: &str,
    bundle: &Path,
) -> Vec<(i32, &'static str)> {
    let mut out = Vec::new();
    if st.gofer_pid > 0 && is_gofer_process(&cmdline(st.gofer_pid), root, bundle) {
        out.push((st.gofer_pid, "runsc-gofer"));
    } else {
        out.extend(
            gofers_of(root, bundle)
                .into_iter()
                .map(|p| (p, "runsc-gofer")),
        );
    }
    if st.sandbox_id == id
        && st.sandbox_pid > 0
        && is_sandbox_process(&cmdline(st.sandbox_pid), root, &st.sandbox_id)
    {
        out.push((st.sandbox_pid, "runsc-sandbox"));
    }
    out
}

/// SIGKILL the container's runsc host processes (see [`host_processes`])
/// and wait up to `wait` for them to die. Returns the pids still alive.
pub fn kill_host_processes(root: &Path, id: &str, bundle: &Path, wait: Duration) -> Vec<i32> {
    let Some(st) = read_state(root, id) else {
        return Vec::new();
    };
    let procs = host_processes(&st, root, id, bundle);
    if procs.is_empty() {
        return Vec::new();
    }
    for (pid, what) in &procs {
        log::warn!(
            "msg=\"cleanup: killing runsc's host process of a dead shim\" id={id} pid={pid} process={} sandbox_id={}",
            quote(what),
            quote(&st.sandbox_id)
        );
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + wait;
    loop {
        let alive: Vec<i32> = procs
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| pid_alive(*p))
            .collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Remove the container's state files (`.state` and `.lock`) when no host
/// process it names is alive any more: what a `runsc delete` cut off at
/// its deadline leaves. Returns the files removed; `Err` says why not.
pub fn remove_dead_state(root: &Path, id: &str) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    for name in state_files(root, id) {
        let st = match read_file(root, &name) {
            FileRead::Bytes(b) => parse_state(&name, &b).ok(),
            _ => None,
        };
        if let Some(st) = &st {
            let live: Vec<i32> = [st.sandbox_pid, st.gofer_pid]
                .into_iter()
                .filter(|p| pid_alive(*p))
                .filter(|p| {
                    let a = cmdline(*p);
                    a.first()
                        .is_some_and(|x| x == "runsc-sandbox" || x == "runsc-gofer")
                })
                .collect();
            if !live.is_empty() {
                return Err(format!(
                    "runsc state {name}: runsc processes {live:?} still alive"
                ));
            }
        }
        let lock = format!("{}.lock", name.trim_end_matches(".state"));
        for f in [name.as_str(), lock.as_str()] {
            let p = root.join(f);
            // remove_file never follows a symlink: it removes the link.
            match std::fs::remove_file(&p) {
                Ok(()) => removed.push(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("remove {}: {e}", p.display())),
            }
        }
    }
    if !removed.is_empty() {
        log::warn!(
            "msg=\"cleanup: runsc could not delete; removed its state of dead processes by hand\" id={id} files={}",
            quote(removed .iter() .map(|p| p.display().to_string()) .collect::<Vec<_>>() .join(","))
        );
    }
    Ok(removed)
}

/// Every container state in `dir` (`*_sandbox:*.state`, at most `limit`
/// entries looked at), with its file name; unusable ones are skipped.
pub fn states_in(dir: &Path, limit: usize) -> Vec<RunscState> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .take(limit)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".state") && name.contains("_sandbox:"))
        .filter_map(|name| match read_file(dir, &name) {
            FileRead::Bytes(b) => parse_state(&name, &b).ok(),
            _ => None,
        })
        .collect()
}

/// Whether runsc still has state for the container under `root`.
pub fn has_state(root: &Path, id: &str) -> bool {
    !state_files(root, id).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = r#"{"id":"c9","bundleDir":"/run/x/default/c9","status":"running",
        "goferPid":25440,"sandbox":{"id":"pod9","pid":25353,"cgroup":null}}"#;

    #[test]
    fn parses_the_fields_it_needs() {
        let s = parse_state("c9_sandbox:pod9.state", STATE.as_bytes()).unwrap();
        assert_eq!(s.sandbox_id, "pod9");
        assert_eq!(s.sandbox_pid, 25353);
        assert_eq!(s.gofer_pid, 25440);
        assert_eq!(s.bundle.as_deref(), Some(Path::new("/run/x/default/c9")));
    }

    #[test]
    fn bad_pids_and_missing_sandbox_are_tolerated() {
        let s = parse_state(
            "a_sandbox:p.state",
            br#"{"goferPid":-4,"sandbox":{"pid":99999999999}}"#,
        )
        .unwrap();
        assert_eq!((s.sandbox_pid, s.gofer_pid), (0, 0));
        assert_eq!(s.sandbox_id, "p", "sandbox id taken from the file name");
        let e = parse_state("a_sandbox:p.state", b"{not json").unwrap_err();
        assert!(e.contains("runsc state a_sandbox:p.state"), "{e}");
    }

    #[test]
    fn dead_state_is_removed_with_its_lock_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        // pids that cannot be alive
        let st = r#"{"goferPid":0,"sandbox":{"id":"p","pid":0}}"#;
        std::fs::write(d.path().join("c_sandbox:p.state"), st).unwrap();
        std::fs::write(d.path().join("c_sandbox:p.lock"), "").unwrap();
        std::fs::write(d.path().join("cc_sandbox:p.state"), st).unwrap();
        assert!(has_state(d.path(), "c"));
        let removed = remove_dead_state(d.path(), "c").unwrap();
        assert_eq!(removed.len(), 2);
        assert!(!has_state(d.path(), "c"));
        assert!(
            has_state(d.path(), "cc"),
            "another container's state is kept"
        );
    }

    #[test]
    fn a_symlinked_state_file_is_not_read_but_the_link_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("c_sandbox:p.state")).unwrap();
        assert_eq!(read_state(d.path(), "c"), None);
        remove_dead_state(d.path(), "c").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
