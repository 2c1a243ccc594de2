//! Issue 12: cleanup never harms a bystander. Whatever path ends a container (Task
//! Delete after a SIGKILL, a forced delete, containerd's `delete` after a kill -9 of the
//! shim, a failed create, the node `sweep`), the processes it kills are the container's
//! own: never a host process or another container that shares, encloses or sits below
//! the container's cgroup. And the opposite direction: when the init of a container in
//! the host's pid namespace dies, what it left in the container's cgroup dies with it.
//!
//! Bystanders are made by the case: a host `sleep` moved into a cgroup of a tree the
//! case creates under a unique top-level name in every mounted hierarchy
//! ([`CgroupTree`]), or a second container placed with `ctr run --cgroup`. A bystander is
//! untouched when it is alive afterwards with the same pid, the same start time (field
//! 22 of `/proc/<pid>/stat`) and, for a host process, the same cgroups.
//!
//! Our shim is asserted; the reference (containerd-shim-runc-v2) runs the same cases where
//! they apply and is only observed (printed and appended to
//! `target/bystander-observed.tsv`). `sweep`, the hand-made bundle and runsc are ours only.
//!
//! Safety: every cgroup a case makes is under its own unique name, and the only
//! processes ever signalled are the ones the case started (its host victims, its
//! containers' processes, and the shims of its containers).

use super::*;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::dead_shim::{run_bounded, shim_pid, signal, sweep, table_row};
use super::gvisor::{
    assert_runsc_gone, kill9, run_args, runsc_config, runsc_or_skip, runsc_processes, shim_pid_of,
};

const SEC: Duration = Duration::from_secs(1);
/// The bound of one matrix case.
const CASE_LIMIT: u64 = 120;
/// What the containers under test run: an init and a child of it.
const WORKLOAD: [&str; 3] = ["sh", "-c", "sleep 1000 & exec sleep 1001"];

// ---------------------------------------------------------------------------------------
// cgroups made by a case, bystanders
// ---------------------------------------------------------------------------------------

/// The cgroup tree of a case: `/<name>` in every hierarchy (see [`CgroupTree`]).
fn case_tree(name: &str) -> CgroupTree {
    CgroupTree::new(&format!("/{name}")).unwrap_or_else(|e| panic!("cgroup /{name}: {e}"))
}

/// `mkdir -p` of `sub` below the case's tree; its cgroup path.
fn make(t: &CgroupTree, sub: &str) -> String {
    t.make(sub).unwrap_or_else(|e| panic!("{e}"))
}

/// A bystander: a host process, or another container (its task removed by the case's
/// ContainerGuard).
enum Bystander {
    Host(HostProcess),
    Container {
        ns: String,
        id: String,
        pid: u32,
        start: u64,
    },
}

impl Bystander {
    fn host(path: &str) -> Bystander {
        Bystander::Host(HostProcess::spawn_in(path).unwrap_or_else(|e| panic!("bystander: {e}")))
    }

    /// A running container; `pid` its init.
    fn container(ns: &str, id: &str, pid: u32) -> Bystander {
        Bystander::Container {
            ns: ns.into(),
            id: id.into(),
            pid,
            start: proc_start_time(pid as i32).expect("the bystander container's start time"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Bystander::Host(v) => v.describe(),
            Bystander::Container { id, pid, .. } => format!("container {id} (init {pid})"),
        }
    }

    /// Ok when it is alive and untouched.
    fn check(&mut self) -> Result<(), String> {
        match self {
            Bystander::Host(v) => v.check(),
            Bystander::Container { ns, id, pid, start } => {
                let st = task_status(ns, id);
                if st.as_ref() != Some(&(*pid, "RUNNING".to_string())) {
                    return Err(format!(
                        "container {id} (init {pid}): its task is now {st:?} (pid, status)"
                    ));
                }
                if proc_start_time(*pid as i32) != Some(*start) || !pid_alive(*pid as i32) {
                    return Err(format!(
                        "container {id}: init {pid} is not the same process"
                    ));
                }
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// containers, containerd's cleanups, observations
// ---------------------------------------------------------------------------------------

/// `ctr run -d --cgroup <cgroup> <extra> IMAGE <id> <args>`; the init pid once RUNNING.
fn run_in(shim: Shim, ns: &str, id: &str, cgroup: &str, extra: &[&str], args: &[&str]) -> u32 {
    let image = env().image.clone();
    let mut a = vec!["run", "-d", "--runtime", shim.runtime(), "--cgroup", cgroup];
    a.extend_from_slice(extra);
    a.push(&image);
    a.push(id);
    a.extend_from_slice(args);
    ctr(ns, &a).timeout(60 * SEC).run().ok();
    wait_task_status(ns, id, "RUNNING", 15 * SEC)
}

/// `ctr run -d --cgroup <cgroup> ... <id> sh -c 'exit 0'`, which must fail the way runc
/// fails to create a container in a cgroup that has children in the devices hierarchy.
fn run_failing_create(shim: Shim, ns: &str, id: &str, cgroup: &str) {
    let image = env().image.clone();
    let out = ctr(
        ns,
        &[
            "run",
            "-d",
            "--runtime",
            shim.runtime(),
            "--cgroup",
            cgroup,
            &image,
            id,
            "sh",
            "-c",
            "exit 0",
        ],
    )
    .timeout(60 * SEC)
    .run();
    assert!(
        !out.succeeded() && out.stderr.contains("devices"),
        "the create of {id} in {cgroup} was meant to fail (runc: devices.deny with a child \
         cgroup): exit {:?}\n{}",
        out.code,
        out.stderr
    );
}

/// Whether a containerd log line is about container `id` of namespace `ns`.
fn about(line: &str, ns: &str, id: &str) -> bool {
    let want = format!("id={id}");
    line.split_whitespace().any(|t| t == want) && line.contains(&format!("namespace={ns}"))
}

/// Waits (bounded) for containerd's cleanup of `id` after its shim went (the `<shim>
/// delete` it runs after every disconnect, a normal one included): its start in the log,
/// then its end (the bundle removed, or the failure logged); then for the task to go.
/// Returns the log lines of the container since `off`.
fn wait_post_cleanup(ns: &str, id: &str, off: u64) -> Vec<String> {
    let b = bundle_dir(ns, id);
    poll_until(
        &format!("containerd's cleanup after the shim of {id} went"),
        15 * SEC,
        || {
            let log = log_since(off);
            let mut started = false;
            for l in log.lines().filter(|l| about(l, ns, id)) {
                if l.contains("cleaning up after shim disconnected") {
                    started = true;
                }
                if started && l.contains("failed to clean up after shim disconnected") {
                    return Some(());
                }
            }
            (started && !b.exists()).then_some(())
        },
    );
    poll_until(&format!("containerd to drop task {id}"), 10 * SEC, || {
        task_status(ns, id).is_none().then_some(())
    });
    container_log(off, id)
}

/// containerd's log since `off`, the lines naming container `id` (our delete's stderr,
/// inside containerd's "cleanup warnings", included).
fn container_log(off: u64, id: &str) -> Vec<String> {
    let want = format!("id={id}");
    log_since(off)
        .lines()
        .filter(|l| l.split_whitespace().any(|t| t == want))
        .map(str::to_string)
        .collect()
}

/// Prints an observation and appends it to `target/bystander-observed.tsv`.
fn record(shim: Shim, case: &str, what: &str) {
    let line = format!("{}\t{case}\t{what}\n", shim.label());
    eprint!("[bystander observed] {line}");
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bystander-observed.tsv");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(p) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// What a case found about the container under test and its bystander.
struct Outcome {
    bystander: Result<(), String>,
    /// The pids our cleanup logged killing "in the container's cgroup", if it did.
    cgroup_kill: Option<String>,
    task: Option<(u32, String)>,
    bundle_left: bool,
    own_alive: Vec<i32>,
}

impl Outcome {
    /// After the cleanup: the bystander now, and (polled, bounded) the container gone.
    fn observe(ns: &str, id: &str, by: &mut Bystander, own: &[i32], log: &[String]) -> Outcome {
        let bystander = by.check();
        let cgroup_kill = log.iter().find_map(|l| {
            let at = l.find("killing processes left in the container's cgroup")?;
            let pids = l[at..].split("pids=").nth(1)?;
            Some(
                pids.trim_start_matches(['\\', '"'])
                    .split(['\\', '"'])
                    .next()?
                    .to_string(),
            )
        });
        let b = bundle_dir(ns, id);
        poll_quiet(bound(5 * SEC), || {
            !b.exists() && own.iter().all(|p| !pid_alive(*p)) && task_status(ns, id).is_none()
        });
        Outcome {
            bystander,
            cgroup_kill,
            task: task_status(ns, id),
            bundle_left: b.exists(),
            own_alive: own.iter().copied().filter(|p| pid_alive(*p)).collect(),
        }
    }

    fn summary(&self) -> String {
        format!(
            "bystander {}; cleanup's cgroup kill: {}; task {:?}; bundle left {}; container \
             processes alive {:?}",
            match &self.bystander {
                Ok(()) => "untouched".to_string(),
                Err(e) => format!("HARMED ({e})"),
            },
            self.cgroup_kill.as_deref().unwrap_or("none"),
            self.task,
            self.bundle_left,
            self.own_alive
        )
    }

    /// Our shim: the bystander untouched and the container cleaned up.
    fn assert_ok(&self, case: &str, log: &[String]) {
        let ctx = || {
            format!(
                "[{case}] {}\ncontainerd's log:\n{}",
                self.summary(),
                log.join("\n")
            )
        };
        if let Err(e) = &self.bystander {
            panic!("bystander harmed: {e}\n{}", ctx());
        }
        assert!(self.task.is_none(), "the task is still there: {}", ctx());
        assert!(!self.bundle_left, "the bundle is still there: {}", ctx());
        assert!(
            self.own_alive.is_empty(),
            "the container's own processes are alive: {}",
            ctx()
        );
    }
}

// ---------------------------------------------------------------------------------------
// the matrix: where the bystander is x how the container is ended
// ---------------------------------------------------------------------------------------

/// Where the bystander is, relative to the cgroup `C` = `/<case>/c` of the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// a host process in `/<case>/v`
    Sibling,
    /// a host process in `/<case>`
    Parent,
    /// a host process in `C/v`
    Child,
    /// a host process in `C` itself
    Shared,
    /// another container in `C` (`ctr run --cgroup C`)
    SharedContainer,
}

/// How the container is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeletePath {
    /// `ctr task kill -s SIGKILL`, `ctr task rm` (and containerd's `delete` after the
    /// shim exits)
    TaskDelete,
    /// `ctr task rm -f` of the running task: ctr 1.6 sends Kill(SIGKILL, all=true), then
    /// Delete (`runc kill --all` signals every process of the cgroup and those below it)
    ForceDelete,
    /// kill -9 of its shim daemon: containerd runs `<shim> delete`
    ShimKill9,
    /// runc's create fails (`C` has a child cgroup in the devices hierarchy)
    FailedCreate,
    /// the shim is killed while containerd cannot clean up; then `sweep`
    Sweep,
}

/// Renames a bundle set aside back into place on drop (when it is still aside).
struct Aside {
    aside: PathBuf,
    bundle: PathBuf,
}

impl Drop for Aside {
    fn drop(&mut self) {
        if self.aside.exists() {
            let _ = fs::rename(&self.aside, &self.bundle);
        }
    }
}

/// Resumes a SIGSTOPped shim on drop if it is still there (the case failed before
/// killing it): identified by its command line, never a reused pid.
struct Stopped {
    pid: i32,
    id: String,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if format!("{} ", cmdline(self.pid)).contains(&format!("-id {} ", self.id)) {
            signal(self.pid, libc::SIGCONT);
        }
    }
}

/// The sweep path: the shim is stopped, its bundle moved aside, the shim killed, so
/// containerd's cleanup fails (it cannot enter the bundle); the bundle goes back and
/// `sweep --id` cleans it. Returns sweep's row.
fn sweep_leftover(ns: &str, id: &str, off: u64) -> String {
    let b = bundle_dir(ns, id);
    let sp = shim_pid(ns, id);
    signal(sp, libc::SIGSTOP);
    let stopped = Stopped {
        pid: sp,
        id: id.to_string(),
    };
    let aside = Aside {
        aside: b.with_file_name(format!(".{id}.aside")),
        bundle: b.clone(),
    };
    fs::rename(&b, &aside.aside).expect("move the bundle aside");
    signal(sp, libc::SIGKILL);
    drop(stopped);
    poll_until(
        "containerd's cleanup to fail (bundle out of the way)",
        10 * SEC,
        || {
            log_since(off)
                .lines()
                .any(|l| {
                    about(l, ns, id) && l.contains("failed to clean up after shim disconnected")
                })
                .then_some(())
        },
    );
    drop(aside);
    poll_until("containerd to drop the task", 10 * SEC, || {
        task_status(ns, id).is_none().then_some(())
    });
    assert!(b.exists(), "the bundle did not come back");
    let (code, table, err) = sweep(&["--namespace", ns, "--id", id, "--min-age", "0"]);
    let row = table_row(&table, id)
        .unwrap_or_else(|| panic!("sweep has no row for {id}:\n{table}\n{err}"))
        .to_string();
    assert_eq!(code, Some(0), "sweep failed:\n{table}\n{err}");
    row
}

fn matrix_case(shim: Shim, place: Placement, path: DeletePath) {
    use DeletePath::*;
    use Placement::*;
    let case = format!("{place:?} x {path:?}");
    let short = |p: Placement| match p {
        Sibling => "sib",
        Parent => "par",
        Child => "child",
        Shared => "shared",
        SharedContainer => "sharedc",
    };
    let id = unique_id(&format!("byst-{}-{path:?}", short(place)), shim);
    let tree = case_tree(&id);
    let c = tree.path("c");
    let mut guard = ContainerGuard::new(NS, &id);
    let mut by = match place {
        Sibling => Some(Bystander::host(&make(&tree, "v"))),
        Parent => Some(Bystander::host(&tree.path(""))),
        Shared => Some(Bystander::host(&make(&tree, "c"))),
        Child if path == FailedCreate => Some(Bystander::host(&make(&tree, "c/v"))),
        Child => None,
        SharedContainer => {
            let y = format!("{id}-y");
            guard.add(&y);
            // runc writes the devices cgroup only where its rules change: for the create
            // to fail, `C` must hold other rules than the failing container's (allow all).
            let flags: &[&str] = if path == FailedCreate {
                &["--privileged"]
            } else {
                &[]
            };
            let pid = run_in(shim, NS, &y, &c, flags, &["sleep", "1000"]);
            Some(Bystander::container(NS, &y, pid))
        }
    };
    let before = cgroup_path_procs(&c);
    let mut own = Vec::new();
    if path == FailedCreate {
        if place != Child {
            make(&tree, "c/hold");
        }
    } else {
        run_in(shim, NS, &id, &c, &[], &WORKLOAD);
        own = cgroup_path_procs(&c);
        own.retain(|p| !before.contains(p));
        assert!(!own.is_empty(), "no process of {id} in {c}");
        if place == Child {
            by = Some(Bystander::host(&make(&tree, "c/v")));
        }
    }
    let mut by = by.expect("a bystander");
    if let Err(e) = by.check() {
        panic!("[{case}] the bystander is not well before the delete: {e}");
    }

    let off = log_offset();
    let t = Instant::now();
    let mut note = String::new();
    match path {
        TaskDelete => {
            ctr(NS, &["task", "kill", "-s", "SIGKILL", &id]).run().ok();
            wait_task_status(NS, &id, "STOPPED", 15 * SEC);
            ctr(NS, &["task", "rm", &id]).timeout(30 * SEC).run().ok();
        }
        ForceDelete => {
            ctr(NS, &["task", "rm", "-f", &id])
                .timeout(30 * SEC)
                .run()
                .ok();
        }
        ShimKill9 => signal(shim_pid(NS, &id), libc::SIGKILL),
        FailedCreate => run_failing_create(shim, NS, &id, &c),
        Sweep => note = format!("; sweep: {}", sweep_leftover(NS, &id, off)),
    }
    let log = if path == Sweep {
        container_log(off, &id)
    } else {
        wait_post_cleanup(NS, &id, off)
    };
    let o = Outcome::observe(NS, &id, &mut by, &own, &log);
    record(
        shim,
        &case,
        &format!(
            "{} after {:.1?}{note} [{}]",
            o.summary(),
            t.elapsed(),
            by.describe()
        ),
    );
    if shim == Shim::Robust {
        o.assert_ok(&case, &log);
    }
}

/// One test per row: `<row>::robust`, and `<row>::reference` (observed) where the
/// reference has that path.
macro_rules! matrix {
    ($($name:ident: $place:ident x $path:ident;)*) => {
        $(matrix!(@case $name $place $path);)*
    };
    (@case $name:ident $place:ident Sweep) => {
        robust_test!($name, limit = CASE_LIMIT, |shim| {
            matrix_case(shim, Placement::$place, DeletePath::Sweep)
        });
    };
    (@case $name:ident $place:ident $path:ident) => {
        shim_test!($name, limit = CASE_LIMIT, |shim| {
            matrix_case(shim, Placement::$place, DeletePath::$path)
        });
    };
}

matrix! {
    sibling_task_delete: Sibling x TaskDelete;
    sibling_force_delete: Sibling x ForceDelete;
    sibling_shim_kill9: Sibling x ShimKill9;
    sibling_failed_create: Sibling x FailedCreate;
    sibling_sweep: Sibling x Sweep;
    parent_task_delete: Parent x TaskDelete;
    parent_force_delete: Parent x ForceDelete;
    parent_shim_kill9: Parent x ShimKill9;
    parent_failed_create: Parent x FailedCreate;
    parent_sweep: Parent x Sweep;
    child_task_delete: Child x TaskDelete;
    child_force_delete: Child x ForceDelete;
    child_shim_kill9: Child x ShimKill9;
    child_failed_create: Child x FailedCreate;
    child_sweep: Child x Sweep;
    shared_task_delete: Shared x TaskDelete;
    shared_force_delete: Shared x ForceDelete;
    shared_shim_kill9: Shared x ShimKill9;
    shared_failed_create: Shared x FailedCreate;
    shared_sweep: Shared x Sweep;
    shared_container_task_delete: SharedContainer x TaskDelete;
    shared_container_force_delete: SharedContainer x ForceDelete;
    shared_container_shim_kill9: SharedContainer x ShimKill9;
    shared_container_failed_create: SharedContainer x FailedCreate;
    shared_container_sweep: SharedContainer x Sweep;
}

// ---------------------------------------------------------------------------------------
// the reproductions of issue 12, literally
// ---------------------------------------------------------------------------------------

/// A containerd namespace of its own (the test image imported into it); on drop its
/// image is removed (with a synchronous GC) and then the namespace.
struct NamespaceGuard(String);

impl NamespaceGuard {
    fn new(ns: &str) -> NamespaceGuard {
        let g = NamespaceGuard(ns.to_string());
        let dir = std::env::var("ROBUST_IT_IMAGES_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.work/images"));
        let tar = dir.join("busybox.tar").display().to_string();
        ctr(
            ns,
            &["images", "import", "--snapshotter", "overlayfs", &tar],
        )
        .timeout(60 * SEC)
        .run()
        .ok();
        g
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let t = Duration::from_secs(30);
        let rm = ctr(&self.0, &["images", "rm", "--sync", &env().image])
            .timeout(t)
            .run_unclamped();
        if !rm.succeeded() {
            eprintln!("cleanup: {}: {}", rm.cmdline, rm.stderr.trim());
        }
        let ok = poll_quiet(Duration::from_secs(10), || {
            ctr(NS, &["namespaces", "rm", &self.0])
                .timeout(t)
                .run_unclamped()
                .succeeded()
        });
        if !ok {
            eprintln!("cleanup: namespace {} not removed", self.0);
        }
        // runc's root of the namespace (`runc create` made it; it is empty once the
        // case's containers are deleted): remove_dir leaves a non-empty one alone
        let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&self.0));
    }
}

// Issue 12's first reproduction: `chq` runs in its default cgroup `/<ns>/chq`, then
// `par` is created with `--cgroup /<ns>`; runc's create of `par` fails (devices.deny
// with a child cgroup) and the cleanup of `par` must leave `chq` running. The namespace
// is the case's own, so `/<ns>` holds nothing else.
shim_test!(chq_par_failed_create_under_parent, limit = 150, |shim| {
    let ns = unique_id("byst-chqpar", shim);
    let _ns = NamespaceGuard::new(&ns);
    let tree = case_tree(&ns);
    let mut g = ContainerGuard::new(&ns, "chq");
    g.add("par");
    let image = env().image.clone();
    ctr(
        &ns,
        &[
            "run",
            "-d",
            "--runtime",
            shim.runtime(),
            &image,
            "chq",
            "sleep",
            "1000",
        ],
    )
    .timeout(60 * SEC)
    .run()
    .ok();
    let pid = wait_task_status(&ns, "chq", "RUNNING", 15 * SEC);
    let chq_cg = format!("{}/chq", tree.path(""));
    assert!(
        cgroup_path_procs(&chq_cg).contains(&(pid as i32)),
        "chq's init {pid} is not in ctr's default cgroup {chq_cg}"
    );
    let mut by = Bystander::container(&ns, "chq", pid);
    let off = log_offset();
    run_failing_create(shim, &ns, "par", &tree.path(""));
    let log = wait_post_cleanup(&ns, "par", off);
    let o = Outcome::observe(&ns, "par", &mut by, &[], &log);
    record(shim, "chq/par", &o.summary());
    if shim == Shim::Robust {
        o.assert_ok("chq/par", &log);
    }
});

// Issue 12's second reproduction: X and Y started with the same `--cgroup`; `ctr task
// kill -s SIGKILL X; ctr task rm X` must leave Y running (the matrix's
// `shared_container_*` rows cover `rm -f` and kill -9 of X's shim).
shim_test!(two_containers_one_cgroup_kill_rm, limit = 120, |shim| {
    let x = unique_id("byst-xy", shim);
    let y = format!("{x}-y");
    let tree = case_tree(&x);
    let shared = tree.path("shared");
    let mut g = ContainerGuard::new(NS, &x);
    g.add(&y);
    let xpid = run_in(shim, NS, &x, &shared, &[], &["sleep", "1000"]);
    let ypid = run_in(shim, NS, &y, &shared, &[], &["sleep", "1000"]);
    let mut by = Bystander::container(NS, &y, ypid);
    let off = log_offset();
    ctr(NS, &["task", "kill", "-s", "SIGKILL", &x]).run().ok();
    wait_task_status(NS, &x, "STOPPED", 15 * SEC);
    ctr(NS, &["task", "rm", &x]).timeout(30 * SEC).run().ok();
    let log = wait_post_cleanup(NS, &x, off);
    let o = Outcome::observe(NS, &x, &mut by, &[xpid as i32], &log);
    record(shim, "X/Y shared --cgroup, kill + rm X", &o.summary());
    if shim == Shim::Robust {
        o.assert_ok("X/Y", &log);
    }
});

// ---------------------------------------------------------------------------------------
// a hand-made bundle: `delete` on a cgroupsPath that was never the container's
// ---------------------------------------------------------------------------------------

/// Removes a directory tree on drop.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A bundle with only `runtime` (`runc`) and a `config.json` whose cgroupsPath is the
/// case's top cgroup, no `init.pid`, no runtime state; `delete` in it must exit 0
/// (nothing of the container remains) and leave the host process in `victim_sub`
/// (below the top; "" = the top itself) alone.
fn handmade_bundle(case: &str, victim_sub: &str) {
    let id = unique_id(case, Shim::Robust);
    let tree = case_tree(&id);
    let vpath = if victim_sub.is_empty() {
        tree.path("")
    } else {
        make(&tree, victim_sub)
    };
    let mut by = Bystander::host(&vpath);
    let base = env().run_dir.join(format!("byst-{id}"));
    let _rm = RemoveDir(base.clone());
    let b = base.join(NS).join(&id);
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("runtime"), "runc").unwrap();
    let spec = serde_json::json!({ "linux": { "cgroupsPath": tree.path("") } });
    fs::write(b.join("config.json"), spec.to_string()).unwrap();
    let (code, _out, err) = run_bounded(
        Command::new(our_binary())
            .args(["-namespace", NS, "-id", &id, "-bundle"])
            .arg(&b)
            .arg("-address")
            .arg(&env().address)
            .arg("delete")
            .current_dir(&b),
        10,
    );
    let harmed = by.check();
    record(
        Shim::Robust,
        case,
        &format!(
            "delete exit {code:?}; bystander {} [{}]",
            match &harmed {
                Ok(()) => "untouched".to_string(),
                Err(e) => format!("HARMED ({e})"),
            },
            by.describe()
        ),
    );
    if let Err(e) = harmed {
        panic!("bystander harmed by `delete` of a hand-made bundle (cgroupsPath {}): {e}\nstderr:\n{err}", tree.path(""));
    }
    assert_eq!(
        code,
        Some(0),
        "delete: nothing of the container remains, so exit 0:\n{err}"
    );
}

robust_test!(
    handmade_bundle_victim_in_cgroups_path,
    limit = 60,
    |_shim| {
        handmade_bundle("byst-handmade-victim", "");
    }
);

robust_test!(
    handmade_bundle_victim_below_cgroups_path,
    limit = 60,
    |_shim| {
        handmade_bundle("byst-handmade-parent", "child");
    }
);

// ---------------------------------------------------------------------------------------
// the opposite direction: an init in the host's pid namespace dies, its leftovers too
// ---------------------------------------------------------------------------------------

// A container in the host's pid namespace: `sh -c 'sleep 1077 & exec sleep 1078'`. Once
// SIGKILL of the init shows STOPPED, the `sleep 1077` it left in the container's cgroup
// must go within a few seconds (as containerd-shim-runc-v2 does it: the init did not own
// its pid namespace). A host process in a sibling cgroup is left alone.
shim_test!(host_pidns_orphan_dies_with_init, limit = 90, |shim| {
    let id = unique_id("byst-hostpid", shim);
    let tree = case_tree(&id);
    let mut by = Bystander::host(&make(&tree, "sib"));
    let c = tree.path("c");
    let _g = ContainerGuard::new(NS, &id);
    let host_pidns = format!("--with-ns=pid:/proc/{}/ns/pid", std::process::id());
    run_in(
        shim,
        NS,
        &id,
        &c,
        &[&host_pidns],
        &["sh", "-c", "sleep 1077 & exec sleep 1078"],
    );
    let orphan = poll_until("the container's `sleep 1077`", 10 * SEC, || {
        cgroup_path_procs(&c)
            .into_iter()
            .find(|p| cmdline(*p) == "sleep 1077")
    });
    let orphan_start = proc_start_time(orphan);
    ctr(NS, &["task", "kill", "-s", "SIGKILL", &id]).run().ok();
    wait_task_status(NS, &id, "STOPPED", 15 * SEC);
    let t = Instant::now();
    let same = || pid_alive(orphan) && proc_start_time(orphan) == orphan_start;
    let gone = poll_quiet(bound(5 * SEC), || !same());
    let waited = t.elapsed();
    let neighbour = by.check();
    let off = log_offset();
    ctr(NS, &["task", "rm", &id]).timeout(30 * SEC).run().ok();
    let log = wait_post_cleanup(NS, &id, off);
    let o = Outcome::observe(NS, &id, &mut by, &[orphan], &log);
    record(
        shim,
        "host pidns: init SIGKILLed",
        &format!(
            "`sleep 1077` {} {waited:.1?} after STOPPED; neighbour {}; after rm: {}",
            if gone { "gone" } else { "STILL ALIVE" },
            match &neighbour {
                Ok(()) => "untouched".to_string(),
                Err(e) => format!("HARMED ({e})"),
            },
            o.summary()
        ),
    );
    if shim == Shim::Robust {
        assert!(
            gone,
            "the container's `sleep 1077` (pid {orphan}) is alive {waited:.1?} after its init \
             (in the host's pid namespace) was SIGKILLed and the task showed STOPPED"
        );
        if let Err(e) = neighbour {
            panic!("a host process in a sibling cgroup was harmed: {e}");
        }
        o.assert_ok("host pidns orphan", &log);
    }
});

// ---------------------------------------------------------------------------------------
// runsc
// ---------------------------------------------------------------------------------------

robust_test!(
    /// A runsc container started with `--cgroup` shared with a host process: kill -9 of
    /// its shim, containerd runs our `delete` (runsc's sandbox ends), the host process
    /// lives.
    runsc_shared_cgroup_shim_kill9,
    limit = 150,
    |shim| {
        if !runsc_or_skip("runsc_shared_cgroup_shim_kill9") {
            return;
        }
        let id = unique_id("byst-runsc", shim);
        let tree = case_tree(&id);
        let shared = make(&tree, "shared");
        let mut by = Bystander::host(&shared);
        let _g = ContainerGuard::new(NS, &id);
        let cfg = runsc_config().to_string_lossy().into_owned();
        let image = env().image.clone();
        ctr(
            NS,
            &run_args(
                &cfg,
                &[
                    "-d",
                    "--cgroup",
                    &shared,
                    &image,
                    &id,
                    "sh",
                    "-c",
                    "while :; do sleep 1; done",
                ],
            ),
        )
        .timeout(60 * SEC)
        .run()
        .ok();
        wait_task_status(NS, &id, "RUNNING", 30 * SEC);
        let ids = vec![id.clone()];
        let sandbox = runsc_processes(&ids);
        assert!(
            sandbox.iter().any(|p| p.contains("runsc-sandbox")),
            "no runsc-sandbox process for {id}: {sandbox:#?}"
        );
        let in_cgroup = cgroup_path_procs(&shared);
        eprintln!("processes in {shared}: {in_cgroup:?} (the victim is {})", by.describe());
        let off = log_offset();
        kill9(shim_pid_of(NS, &id));
        let log = wait_post_cleanup(NS, &id, off);
        assert_runsc_gone(NS, &ids, 20 * SEC);
        let o = Outcome::observe(NS, &id, &mut by, &[], &log);
        record(shim, "runsc shared --cgroup, kill -9 shim", &o.summary());
        o.assert_ok("runsc shared cgroup", &log);
    }
);
