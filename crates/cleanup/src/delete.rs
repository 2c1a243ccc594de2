//! The tolerant delete: what runs after a shim died, from containerd's
//! `<shim> delete` (cleanupAfterDeadShim, SIGKILLed after 5 s) and from
//! `sweep`. It cleans up with whatever the bundle still holds, always
//! finishes inside its time budget, and fails only when something really
//! remains (a mount, runtime state, a live process), saying exactly what.
//!
//! Steps, each bounded:
//! 1. refuse bad input (ids, a bundle path with `..`, relative, or reached
//!    through a symlink);
//! 2. read the bundle's files ([`robust_bundle::inputs`]); each missing or corrupt
//!    one is logged once at warn with what was assumed instead;
//! 3. find the init pid (`init.pid`, else `runtime state`, else runc's
//!    `state.json`, else 0); it is killed only when confirmed by the
//!    shim's record or the runtime's state (pid and start time);
//! 4. prove the container's cgroup with [`crate::owner`] (the shim's
//!    record at create, the same directory still, no other container in it
//!    or below); only then thaw it and SIGKILL what is in it, before and
//!    after the runtime's forced delete (tolerating "does not exist", "not
//!    running", "in state created"). Unproven, the runtime's delete alone
//!    ends the container, and the log says why nothing else was killed;
//! 5. unmount everything under the bundle ([`crate::mount::unmount_all`]:
//!    EBUSY retries, then a lazy detach naming the holders);
//! 6. check what remains.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use robust_bundle::{self as bundle, check_bundle_path, read_inputs, BundleInputs, Input};
use robust_config::{ids, ConfigError};
use robust_reaper::Reaper;
use robust_runtime::delete::{self as policy, DeleteHow, Deleted};
use robust_runtime::{ContainerRuntime, RuntimeError, RuntimeSpec, StateRecord};
use std::sync::Arc;

use crate::cgroup::{self as cg, join_pids, pid_alive};
use crate::mount;
use crate::owner::{self, OwnerRecord};
use crate::runtime_choice::{self, choose_runtime, RuntimeChoice};

/// Exit status reported for a container whose shim died: SIGKILL.
pub const EXIT_STATUS: u32 = 128 + libc::SIGKILL as u32;

/// Time limits of one delete. The defaults keep the whole run well inside
/// containerd's 5 s cleanup kill, whatever the configured timeouts say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole delete.
    pub total: Duration,
    /// Cap of one runtime call (the configured deadline is used when it is
    /// shorter).
    pub runtime_call: Duration,
    /// Cap of the unmount bound (EBUSY retries before a lazy detach).
    pub unmount: Duration,
    /// How long killed processes get to disappear.
    pub kill_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            total: Duration::from_millis(3500),
            runtime_call: Duration::from_millis(1500),
            unmount: Duration::from_secs(1),
            kill_wait: Duration::from_millis(500),
        }
    }
}

/// One delete to run.
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    pub namespace: String,
    pub id: String,
    /// `<state>/<namespace>/<id>`.
    pub bundle: PathBuf,
    pub limits: Limits,
    /// Runtime root parents probed when `options.json` is unusable
    /// (default: [`runtime_choice::PROBE_ROOTS`]).
    pub probe_parents: Vec<PathBuf>,
    /// Also look one and two levels below this directory (default `/run`)
    /// for `<ns>/<id>/state.json` labelled with this bundle: a custom
    /// runtime root whose record (`options.json`) is gone.
    pub scan_dir: Option<PathBuf>,
    /// Shim addresses (`unix:///path`) the caller knows besides the
    /// bundle's `address` file (it may be gone); a socket among them that
    /// nobody listens on is removed, so the next `start` of the group finds
    /// its path free.
    pub sockets: Vec<String>,
}

impl DeleteRequest {
    pub fn new(namespace: &str, id: &str, bundle: &Path) -> DeleteRequest {
        DeleteRequest {
            namespace: namespace.to_string(),
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            limits: Limits::default(),
            probe_parents: runtime_choice::PROBE_ROOTS
                .iter()
                .map(PathBuf::from)
                .collect(),
            scan_dir: Some(PathBuf::from("/run")),
            sockets: Vec::new(),
        }
    }
}

/// Input the delete refuses to work with.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("refusing to clean up: {0}")]
    Id(#[from] ConfigError),
    #[error("refusing to clean up: {0}")]
    Bundle(String),
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    pub id: String,
    /// The init's pid when known, 0 when not (never -1).
    pub pid: u32,
    /// Always [`EXIT_STATUS`] (137).
    pub exit_status: u32,
    pub exited_at: SystemTime,
    /// The runtime binary driven and where that choice came from.
    pub runtime: String,
    pub runtime_source: &'static str,
    /// Each fallback taken: `what: assumed`.
    pub assumed: Vec<String>,
    /// Mount points that had to be detached lazily (a holder kept them busy).
    pub detached: Vec<PathBuf>,
    /// What really remains; empty when the cleanup is complete.
    pub remains: Vec<String>,
    /// What the dead shim had left and this cleanup ended: the runtime's
    /// state of the container, mounts under the bundle, live processes.
    /// Empty after a normal Task Delete (containerd runs `delete` after
    /// every shim exit): then there was nothing to clean.
    pub found: Vec<String>,
    pub took: Duration,
}

impl DeleteOutcome {
    /// Nothing remains.
    pub fn is_clean(&self) -> bool {
        self.remains.is_empty()
    }

    /// Nothing for an operator to act on: nothing was left behind, no
    /// bundle input was missing, nothing was detached, nothing remains.
    /// This is what a `delete` after a normal Task Delete finds; its log
    /// stays below warn.
    pub fn is_routine(&self) -> bool {
        self.remains.is_empty()
            && self.found.is_empty()
            && self.assumed.is_empty()
            && self.detached.is_empty()
    }

    /// The error to print when something remains.
    pub fn error_message(&self) -> Option<String> {
        (!self.remains.is_empty()).then(|| {
            format!(
                "container {}: cleanup incomplete; still left: {}",
                self.id,
                self.remains.join("; ")
            )
        })
    }
}

pub(crate) use crate::logfmt::quote as q;

/// The fallbacks of one delete: each logged once, at warn.
struct Notes {
    id: String,
    list: Vec<String>,
}

impl Notes {
    fn assume(&mut self, what: String, assumed: String) {
        log::warn!(
            "msg=\"cleanup: bundle input unusable; assumed instead\" id={} what={} assumed={}",
            self.id,
            q(&what),
            q(&assumed)
        );
        self.list.push(format!("{what}: {assumed}"));
    }
}

/// The time budget of one delete.
struct Budget {
    deadline: Instant,
    id: String,
}

const MIN_STEP: Duration = Duration::from_millis(100);

impl Budget {
    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// `configured`, capped by `cap` and by what is left after `reserve`
    /// (never below [`MIN_STEP`]); logs when a cap applies.
    fn cap(&self, step: &str, configured: Duration, cap: Duration, reserve: Duration) -> Duration {
        let avail = self.left().saturating_sub(reserve).max(MIN_STEP);
        let used = configured.min(cap).min(avail);
        if used < configured {
            log::info!(
                "msg=\"cleanup: deadline capped to stay inside containerd's cleanup timeout\" id={} step={step} configured={configured:?} used={used:?}",
                self.id
            );
        }
        used
    }
}

/// Run `f` on its own thread and wait at most `limit` for it: a step that
/// hangs in the kernel cannot hold the delete past its budget.
fn bounded<T: Send + 'static>(
    name: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        });
    if spawned.is_err() {
        return None;
    }
    rx.recv_timeout(limit).ok()
}

/// The chosen runtime, every call under `deadline`.
fn runtime_for(
    choice: &RuntimeChoice,
    deadline: Duration,
    reaper: &Reaper,
) -> Arc<dyn ContainerRuntime> {
    RuntimeSpec::new(&choice.config, choice.root.clone())
        .with_deadline(deadline)
        .open(reaper.clone())
}

/// Where runc state of this container may be, beyond the usual roots:
/// `<dir>/*/<ns>/<id>/state.json` and `<dir>/*/*/<ns>/<id>/state.json`
/// whose `bundle=` label is this bundle (a custom root).
fn scan_for_roots(dir: &Path, ns: &str, id: &str, bundle: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .take(4096)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let check = |parent: &Path, out: &mut Vec<PathBuf>| {
        let st = parent.join(ns).join(id);
        if let Some(s) = robust_runtime::runc::state_file::read_runc_state(&st) {
            if s.bundle.as_deref() == Some(bundle) && !out.iter().any(|p| p == parent) {
                out.push(parent.to_path_buf());
            }
        }
    };
    for d1 in subdirs(dir) {
        check(&d1, &mut out);
        for d2 in subdirs(&d1) {
            check(&d2, &mut out);
        }
    }
    out
}

/// Clean up after a dead shim. See the module docs for the steps.
///
/// `Err` only for refused input; every other problem is tolerated, and
/// whatever really remains is listed in [`DeleteOutcome::remains`].
pub fn delete_bundle(req: &DeleteRequest, reaper: &Reaper) -> Result<DeleteOutcome, Refused> {
    let started = Instant::now();
    let ns = req.namespace.as_str();
    let id = req.id.as_str();
    ids::validate_namespace(ns)?;
    ids::validate_container_id(id)?;
    let bundle = check_bundle_path(&req.bundle, id).map_err(Refused::Bundle)?;
    let lim = req.limits;
    let budget = Budget {
        deadline: started + lim.total,
        id: id.to_string(),
    };
    let mut notes = Notes {
        id: id.to_string(),
        list: Vec::new(),
    };
    let mut remains = Vec::new();
    let mut found: Vec<String> = Vec::new();

    let present = std::fs::symlink_metadata(&bundle).is_ok_and(|m| m.is_dir());
    if !present {
        notes.assume(
            "bundle directory missing".into(),
            "cleaning the runtime state by container id only".into(),
        );
    } else if bundle.parent().and_then(|p| p.file_name()) != Some(ns.as_ref()) {
        log::info!(
            "msg=\"cleanup: bundle is not under a directory named after the namespace\" id={id} bundle={}",
            q(bundle.display())
        );
    }

    // --- what the bundle still tells us ---------------------------------
    let inputs = read_inputs(&bundle);
    let mut parents = req.probe_parents.clone();
    if inputs.options.ok().is_none() {
        if let Some(dir) = &req.scan_dir {
            for p in scan_for_roots(dir, ns, id, &bundle) {
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
        }
    }
    let choice = choose_runtime(&inputs, ns, id, &bundle, &parents, &mut |w, a| {
        notes.assume(w, a)
    });
    log::info!(
        "msg=\"cleanup: runtime chosen\" id={id} binary={} kind={} root={} source={}",
        q(&choice.config.runtime.binary),
        choice.kind(),
        q(choice.root.display()),
        choice.source
    );
    if present {
        note_secondary_inputs(&inputs, &mut notes);
    }

    // The runtime, for what its family leaves (its calls are opened with
    // their own capped deadlines).
    let rt = runtime_for(&choice, lim.runtime_call, reaper);
    let left = rt.leftovers();
    // The runtime's own record of the container, when it keeps one.
    let mut state_file = left.state_record(id);
    let mut skip_runtime = false;
    // Whether the runtime still holds the container: after a normal Task
    // Delete it does not (the shim deleted it), after a dead shim it does.
    let runtime_held = left.has_state(id);
    if let Some(other) = state_file
        .as_ref()
        .and_then(|s| s.bundle.clone())
        .filter(|b| *b != bundle)
    {
        notes.assume(
            format!(
                "runtime state {} belongs to bundle {}",
                left.describe_state(id),
                other.display()
            ),
            "left alone: it is another container of the same id".into(),
        );
        skip_runtime = true;
        state_file = None;
    }

    // --- the init pid ---------------------------------------------------
    let pid = match &inputs.init_pid {
        Input::Ok(p) => *p,
        other => {
            let (pid, src) = pid_from_runtime(&choice, id, &budget, &lim, reaper, skip_runtime)
                .map(|p| (p, "runtime state"))
                .or_else(|| {
                    state_file
                        .as_ref()
                        .map(|s| s.init_pid)
                        .filter(|p| *p > 0)
                        .map(|p| (p, "the runtime's state file"))
                })
                .unwrap_or((0, "nowhere: reporting pid 0"));
            if present {
                notes.assume(
                    format!("init.pid {}", other.describe()),
                    format!("init pid {pid} (from {src})"),
                );
            }
            pid
        }
    };
    // --- what the shim recorded at create (docs/cleanup.md, the ownership rule)
    let record = match OwnerRecord::read(&bundle) {
        Input::Ok(r) if r.id == id => Some(r),
        Input::Ok(r) => {
            notes.assume(
                format!(
                    "{} names another container ({:?})",
                    owner::RECORD_FILE,
                    r.id
                ),
                "ignored: nothing is killed through the cgroup".into(),
            );
            None
        }
        other => {
            if present {
                notes.assume(
                    format!("{} {}", owner::RECORD_FILE, other.describe()),
                    "no proof of the container's cgroup: nothing is killed through it; the runtime's delete ends the container".into(),
                );
            }
            None
        }
    };
    // A container in its pod's sandbox has the sandbox's host pid: its
    // delete must never kill it (that ended the whole pod, containerd 1.6 to
    // 2.1 running this delete after every app container's task delete of a
    // grouped shim). Only a container whose spec says it owns its sandbox
    // may; without a readable spec, the family decides where it runs (and
    // its leftovers, in the runtime delete, which host processes go).
    let pod_app = inputs.spec.ok().map(|s| s.pod_app);
    let shared_pid = !rt.placement(pod_app).is_own();
    let confirmed = !shared_pid && confirm_pid(pid, record.as_ref(), state_file.as_ref());
    if pid > 0 && pid_alive(pid) && shared_pid {
        log::info!(
            "msg=\"cleanup: the init pid is the pod's sandbox; not killed for this container\" id={id} pid={pid}"
        );
    } else if pid > 0 && pid_alive(pid) && !confirmed {
        notes.assume(
            format!("init pid {pid} is alive but nothing confirms it is this container's"),
            "not killed by the cleanup (it may be a reused pid or another process)".into(),
        );
    }

    // --- the container's cgroup, only when proven (found before the kill)
    let scope = owner::Scope::new(&bundle, std::slice::from_ref(&choice.root));
    let proof = record.as_ref().map(|r| r.prove(&scope));
    let cgroup_gone = matches!(proof, Some(Err(owner::NotProven::Gone)));
    let owned = proof.and_then(|p| match p {
        Ok(o) => Some(o),
        Err(owner::NotProven::Gone) => {
            log::debug!("msg=\"cleanup: the container's cgroup is gone\" id={id}");
            None
        }
        Err(owner::NotProven::Unproven(why)) => {
            // It matters only while something of the container may still
            // run; after a normal Task Delete (a container of a pod sandbox,
            // which never owns a cgroup) it is no news. (Such a container's
            // recorded init is the pod's sandbox, alive as long as the pod:
            // it says nothing about this container.)
            let left = record
                .as_ref()
                .map(OwnerRecord::pids_now)
                .unwrap_or_default();
            let may_run = runtime_held
                || !left.is_empty()
                || record.as_ref().is_some_and(OwnerRecord::owns_live_init);
            log::log!(
                if may_run { log::Level::Warn } else { log::Level::Info },
                "msg=\"cleanup: not killing through the cgroup: not provably the container's alone\" id={id} why={} left_alone={}",
                q(&why),
                q(join_pids(&left))
            );
            None
        }
    });

    // --- end the container's processes first --------------------------
    // `runc delete --force` signals them and waits for them to go; on a
    // loaded node that wait outran the runtime deadline (4 times in 1000
    // soak cycles, 3 in 12 kill -9s with the CPUs busy) and the state stayed.
    // Killing the cgroup ourselves leaves runc only its state to remove.
    let mut killed: Vec<u32> = Vec::new();
    if let Some(o) = &owned {
        let wait = lim.kill_wait.min(budget.left().saturating_sub(MIN_STEP));
        match o.kill(wait, id) {
            Ok(k) => killed.extend(k.signalled),
            Err(e) => log::warn!(
                "msg=\"cleanup: cgroup kill before the runtime delete skipped\" id={id} error={}",
                q(&e)
            ),
        }
    }

    // --- force delete in the runtime ------------------------------------
    let mut runtime_err = None;
    if !skip_runtime {
        if runtime_held {
            found.push(format!("runtime state ({})", rt.family()));
        }
        runtime_err = runtime_delete(&choice, rt.as_ref(), id, &bundle, &budget, &lim, reaper);
    }

    // --- kill what is left ----------------------------------------------
    // Unproven, nothing says the container's processes are all gone.
    let mut cgroup_empty = cgroup_gone;
    if let Some(o) = &owned {
        let wait = lim.kill_wait.min(budget.left().saturating_sub(MIN_STEP));
        match o.kill(wait, id) {
            Ok(k) if k.left.is_empty() => {
                killed.extend(k.signalled);
                cgroup_empty = true;
                remove_cgroup_dirs(o.dirs(), id)
            }
            Ok(k) => remains.push(format!(
                "live processes {} in the container's cgroup {}",
                join_pids(&k.left),
                o.dirs()
                    .first()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            )),
            Err(e) => log::warn!(
                "msg=\"cleanup: cgroup kill skipped\" id={id} error={}",
                q(&e)
            ),
        }
    }
    if confirmed && pid_alive(pid) {
        log::warn!("msg=\"cleanup: killing the container's init\" id={id} pid={pid}");
        killed.push(pid as u32);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let end = Instant::now() + lim.kill_wait.min(budget.left());
        while pid_alive(pid) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if pid_alive(pid) {
            remains.push(format!("live process: init pid {pid}"));
        }
    }
    // The runtime did not finish its delete in time (a loaded node): its
    // family removes the state by hand once nothing it describes runs any
    // more (for runc: the cgroup is empty and no confirmed init lives).
    if let Some(e) = runtime_err.clone() {
        let nothing_alive = cgroup_empty
            && !(pid > 0 && pid_alive(pid) && confirmed)
            && !record.as_ref().is_some_and(OwnerRecord::owns_live_init);
        match left.forget_dead(id, nothing_alive, &e) {
            Ok(true) => runtime_err = None,
            Ok(false) => {}
            Err(why) => runtime_err = Some(format!("{e}; {why}")),
        }
    }

    // --- unmount ---------------------------------------------------------
    let mut detached = Vec::new();
    if present {
        let rootfs = bundle.join("rootfs");
        let rootfs_meta = std::fs::symlink_metadata(&rootfs).ok();
        match &rootfs_meta {
            Some(m) if m.file_type().is_symlink() => notes.assume(
                format!(
                    "rootfs is a symlink (to {:?})",
                    std::fs::read_link(&rootfs).unwrap_or_default()
                ),
                "not followed: nothing is unmounted or removed through it".into(),
            ),
            Some(_) => {}
            None => notes.assume("rootfs missing".into(), "nothing to unmount there".into()),
        }
        let mounted = mount::mounts_under(&bundle);
        if mounted.is_empty() {
            // The normal state after a Task Delete (the shim unmounted it):
            // no input is missing, so no warning.
            if rootfs_meta.is_some_and(|m| m.is_dir()) {
                log::info!("msg=\"cleanup: rootfs not mounted; nothing to unmount\" id={id}");
            }
        } else {
            found.push(match mounted.len() {
                1 => "1 mount".to_string(),
                n => format!("{n} mounts"),
            });
            let b = budget.cap(
                "unmount",
                choice.config.timeouts.unmount,
                lim.unmount,
                MIN_STEP,
            );
            let target = bundle.clone();
            let idc = id.to_string();
            match bounded("unmount", b + Duration::from_millis(500), move || {
                mount::unmount_all(&target, b, &idc)
            }) {
                Some(Ok(d)) => detached = d,
                Some(Err(e)) => {
                    log::warn!("msg=\"cleanup: unmount failed\" id={id} error={}", q(&e))
                }
                None => log::warn!(
                    "msg=\"cleanup: unmount did not finish within its bound\" id={id} bound={b:?}"
                ),
            }
        }
        let left = mount::mounts_under(&bundle);
        if !left.is_empty() {
            remains.push(format!(
                "mounted: {}",
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut sockets: Vec<&str> = inputs
        .address
        .ok()
        .map(String::as_str)
        .into_iter()
        .collect();
    for s in &req.sockets {
        if !sockets.contains(&s.as_str()) {
            sockets.push(s);
        }
    }
    for addr in sockets {
        crate::sweep::remove_stale_socket(addr, id);
    }

    // --- runtime state left? ----------------------------------------------
    if !skip_runtime && left.has_state(id) {
        remains.push(format!(
            "runtime state {} ({})",
            left.describe_state(id),
            runtime_err
                .clone()
                .unwrap_or_else(|| "still there after the runtime's delete".into())
        ));
    }

    let outcome = DeleteOutcome {
        id: id.to_string(),
        pid: pid.max(0) as u32,
        exit_status: EXIT_STATUS,
        exited_at: SystemTime::now(),
        runtime: choice.config.runtime.binary.clone(),
        runtime_source: choice.source,
        assumed: notes.list,
        detached,
        remains,
        found: {
            killed.sort_unstable();
            killed.dedup();
            if !killed.is_empty() {
                found.push(format!("live processes {}", join_pids(&killed)));
            }
            found
        },
        took: started.elapsed(),
    };
    match outcome.error_message() {
        // After a normal Task Delete nothing was left: not a warning (the
        // `delete` action then writes nothing at all, see docs/cleanup.md).
        None => log::log!(
            if outcome.is_routine() {
                log::Level::Info
            } else {
                log::Level::Warn
            },
            "msg=\"cleanup finished\" id={id} pid={} runtime={} took={:?} found={} assumed={} detached={}",
            outcome.pid,
            q(&outcome.runtime),
            outcome.took,
            q(outcome.found.join(", ")),
            outcome.assumed.len(),
            outcome.detached.len()
        ),
        Some(m) => log::error!("msg={} id={id} took={:?}", q(&m), outcome.took),
    }
    Ok(outcome)
}

/// The warnings for the files that do not decide the runtime.
fn note_secondary_inputs(inputs: &BundleInputs, notes: &mut Notes) {
    if !matches!(inputs.spec, Input::Ok(_)) {
        notes.assume(
            format!("config.json {}", inputs.spec.describe()),
            "nothing lost: the cleanup takes the cgroup from the shim's record, never from config.json".into(),
        );
    }
    if !matches!(inputs.address, Input::Ok(_)) {
        notes.assume(
            format!("address file {}", inputs.address.describe()),
            "no shim socket to check or remove".into(),
        );
    }
}

fn pid_from_runtime(
    choice: &RuntimeChoice,
    id: &str,
    budget: &Budget,
    lim: &Limits,
    reaper: &Reaper,
    skip: bool,
) -> Option<i32> {
    if skip {
        return None;
    }
    let reserve = lim.runtime_call.min(Duration::from_millis(800)) + lim.unmount + lim.kill_wait;
    let d = budget.cap(
        "runtime state",
        choice.config.timeouts.state,
        lim.runtime_call.min(Duration::from_secs(1)),
        reserve,
    );
    let rt = runtime_for(choice, d, reaper);
    let idc = id.to_string();
    match bounded("runtime-state", d + Duration::from_millis(300), move || {
        rt.state(&idc)
    }) {
        Some(Ok(s)) if s.pid > 0 => Some(s.pid),
        Some(Ok(_)) => None,
        Some(Err(e)) => {
            log::info!(
                "msg=\"cleanup: runtime state gave no pid\" id={id} error={}",
                q(&e)
            );
            None
        }
        None => None,
    }
}

/// Whether `pid` is this container's init: the pid and its start time are
/// the ones the shim recorded at create, or the ones in the runtime's own
/// state of this bundle. A cgroup path read from `config.json` proves
/// nothing (a hand-made bundle can name anyone's).
fn confirm_pid(pid: i32, record: Option<&OwnerRecord>, state: Option<&StateRecord>) -> bool {
    if pid <= 0 || !pid_alive(pid) {
        return false;
    }
    let start = cg::proc_start_time(pid);
    if let Some(r) = record.filter(|r| r.init_pid == pid && r.init_start > 0) {
        // A gVisor app container's "init" is the pod's sandbox.
        return !r.shared_init && start == Some(r.init_start);
    }
    state.is_some_and(|s| s.init_pid == pid && s.init_start.is_some() && s.init_start == start)
}

/// Remove the (empty) cgroup directories of the container that the
/// runtime did not remove (it could not: its state was gone). Only leaf
/// directories named after the container are touched.
fn remove_cgroup_dirs(dirs: &[PathBuf], id: &str) {
    for d in dirs {
        let named = d
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(id));
        if !named || !d.is_dir() {
            continue;
        }
        match std::fs::remove_dir(d) {
            Ok(()) => log::info!(
                "msg=\"cleanup: removed the container's leftover cgroup\" id={id} dir={}",
                q(d.display())
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!(
                "msg=\"cleanup: cannot remove the container's cgroup\" id={id} dir={} error={}",
                q(d.display()),
                q(&e)
            ),
        }
    }
}

/// The runtime's delete by the shared policy (`robust_runtime::delete`),
/// each call capped by the budget; `None` when the container is gone from
/// the runtime, else why it may not be.
fn runtime_delete(
    choice: &RuntimeChoice,
    rt: &dyn ContainerRuntime,
    id: &str,
    bundle: &Path,
    budget: &Budget,
    lim: &Limits,
    reaper: &Reaper,
) -> Option<String> {
    let left = rt.leftovers();
    // A family whose forced delete of a live container is slow (a ptrace
    // sandbox's alone takes ~1.3 s) gets more of the budget.
    let cap = lim.runtime_call.max(left.delete_floor());
    // What the family keeps on the host besides the init is ended first:
    // its delete is quick once those are gone.
    let alive = left.end_host_processes(id, bundle, lim.kill_wait);
    if !alive.is_empty() {
        log::warn!(
            "msg=\"cleanup: the runtime's host processes still alive after SIGKILL\" id={id} pids={}",
            q(join_pids(&alive.iter().map(|p| *p as u32).collect::<Vec<_>>()))
        );
    }
    // Each call capped by what is left of the budget, on its own thread.
    let mut call = |force: bool| -> Result<(), RuntimeError> {
        let d = budget.cap(
            "runtime delete",
            choice.config.timeouts.delete,
            cap,
            lim.unmount + lim.kill_wait,
        );
        let rt = runtime_for(choice, d, reaper);
        let idc = id.to_string();
        bounded(
            "runtime-delete",
            d + Duration::from_millis(300),
            move || rt.delete(&idc, force),
        )
        .unwrap_or(Err(RuntimeError::Timeout {
            verb: "delete",
            id: id.to_string(),
            after: d,
        }))
    };
    let how = DeleteHow {
        force: true,
        retry_timeout: true,
    };
    match policy::delete_with(rt, id, bundle, how, &mut call) {
        Ok(Deleted::Done) => {
            log::info!("msg=\"cleanup: deleted in the runtime\" id={id}");
            None
        }
        Ok(Deleted::Gone(e)) => {
            log::info!(
                "msg=\"cleanup: container already gone from the runtime\" id={id} said={}",
                q(&e)
            );
            None
        }
        Ok(Deleted::NotRunning(e)) | Err(e) => Some(e.to_string()),
    }
}

/// A bundle's `init.pid` without the rest of the routine (for callers that
/// only report).
pub fn recorded_pid(bundle: &Path) -> u32 {
    bundle::read_pid(bundle, "init.pid").unwrap_or(0).max(0) as u32
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One reaper for every test of the crate: two reapers in one process
    /// would reap each other's children.
    pub(crate) fn test_reaper() -> Reaper {
        static R: std::sync::OnceLock<Reaper> = std::sync::OnceLock::new();
        R.get_or_init(|| {
            let (r, rx) = Reaper::start().unwrap();
            std::thread::spawn(move || for _ in rx {});
            r
        })
        .clone()
    }

    #[test]
    fn refuses_bad_ids_and_paths() {
        let reaper = test_reaper();
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("default").join("c1");
        std::fs::create_dir_all(&b).unwrap();
        for (ns, id, bundle) in [
            ("default", "..", b.clone()),
            ("default", "../c1", b.clone()),
            ("default", "/abs", b.clone()),
            ("de/fault", "c1", b.clone()),
            ("default", "c1", PathBuf::from("default/c1")),
            ("default", "c1", d.path().join("default/../default/c1")),
            ("default", "c2", b.clone()),
        ] {
            let r = DeleteRequest::new(ns, id, &bundle);
            let e = delete_bundle(&r, &reaper).unwrap_err().to_string();
            assert!(e.starts_with("refusing to clean up: "), "{e}");
        }
        // A bundle reached through a symlink (to /): refused, nothing done.
        let link = d.path().join("default").join("c3");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let e = delete_bundle(&DeleteRequest::new("default", "c3", &link), &reaper)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symlink"), "{e}");
    }

    fn fake_runtime(dir: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("fake-runc");
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn request(d: &Path, id: &str) -> (DeleteRequest, PathBuf) {
        let b = d.join("state").join("default").join(id);
        std::fs::create_dir_all(&b).unwrap();
        let mut r = DeleteRequest::new("default", id, &b);
        r.probe_parents = vec![d.join("roots")];
        r.scan_dir = None;
        (r, b)
    }

    /// A bundle holding nothing at all (the rest of the routine needs a
    /// runtime; a fake one that says "does not exist" stands in).
    #[test]
    fn an_empty_bundle_is_cleaned_with_pid_zero() {
        let reaper = test_reaper();
        let d = tempfile::tempdir().unwrap();
        let (r, b) = request(d.path(), "c1");
        let rt = fake_runtime(
            d.path(),
            "echo 'container \"c1\" does not exist' >&2; exit 1",
        );
        std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
        let o = delete_bundle(&r, &reaper).unwrap();
        assert!(o.is_clean(), "{:?}", o.remains);
        assert_eq!(o.pid, 0);
        assert_eq!(o.exit_status, 137);
        assert_eq!(o.runtime_source, "runtime");
        // options.json, init.pid, the shim's record, config.json, address,
        // rootfs: one note each.
        assert_eq!(o.assumed.len(), 6, "{:#?}", o.assumed);
        assert!(o.took < Duration::from_secs(4));
    }

    /// A bundle as it is when containerd runs `delete` after a normal Task
    /// Delete: every file there, the runtime's state gone, the recorded
    /// cgroup gone, the rootfs unmounted. Routine: nothing found, nothing
    /// assumed. The same bundle with the runtime still holding the
    /// container (a dead shim) is not.
    fn after_task_delete(d: &Path, id: &str) -> (DeleteRequest, PathBuf, PathBuf) {
        let (r, b) = request(d, id);
        let rt = fake_runtime(d, "exit 0");
        let mut c = robust_config::Config::default();
        c.runtime.root = Some(d.join("roots"));
        c.runtime.binary = rt.display().to_string();
        std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
        std::fs::write(b.join("options.json"), c.to_options_json()).unwrap();
        // a pid below pid_max that is not running (the init is gone)
        let max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|m| m.trim().parse::<i32>().ok())
            .unwrap_or(32768);
        let dead = (2..max).rev().find(|p| !pid_alive(*p)).unwrap();
        std::fs::write(b.join("init.pid"), dead.to_string()).unwrap();
        std::fs::write(b.join("config.json"), "{}").unwrap();
        std::fs::write(
            b.join("address"),
            format!("unix://{}", d.join("no-such.sock").display()),
        )
        .unwrap();
        OwnerRecord {
            id: id.into(),
            init_pid: dead,
            init_start: 1,
            pid_ns: None,
            shared_init: false,
            cgroup: vec![owner::CgroupDir {
                controller: "pids".into(),
                path: d.join("cgroup-gone"),
                ino: 1,
            }],
            not_owned: None,
        }
        .write(&b)
        .unwrap();
        std::fs::create_dir(b.join("rootfs")).unwrap();
        let state = d.join("roots").join("default").join(id);
        (r, b, state)
    }

    #[test]
    fn a_delete_after_a_normal_task_delete_is_routine() {
        let reaper = test_reaper();
        let d = tempfile::tempdir().unwrap();
        let (r, _b, _) = after_task_delete(d.path(), "c6");
        let o = delete_bundle(&r, &reaper).unwrap();
        assert!(o.is_clean(), "{:?}", o.remains);
        assert!(o.found.is_empty(), "{:?}", o.found);
        assert!(o.assumed.is_empty(), "{:#?}", o.assumed);
        assert!(o.is_routine());

        // The runtime still holds it: a shim died before deleting it.
        let (r, _b, state) = after_task_delete(d.path(), "c7");
        std::fs::create_dir_all(&state).unwrap();
        let o = delete_bundle(&r, &reaper).unwrap();
        assert_eq!(o.found, ["runtime state (runc)"], "{:?}", o.found);
        assert!(!o.is_routine());

        // A bundle file missing is never routine.
        let (r, b, _) = after_task_delete(d.path(), "c8");
        std::fs::remove_file(b.join("init.pid")).unwrap();
        let o = delete_bundle(&r, &reaper).unwrap();
        assert!(o.found.is_empty(), "{:?}", o.found);
        assert!(
            o.assumed.iter().any(|a| a.starts_with("init.pid missing")),
            "{:#?}",
            o.assumed
        );
        assert!(!o.is_routine());
    }

    #[test]
    fn a_hanging_runtime_is_bounded_and_reported() {
        let reaper = test_reaper();
        let d = tempfile::tempdir().unwrap();
        let (mut r, b) = request(d.path(), "c2");
        r.limits.runtime_call = Duration::from_millis(300);
        let rt = fake_runtime(d.path(), "sleep 30");
        std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
        std::fs::write(b.join("init.pid"), "77777777").unwrap();
        // runc's state dir of the container, under the default root of
        // this config: it stays, and is reported.
        let mut c = robust_config::Config::default();
        c.runtime.root = Some(d.path().join("roots"));
        c.runtime.binary = rt.display().to_string();
        std::fs::write(b.join("options.json"), c.to_options_json()).unwrap();
        let st = d.path().join("roots/default/c2");
        std::fs::create_dir_all(&st).unwrap();
        let t = Instant::now();
        let o = delete_bundle(&r, &reaper).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // 77777777 is beyond any pid_max: unknown, and the hung runtime
        // names none either, so the pid is 0 (docs/cleanup.md).
        assert_eq!(o.pid, 0);
        assert!(
            o.assumed.iter().any(|a| a.contains("pid_max")),
            "{:#?}",
            o.assumed
        );
        assert_eq!(o.remains.len(), 1, "{:?}", o.remains);
        assert!(o.remains[0].contains("runtime state"), "{:?}", o.remains);
        assert!(o.remains[0].contains("no answer"), "{:?}", o.remains);
        let msg = o.error_message().unwrap();
        assert!(msg.contains(&st.display().to_string()), "{msg}");
    }

    #[test]
    fn not_running_falls_back_to_a_plain_delete() {
        let reaper = test_reaper();
        let d = tempfile::tempdir().unwrap();
        let (r, b) = request(d.path(), "c3");
        let log = d.path().join("calls");
        let rt = fake_runtime(
            d.path(),
            &format!(
                "echo \"$@\" >> {0}\ncase \"$*\" in *--force*) echo 'cannot signal container in state created' >&2; exit 1;; esac\nexit 0",
                log.display()
            ),
        );
        std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
        std::fs::write(b.join("init.pid"), "1").unwrap();
        let o = delete_bundle(&r, &reaper).unwrap();
        assert!(o.is_clean(), "{:?}", o.remains);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(calls.lines().count(), 2, "{calls}");
        // pid 1 is alive but is not the container's: reported, never killed.
        assert_eq!(o.pid, 1);
        assert!(
            o.assumed.iter().any(|a| a.contains("nothing confirms")),
            "{:#?}",
            o.assumed
        );
    }

    /// With runsc every container of a pod has the pod sandbox's host pid.
    /// The delete of an app container (its spec says so) never kills that
    /// pid, even when the shim's record confirms it; the container that
    /// owns its sandbox does.
    #[test]
    fn a_runsc_app_container_never_kills_the_pods_sandbox_pid() {
        let reaper = test_reaper();
        for (kind, killed) in [("container", false), ("sandbox", true)] {
            let d = tempfile::tempdir().unwrap();
            let id = format!("rs-{kind}");
            let (r, b) = request(d.path(), &id);
            let rt = fake_runtime(d.path(), "exit 0");
            let mut c = robust_config::Config::default();
            c.runtime.root = Some(d.path().join("roots"));
            c.runtime.binary = rt.display().to_string();
            c.runtime.kind = Some(robust_config::RuntimeKind::Runsc);
            std::fs::write(b.join("options.json"), c.to_options_json()).unwrap();
            // the "sandbox": a live process, recorded as this container's init
            let mut sandbox = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            let pid = sandbox.id() as i32;
            std::fs::write(b.join("init.pid"), pid.to_string()).unwrap();
            let scope = owner::Scope::new(&b, &[]);
            OwnerRecord::observe(&id, pid, None, &scope)
                .write(&b)
                .unwrap();
            std::fs::write(
                b.join("config.json"),
                format!(
                    r#"{{"annotations":{{"io.kubernetes.cri.container-type":"{kind}","io.kubernetes.cri.sandbox-id":"rs-sandbox"}}}}"#
                ),
            )
            .unwrap();
            let o = delete_bundle(&r, &reaper).unwrap();
            assert_eq!(o.pid, pid as u32);
            let alive = pid_alive(pid);
            let _ = sandbox.kill();
            let _ = sandbox.wait();
            assert_eq!(
                !alive,
                killed,
                "{kind}: the sandbox pid {} by the delete",
                if alive { "survived" } else { "was killed" }
            );
        }
    }

    #[test]
    fn a_symlinked_rootfs_is_not_followed() {
        let reaper = test_reaper();
        let d = tempfile::tempdir().unwrap();
        let (r, b) = request(d.path(), "c4");
        let rt = fake_runtime(d.path(), "exit 0");
        std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
        // A mount outside the bundle, and a rootfs that is a symlink to it:
        // cleanup must leave it mounted (other mounts of the machine may come
        // and go meanwhile, so only this one is checked).
        let canary = d.path().join("canary");
        std::fs::create_dir(&canary).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &canary,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::write(canary.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&canary, b.join("rootfs")).unwrap();
        let o = delete_bundle(&r, &reaper);
        let still_mounted = mount::mounts_under(&canary).contains(&canary);
        let kept = canary.join("keep").exists();
        let _ = nix::mount::umount2(&canary, nix::mount::MntFlags::MNT_DETACH);
        let o = o.unwrap();
        assert!(o.is_clean(), "{:?}", o.remains);
        assert!(
            still_mounted,
            "the mount the rootfs symlink points at was unmounted"
        );
        assert!(kept, "a file behind the rootfs symlink was removed");
        assert!(o.assumed.iter().any(|a| a.contains("rootfs is a symlink")));
    }

    #[test]
    fn scan_finds_a_custom_root_by_its_bundle_label() {
        let d = tempfile::tempdir().unwrap();
        let b = PathBuf::from("/run/x/default/c1");
        let st = d.path().join("custom/runc/default/c1");
        std::fs::create_dir_all(&st).unwrap();
        std::fs::write(
            st.join("state.json"),
            r#"{"init_process_pid":5,"config":{"labels":["bundle=/run/x/default/c1"]}}"#,
        )
        .unwrap();
        let other = d.path().join("other/default/c1");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(
            other.join("state.json"),
            r#"{"init_process_pid":5,"config":{"labels":["bundle=/elsewhere/c1"]}}"#,
        )
        .unwrap();
        assert_eq!(
            scan_for_roots(d.path(), "default", "c1", &b),
            vec![d.path().join("custom/runc")]
        );
    }

    #[test]
    fn budget_caps_and_logs() {
        let b = Budget {
            deadline: Instant::now() + Duration::from_secs(3),
            id: "c".into(),
        };
        let got = b.cap(
            "x",
            Duration::from_secs(10),
            Duration::from_millis(1500),
            Duration::ZERO,
        );
        assert_eq!(got, Duration::from_millis(1500));
        let got = b.cap(
            "x",
            Duration::from_secs(10),
            Duration::from_millis(1500),
            Duration::from_millis(2900),
        );
        assert!(got <= Duration::from_millis(150), "{got:?}");
        assert!(got >= MIN_STEP);
        let got = b.cap(
            "x",
            Duration::from_millis(200),
            Duration::from_millis(1500),
            Duration::ZERO,
        );
        assert_eq!(got, Duration::from_millis(200));
    }
}
