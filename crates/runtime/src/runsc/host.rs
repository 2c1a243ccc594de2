//! runsc's host processes: the pod's `runsc-sandbox` (and the ptrace stubs
//! below it) and each container's `runsc-gofer`, recognised by their
//! command line (name, `--root`, bundle or sandbox id) so that a reused pid
//! is never taken for one; and the lock files runsc leaves without their
//! state.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use robust_logfmt::quote;

use crate::procfs::{all_pids, cmdline, parent_of, pid_alive};

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

/// The live `runsc-gofer` processes serving the container of `bundle`
/// under `root`, found by their command line (runsc's state forgets the
/// gofer's pid of a container whose start failed).
pub fn gofers_of(root: &Path, bundle: &Path) -> Vec<i32> {
    all_pids()
        .into_iter()
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
    let parents: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, parent_of(p)?)))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

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
        let parents: Vec<Option<i32>> = tree.iter().map(|p| parent_of(*p)).collect();
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
}
