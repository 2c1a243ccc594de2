//! What the bundle and the runtime still tell about the container, before
//! anything is touched: the runtime to drive, the init pid and whether it
//! is provably the container's, the shim's record and the cgroup it
//! proves (docs/cleanup.md, the ownership rule).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use robust_bundle::{read_inputs, BundleInputs, Input};
use robust_reaper::Reaper;
use robust_runtime::{ContainerRuntime, StateRecord};

use super::budget::{bounded, Budget, Notes};
use super::runtime::runtime_for;
use super::{q, DeleteRequest, Limits};
use crate::cgroup::{self as cg, join_pids, pid_alive};
use crate::owner::{self, OwnerRecord};
use crate::runtime_choice::{choose_runtime, RuntimeChoice};

/// What one delete works with, found before anything is killed.
pub(super) struct Plan {
    /// The bundle directory exists.
    pub(super) present: bool,
    pub(super) inputs: BundleInputs,
    pub(super) choice: RuntimeChoice,
    /// The chosen runtime, for what its family leaves (its calls are
    /// opened with their own capped deadlines).
    pub(super) rt: Arc<dyn ContainerRuntime>,
    /// The runtime's state belongs to another bundle: left alone.
    pub(super) skip_runtime: bool,
    /// The runtime still holds the container: after a normal Task Delete it
    /// does not (the shim deleted it), after a dead shim it does.
    pub(super) runtime_held: bool,
    /// The init's pid, 0 when unknown.
    pub(super) pid: i32,
    /// The shim's record of this container, when readable and its own.
    pub(super) record: Option<OwnerRecord>,
    /// `pid` is provably the container's own init (never a pod's sandbox).
    pub(super) confirmed: bool,
    /// The container's cgroup, proven by the record.
    pub(super) owned: Option<owner::Owned>,
    /// The recorded cgroup is gone.
    pub(super) cgroup_gone: bool,
}

/// Reads the bundle, chooses the runtime, finds the init pid and proves
/// the cgroup: each unusable input is a note.
pub(super) fn plan(
    req: &DeleteRequest,
    bundle: &Path,
    budget: &Budget,
    notes: &mut Notes,
    reaper: &Reaper,
) -> Plan {
    let (ns, id, lim) = (req.namespace.as_str(), req.id.as_str(), &req.limits);
    let present = std::fs::symlink_metadata(bundle).is_ok_and(|m| m.is_dir());
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
    let inputs = read_inputs(bundle);
    let choice = choose(req, bundle, &inputs, notes);
    if present {
        note_secondary_inputs(&inputs, notes);
    }
    let rt = runtime_for(&choice, lim.runtime_call, reaper);
    let left = rt.leftovers();
    let mut state_file = left.state_record(id);
    let runtime_held = left.has_state(id);
    let mut skip_runtime = false;
    if let Some(other) = state_file
        .as_ref()
        .and_then(|s| s.bundle.clone())
        .filter(|b| b != bundle)
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
    let from_runtime = || {
        (!skip_runtime)
            .then(|| pid_from_runtime(&choice, id, budget, lim, reaper))
            .flatten()
    };
    let pid = init_pid(&inputs, present, state_file.as_ref(), from_runtime, notes);
    let record = own_record(bundle, id, present, notes);
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
    let (owned, cgroup_gone) = prove_cgroup(bundle, id, &choice, record.as_ref(), runtime_held);
    Plan {
        present,
        inputs,
        choice,
        rt,
        skip_runtime,
        runtime_held,
        pid,
        record,
        confirmed,
        owned,
        cgroup_gone,
    }
}

/// The runtime to drive: from the bundle's records, else probed under the
/// known roots and (when `options.json` is unusable) a scanned custom one.
fn choose(
    req: &DeleteRequest,
    bundle: &Path,
    inputs: &BundleInputs,
    notes: &mut Notes,
) -> RuntimeChoice {
    let (ns, id) = (req.namespace.as_str(), req.id.as_str());
    let mut parents = req.probe_parents.clone();
    if inputs.options.ok().is_none() {
        if let Some(dir) = &req.scan_dir {
            for p in scan_for_roots(dir, ns, id, bundle) {
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
        }
    }
    let choice = choose_runtime(inputs, ns, id, bundle, &parents, &mut |w, a| {
        notes.assume(w, a)
    });
    log::info!(
        "msg=\"cleanup: runtime chosen\" id={id} binary={} kind={} root={} source={}",
        q(&choice.config.runtime.binary),
        choice.kind(),
        q(choice.root.display()),
        choice.source
    );
    choice
}

/// Where runc state of this container may be, beyond the usual roots:
/// `<dir>/*/<ns>/<id>/state.json` and `<dir>/*/*/<ns>/<id>/state.json`
/// whose `bundle=` label is this bundle (a custom root).
pub(super) fn scan_for_roots(dir: &Path, ns: &str, id: &str, bundle: &Path) -> Vec<PathBuf> {
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

/// The init pid: `init.pid`, else the runtime's state, else its state
/// file, else 0.
fn init_pid(
    inputs: &BundleInputs,
    present: bool,
    state_file: Option<&StateRecord>,
    from_runtime: impl FnOnce() -> Option<i32>,
    notes: &mut Notes,
) -> i32 {
    let other = match &inputs.init_pid {
        Input::Ok(p) => return *p,
        other => other,
    };
    let (pid, src) = from_runtime()
        .map(|p| (p, "runtime state"))
        .or_else(|| {
            state_file
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

fn pid_from_runtime(
    choice: &RuntimeChoice,
    id: &str,
    budget: &Budget,
    lim: &Limits,
    reaper: &Reaper,
) -> Option<i32> {
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

/// What the shim recorded at create, when it is this container's.
fn own_record(bundle: &Path, id: &str, present: bool, notes: &mut Notes) -> Option<OwnerRecord> {
    match OwnerRecord::read(bundle) {
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

/// The container's cgroup when the record proves it (found before any
/// kill), and whether the recorded cgroup is gone.
fn prove_cgroup(
    bundle: &Path,
    id: &str,
    choice: &RuntimeChoice,
    record: Option<&OwnerRecord>,
    runtime_held: bool,
) -> (Option<owner::Owned>, bool) {
    let scope = owner::Scope::new(bundle, std::slice::from_ref(&choice.root));
    let Some(proof) = record.map(|r| r.prove(&scope)) else {
        return (None, false);
    };
    match proof {
        Ok(o) => (Some(o), false),
        Err(owner::NotProven::Gone) => {
            log::debug!("msg=\"cleanup: the container's cgroup is gone\" id={id}");
            (None, true)
        }
        Err(owner::NotProven::Unproven(why)) => {
            // It matters only while something of the container may still
            // run; after a normal Task Delete (a container of a pod sandbox,
            // which never owns a cgroup) it is no news. (Such a container's
            // recorded init is the pod's sandbox, alive as long as the pod:
            // it says nothing about this container.)
            let left = record.map(OwnerRecord::pids_now).unwrap_or_default();
            let may_run =
                runtime_held || !left.is_empty() || record.is_some_and(OwnerRecord::owns_live_init);
            log::log!(
                if may_run { log::Level::Warn } else { log::Level::Info },
                "msg=\"cleanup: not killing through the cgroup: not provably the container's alone\" id={id} why={} left_alone={}",
                q(&why),
                q(join_pids(&left))
            );
            (None, false)
        }
    }
}
