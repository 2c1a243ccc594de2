//! What gVisor leaves when its shim died: the host processes of a runsc
//! container (the pod's `runsc-sandbox`, each container's `runsc-gofer`)
//! and its state files under the runsc root
//! (`<root>/<id>_sandbox:<sandbox-id>.state` and `.lock`).
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

use crate::cgroup::pid_alive;
use crate::logfmt::quote;
use robust_bundle::{read_file, FileRead};

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

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn has_root(args: &[String], root: &Path) -> bool {
    let want = format!("--root={}", root.display());
    args.contains(&want)
}

/// Whether `pid` is the runsc sandbox of `sandbox_id` under `root` (and
/// not a reused pid): `runsc-sandbox --root=<root> ... boot ... <sandbox_id>`.
pub fn is_sandbox_process(args: &[String], root: &Path, sandbox_id: &str) -> bool {
    args.first().is_some_and(|a| a == "runsc-sandbox")
        && has_root(args, root)
        && args.last().is_some_and(|a| a == sandbox_id)
}

/// Whether `pid` is the gofer of the container whose bundle is `bundle`:
/// `runsc-gofer --root=<root> ... gofer --bundle <bundle> ...`.
pub fn is_gofer_process(args: &[String], root: &Path, bundle: &Path) -> bool {
    let b = bundle.display().to_string();
    args.first().is_some_and(|a| a == "runsc-gofer")
        && has_root(args, root)
        && args
            .windows(2)
            .any(|w| (w[0] == "--bundle" && w[1] == b) || w[0] == format!("--bundle={b}"))
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

/// The live `runsc-gofer` processes serving the container of `bundle`
/// under `root`, found by their command line (runsc's state forgets the
/// gofer's pid of a container whose start failed).
pub fn gofers_of(root: &Path, bundle: &Path) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| is_gofer_process(&cmdline(*pid), root, bundle) && pid_alive(*pid))
        .collect()
}

/// The pod's runsc sandbox and its descendants (the ptrace stubs): `pid`
/// when it is the `runsc-sandbox` of `sandbox_id` under `root` (checked on
/// its command line), with every process below it; empty otherwise.
pub fn sandbox_tree(root: &Path, sandbox_id: &str, pid: i32) -> Vec<i32> {
    if pid <= 0 || !is_sandbox_process(&cmdline(pid), root, sandbox_id) {
        return Vec::new();
    }
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|p| Some((p, crate::owner::parent_of(p)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(p, pp)| *pp == parent && !tree.contains(p))
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    tree
}

/// SIGKILL the container's gofers if they outlived the container: runsc's
/// delete of a container that never started (a missing init binary fails
/// `runsc start` after the gofer was spawned) leaves its gofer waiting
/// forever. Returns the pids killed.
pub fn kill_leftover_gofers(root: &Path, id: &str, bundle: &Path) -> Vec<i32> {
    let pids = gofers_of(root, bundle);
    for pid in &pids {
        log::warn!(
            "msg=\"runsc left the container's gofer running after its delete; killing it\" id={id} pid={pid}"
        );
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    pids
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

/// Remove lock files without their state: `<id>_sandbox:*.lock` and, when
/// `id` is a pod's sandbox, `*_sandbox:<id>.lock` of its containers. A runsc
/// call racing a delete (another container's delete, a kill) can re-create a
/// container's lock after its state went; nothing ever removes it then.
/// Returns how many were removed.
pub fn remove_orphan_locks(root: &Path, id: &str) -> usize {
    let Ok(dir) = std::fs::read_dir(root) else {
        return 0;
    };
    let own = format!("{id}_sandbox:");
    let pod = format!("_sandbox:{id}.lock");
    let mut removed = 0;
    for name in dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
    {
        let Some(stem) = name.strip_suffix(".lock") else {
            continue;
        };
        if !(name.starts_with(&own) || name.ends_with(&pod)) {
            continue;
        }
        if std::fs::symlink_metadata(root.join(format!("{stem}.state"))).is_ok() {
            continue;
        }
        if std::fs::remove_file(root.join(&name)).is_ok() {
            log::info!(
                "msg=\"removed a runsc lock file without its state\" id={id} file={}",
                quote(&name)
            );
            removed += 1;
        }
    }
    removed
}

/// Whether runsc still has state for the container under `root`.
pub fn has_state(root: &Path, id: &str) -> bool {
    !state_files(root, id).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

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

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn process_checks_need_name_root_and_id() {
        let root = Path::new("/run/containerd/runsc/default");
        let sb = args("runsc-sandbox --root=/run/containerd/runsc/default --log-fd=3 boot --bundle=/b/pod9 pod9");
        assert!(is_sandbox_process(&sb, root, "pod9"));
        assert!(!is_sandbox_process(&sb, root, "pod8"));
        assert!(!is_sandbox_process(&sb, Path::new("/other"), "pod9"));
        assert!(!is_sandbox_process(&args("sleep pod9"), root, "pod9"));
        let g = args(
            "runsc-gofer --root=/run/containerd/runsc/default gofer --bundle /b/c9 --spec-fd=5",
        );
        assert!(is_gofer_process(&g, root, Path::new("/b/c9")));
        assert!(!is_gofer_process(&g, root, Path::new("/b/c")));
        assert!(!is_gofer_process(&sb, root, Path::new("/b/pod9")));
    }

    #[test]
    fn the_sandbox_tree_is_the_checked_sandbox_and_what_runs_below_it() {
        // a stand-in named runsc-sandbox with runsc's --root and the sandbox id
        // last, with a child
        let mut sb = std::process::Command::new("bash")
            .arg0("runsc-sandbox")
            .args(["-c", "sleep 30 & wait", "--root=/run/test-root", "pod7"])
            .spawn()
            .unwrap();
        let pid = sb.id() as i32;
        let root = Path::new("/run/test-root");
        let end = Instant::now() + Duration::from_secs(5);
        let mut tree = sandbox_tree(root, "pod7", pid);
        while tree.len() < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
            tree = sandbox_tree(root, "pod7", pid);
        }
        let parents: Vec<Option<i32>> = tree.iter().map(|p| crate::owner::parent_of(*p)).collect();
        for p in tree.iter().rev() {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        let _ = sb.wait();
        assert_eq!(tree.len(), 2, "the stand-in and its child: {tree:?}");
        assert_eq!(tree[0], pid);
        assert_eq!(parents[1], Some(pid));
        // another sandbox id, another root or no sandbox at all: nothing
        assert!(sandbox_tree(root, "pod8", pid).is_empty());
        assert!(sandbox_tree(Path::new("/run/other"), "pod7", pid).is_empty());
        assert!(sandbox_tree(root, "pod7", std::process::id() as i32).is_empty());
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
    fn orphan_locks_of_the_container_and_of_its_pod_go() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "c_sandbox:p.lock", // c's lock, no state: goes
            "p_sandbox:p.lock", // the pod's own, with state: stays
            "p_sandbox:p.state",
            "x_sandbox:p.lock", // another container of pod p, no state: goes with p
            "x_sandbox:q.lock", // another pod's: stays
            "cc_sandbox:p.lock", // another container whose id starts with c: stays for c
        ] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        assert_eq!(remove_orphan_locks(d.path(), "c"), 1);
        assert!(!d.path().join("c_sandbox:p.lock").exists());
        assert!(d.path().join("cc_sandbox:p.lock").exists());
        assert_eq!(
            remove_orphan_locks(d.path(), "p"),
            2,
            "x's and cc's locks of pod p"
        );
        assert!(d.path().join("p_sandbox:p.lock").exists());
        assert!(d.path().join("x_sandbox:q.lock").exists());
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
