//! What a case looks at on the host: process trees and zombies, a shim's pid and fds,
//! a container's cgroup, mounts and runtime state, and what a deleted container left.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{
    all_pids, bundle_dir, cmdline, ctr, ns, pid_alive, poll_quiet, proc_stat, shim_address,
    socket_holders, SEC,
};

/// `(pid, state, cmdline)` of every process below `root` (children, grandchildren, ...).
pub fn descendants(root: i32) -> Vec<(i32, char, String)> {
    let mut kids: HashMap<i32, Vec<(i32, char)>> = HashMap::new();
    for pid in all_pids() {
        if let Some((st, ppid, _)) = proc_stat(pid) {
            kids.entry(ppid).or_default().push((pid, st));
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for (c, st) in kids.get(&p).cloned().unwrap_or_default() {
            out.push((c, st, cmdline(c)));
            stack.push(c);
        }
    }
    out
}

/// Zombies below `root`, described with their parent.
pub fn zombies_under(root: i32) -> Vec<String> {
    descendants(root)
        .into_iter()
        .filter(|(_, st, _)| *st == 'Z')
        .map(|(p, _, _)| {
            let (ppid, comm) = proc_stat(p)
                .map(|(_, pp, c)| (pp, c))
                .unwrap_or((0, String::new()));
            format!("zombie {p} ({comm}) of {ppid}")
        })
        .collect()
}

/// Open fds of a process.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The shim daemon serving a task (the process holding the socket of its `address`).
pub fn shim_pid(id: &str) -> i32 {
    let addr = shim_address(ns(), id).unwrap_or_else(|| panic!("no address file for {id}"));
    let holders = socket_holders(&addr);
    assert_eq!(
        holders.len(),
        1,
        "processes serving {addr} (task {id}): {holders:?}"
    );
    holders[0]
}

/// The pids in the container's cgroup (`cgroupsPath` /default/<id>), None when the
/// cgroup does not exist.
pub fn cgroup_procs(id: &str) -> Option<Vec<i32>> {
    for base in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup",
    ] {
        let p = format!("{base}/{}/{id}/cgroup.procs", ns());
        if let Ok(t) = fs::read_to_string(&p) {
            return Some(t.lines().filter_map(|l| l.trim().parse().ok()).collect());
        }
    }
    None
}

/// Every mount point of the test's mount namespace (the host's), as mountinfo writes
/// it (field 5, octal escapes kept).
pub fn mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Mount points at or below `dir` (in the test's mount namespace, the host's).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    mount_points()
        .into_iter()
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect()
}

/// runc's state dir of a container in the default root.
pub fn runc_state_dir(id: &str) -> PathBuf {
    Path::new("/run/containerd/runc").join(ns()).join(id)
}

/// Everything a deleted container could leave behind: mounts under its bundle, the
/// bundle, runc's state, live processes among `pids`, a non-empty cgroup.
pub fn leftovers(id: &str, pids: &[i32]) -> Vec<String> {
    let mut v = Vec::new();
    let b = bundle_dir(ns(), id);
    for m in mounts_under(&b) {
        v.push(format!("mount {m}"));
    }
    if b.exists() {
        v.push(format!("bundle dir {}", b.display()));
    }
    let r = runc_state_dir(id);
    if r.exists() {
        v.push(format!("runc state {}", r.display()));
    }
    for p in pids {
        if *p > 0 && pid_alive(*p) {
            v.push(format!("process {p} ({}) alive", cmdline(*p)));
        }
    }
    if let Some(procs) = cgroup_procs(id) {
        if !procs.is_empty() {
            v.push(format!("cgroup /{}/{id} holds {procs:?}", ns()));
        }
    }
    v
}

/// [`leftovers`] of every id, polled until empty for `limit`; what is still there.
pub fn wait_nothing_left(ids: &[(&str, Vec<i32>)], limit: Duration) -> Vec<String> {
    let mut last = Vec::new();
    poll_quiet(limit, || {
        last = ids
            .iter()
            .flat_map(|(id, pids)| {
                leftovers(id, pids)
                    .into_iter()
                    .map(move |l| format!("{id}: {l}"))
            })
            .collect();
        last.is_empty()
    });
    last
}

/// Is a task listed by `ctr task ls`, and how (None: not listed). Never panics.
pub fn task_ls_status(id: &str) -> Result<Option<String>, String> {
    let out = ctr(ns(), &["task", "ls"]).timeout(10 * SEC).run_unclamped();
    if !out.succeeded() {
        return Err(format!("ctr task ls: {:?} {}", out.code, out.stderr.trim()));
    }
    Ok(out.stdout.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && f[0] == id).then(|| f[2].to_string())
    }))
}
