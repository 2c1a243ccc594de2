//! The Task service: containerd's calls, one method each, over the
//! containers this daemon runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::api;
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::types::task::{ProcessInfo, Status as PbStatus};
use robust_bundle as bundle;
use robust_cleanup::logfmt::quote;
use robust_cleanup::mount;
use robust_config::{Config, RuntimeKind};
use robust_reaper::{Exit, Reaper};
use robust_runtime::{CreateOpts, ExecOpts, Runc};
use ttrpc::TtrpcContext;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events::{self, Publisher};
use crate::process::{Process, Status};
use crate::stdio::{self, StdioPaths};

/// How long an exit of an unknown pid is kept for a process that may
/// register it right after (create/exec returned, pid file not read yet).
const EARLY_EXIT_TTL: Duration = Duration::from_secs(30);

/// Routes reaped exits to the process that owns the pid. One lock orders
/// registration against delivery, so an exit is never lost between a
/// runtime call returning and its pid file being read.
#[derive(Default)]
struct ExitRouter {
    pids: HashMap<i32, (String, String)>,
    early: HashMap<i32, Exit>,
}

/// The shim daemon's service.
#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) namespace: String,
    pub(crate) reaper: Reaper,
    pub(crate) publisher: Publisher,
    pub(crate) containers: Mutex<HashMap<String, Arc<Container>>>,
    router: Mutex<ExitRouter>,
    pub(crate) oom: Option<robust_cgroups::OomWatcher>,
    /// The longest `timeouts.shutdown` of the containers served so far.
    shutdown_bound: Mutex<Duration>,
    shutdown: Mutex<Sender<()>>,
}

impl Service {
    /// A service for `namespace`. `exits` is the reaper's sink; `shutdown`
    /// is signalled when containerd asks the daemon to exit.
    pub fn new(
        namespace: &str,
        reaper: Reaper,
        exits: Receiver<Exit>,
        publisher: Publisher,
        shutdown: Sender<()>,
    ) -> Service {
        let (oom_tx, oom_rx) = std::sync::mpsc::channel::<String>();
        let oom = match crate::event_loop::watch_ooms(oom_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!(
                    "msg=\"OOM events unavailable\" error={q_error}",
                    q_error = quote(&e)
                );
                None
            }
        };
        let svc = Service {
            inner: Arc::new(Inner {
                namespace: namespace.to_string(),
                reaper,
                publisher,
                containers: Mutex::new(HashMap::new()),
                router: Mutex::new(ExitRouter::default()),
                oom,
                shutdown_bound: Mutex::new(Config::default().timeouts.shutdown),
                shutdown: Mutex::new(shutdown),
            }),
        };
        let s = svc.clone();
        let _ = std::thread::Builder::new()
            .name("exits".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                for exit in exits {
                    // One exit that cannot be handled must not stop the
                    // delivery of every later one.
                    if let Err(why) = crate::error::contain(|| s.on_exit(exit)) {
                        log::error!(
                            "msg=\"shim panicked handling an exit; continuing\" pid={} panic={q_panic}",
                            exit.pid,
                            q_panic = quote(&why)
                        );
                    }
                }
            });
        let s = svc.clone();
        let _ = std::thread::Builder::new()
            .name("oom".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                for id in oom_rx {
                    log::info!("msg=\"container OOM\" id={id}");
                    let handled = crate::error::contain(|| match s.container(&id) {
                        Ok(c) => s.publish_oom(&c, true),
                        Err(_) => {
                            let mut m = ev::TaskOOM::new();
                            m.container_id = id.clone();
                            s.inner.publisher.publish(events::task_oom(&m));
                        }
                    });
                    if let Err(why) = handled {
                        log::error!(
                            "msg=\"shim panicked handling an OOM; continuing\" id={id} panic={q_panic}",
                            q_panic = quote(&why)
                        );
                    }
                }
            });
        svc
    }

    /// How long the daemon's exit may spend delivering what is queued
    /// (`timeouts.shutdown`, the longest among its containers).
    pub fn shutdown_bound(&self) -> Duration {
        self.inner
            .shutdown_bound
            .lock()
            .map(|b| *b)
            .unwrap_or(Duration::from_secs(5))
    }

    pub fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    pub fn container_count(&self) -> usize {
        self.inner.containers.lock().map(|c| c.len()).unwrap_or(0)
    }

    pub(crate) fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.inner
            .containers
            .lock()
            .map_err(|_| Error::poisoned("containers"))?
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id} not found")))
    }

    // ---- exits -------------------------------------------------------

    fn on_exit(&self, exit: Exit) {
        let owner = {
            let Ok(mut r) = self.inner.router.lock() else {
                return;
            };
            match r.pids.remove(&exit.pid) {
                Some(k) => Some(k),
                None => {
                    let now = SystemTime::now();
                    r.early.retain(|_, e| {
                        now.duration_since(e.at).unwrap_or_default() < EARLY_EXIT_TTL
                    });
                    r.early.insert(exit.pid, exit);
                    None
                }
            }
        };
        match owner {
            Some((cid, eid)) => self.deliver_exit(&cid, &eid, exit),
            None => log::debug!(
                "msg=\"reaped a process that is not a container process\" pid={} status={} reaped_unclaimed_total={}",
                exit.pid,
                quote(exit.status),
                self.inner.reaper.unclaimed_count()
            ),
        }
    }

    /// Register `pid` as the process `(cid, eid)`. If it already exited,
    /// the exit is delivered now.
    fn register_pid(&self, pid: i32, cid: &str, eid: &str) {
        let early = {
            let Ok(mut r) = self.inner.router.lock() else {
                return;
            };
            match r.early.remove(&pid) {
                Some(e) => Some(e),
                None => {
                    r.pids.insert(pid, (cid.to_string(), eid.to_string()));
                    None
                }
            }
        };
        if let Some(e) = early {
            self.deliver_exit(cid, eid, e);
        }
    }

    pub(crate) fn unregister_pid(&self, pid: i32) {
        if let Ok(mut r) = self.inner.router.lock() {
            r.pids.remove(&pid);
        }
    }

    pub(crate) fn deliver_exit(&self, cid: &str, eid: &str, exit: Exit) {
        let Ok(c) = self.container(cid) else { return };
        let Ok(p) = c.process(eid) else { return };
        let code = exit.status.code();
        log::info!(
            "msg=\"process exited\" id={cid} exec_id={eid} pid={} status={code}",
            exit.pid
        );
        if eid.is_empty() && (c.kind == RuntimeKind::Runc || c.owns_sandbox) {
            // An OOM kill is reported before the exit it caused. (The app
            // containers of a gVisor pod share the sandbox's cgroup: its
            // OOM count is the sandbox's to report.)
            self.publish_oom(&c, false);
        }
        {
            let Ok(mut st) = p.lock() else { return };
            if !Process::set_exited(&mut st, code, exit.at) {
                return;
            }
            if eid.is_empty() {
                // Before the exit is published, as containerd's runc shim does.
                self.kill_rest_after_init_exit(&c);
            }
            if st.starting {
                st.exit_deferred = true;
            } else if eid.is_empty() && !c.live_execs().is_empty() {
                // With execs still running (a shared pid namespace), the
                // init's exit is published after theirs.
                if let Ok(mut held) = c.init_exit_held.lock() {
                    *held = true;
                }
                self.release_held_exit_later(&c);
            } else {
                self.publish_exit(cid, &p, &st);
            }
        }
        p.notify_exit();
        // The output copies end at EOF or `io_drain` from now: a background
        // child holding stdout delays neither this exit nor the client.
        p.finish_io();
        if !eid.is_empty() && c.live_execs().is_empty() {
            self.publish_held_init_exit(&c);
        }
    }

    /// Publish the init's held exit, once.
    fn publish_held_init_exit(&self, c: &Container) {
        let Ok(mut held) = c.init_exit_held.lock() else {
            return;
        };
        if !*held {
            return;
        }
        *held = false;
        if let Ok(st) = c.init.lock() {
            self.publish_exit(&c.id, &c.init, &st);
        }
    }

    /// The init exited before its execs (in a shared pid namespace, which
    /// `kill_rest_after_init_exit` already killed): publish the init's exit
    /// after theirs, within `kill_grace` at most.
    fn release_held_exit_later(&self, c: &Arc<Container>) {
        let svc = self.clone();
        let c0 = c;
        let c = c.clone();
        let spawned = std::thread::Builder::new()
            .name("held-exit".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let deadline = Instant::now() + c.config.timeouts.kill_grace;
                for p in c.live_execs() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if p.wait_timeout(left).is_none() {
                        log::warn!(
                            "msg=\"exec still running after its init exited; publishing the init exit anyway\" id={} exec_id={} grace={:?}",
                            c.id,
                            p.exec_id,
                            c.config.timeouts.kill_grace
                        );
                    }
                }
                svc.publish_held_init_exit(&c);
            });
        if spawned.is_err() {
            self.publish_held_init_exit(c0);
        }
    }

    /// Publish a TaskOOM when the cgroup's OOM-kill count went up since the
    /// last one. `from_watch`: the OOM watcher fired; without a readable
    /// counter that alone is reason enough.
    pub(crate) fn publish_oom(&self, c: &Container, from_watch: bool) {
        let Ok(mut seen) = c.oom_published.lock() else {
            return;
        };
        let count = c.cgroup.as_ref().and_then(|cg| cg.oom_kill_count());
        let publish = match count {
            Some(n) if n > *seen => {
                *seen = n;
                true
            }
            Some(_) => false,
            None => from_watch,
        };
        if publish {
            let mut m = ev::TaskOOM::new();
            m.container_id = c.id.clone();
            self.inner.publisher.publish(events::task_oom(&m));
        }
    }

    pub(crate) fn publish_exit(&self, cid: &str, p: &Process, st: &crate::process::State) {
        let mut m = ev::TaskExit::new();
        m.container_id = cid.to_string();
        m.id = if p.exec_id.is_empty() {
            cid.to_string()
        } else {
            p.exec_id.clone()
        };
        m.pid = st.pid as u32;
        m.exit_status = st.exit_code;
        m.exited_at = events::timestamp(st.exited_at.unwrap_or_else(SystemTime::now));
        self.inner.publisher.publish(events::task_exit(&m));
    }

    // ---- create ------------------------------------------------------

    fn config_for(&self, options: &MessageField<Any>) -> Result<Config> {
        match options.as_ref() {
            Some(any) if !any.type_url.is_empty() => Ok(robust_config::options::config_from_any(
                &any.type_url,
                &any.value,
            )?),
            _ => Ok(Config::default()),
        }
    }

    fn runc_for(&self, cfg: &Config) -> Result<Runc> {
        crate::container::runc_from_config(cfg, &self.inner.namespace, self.inner.reaper.clone())
    }

    pub fn do_create(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        let id = req.id.clone();
        robust_config::ids::validate_container_id(&id)?;
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented(format!(
                "container {id}: restore from checkpoint is not supported"
            )));
        }
        let bundle_dir = PathBuf::from(&req.bundle);
        if !bundle_dir.is_absolute() || req.bundle.split('/').any(|c| c == "..") {
            return Err(Error::InvalidArgument(format!(
                "container {id}: bundle path {:?} must be absolute without ..",
                req.bundle
            )));
        }
        if self.container(&id).is_ok() {
            return Err(Error::AlreadyExists(format!(
                "container {id} already exists"
            )));
        }
        let cfg = self.config_for(&req.options)?;
        let runc = self.runc_for(&cfg)?;
        let spec = bundle::spec_or_assumed(&bundle_dir);
        let owns = spec.owns_sandbox();
        if cfg.runtime_kind() == RuntimeKind::Runsc && !owns {
            let sandbox_pid = spec
                .sandbox_id
                .as_deref()
                .and_then(|sid| self.container(sid).ok())
                .map(|sb| sb.init.pid())
                .unwrap_or(0);
            crate::container::join_sandbox_pid_namespace(&bundle_dir, sandbox_pid, &id)?;
        }
        self.inner.publisher.set_bound(cfg.timeouts.publish);
        if let Ok(mut b) = self.inner.shutdown_bound.lock() {
            *b = (*b).max(cfg.timeouts.shutdown);
        }

        // Files cleanup relies on, written before anything can go wrong.
        bundle::write_atomic(
            &bundle_dir,
            "options.json",
            cfg.to_options_json().as_bytes(),
        )
        .map_err(|e| Error::Io(format!("container {id}: write options.json: {e}")))?;
        bundle::write_atomic(&bundle_dir, "runtime", cfg.runtime.binary.as_bytes())
            .map_err(|e| Error::Io(format!("container {id}: write runtime: {e}")))?;

        let rootfs = if req.rootfs.is_empty() {
            None
        } else {
            let target = bundle_dir.join("rootfs");
            std::fs::create_dir_all(&target)
                .map_err(|e| Error::Io(format!("container {id}: create rootfs dir: {e}")))?;
            let specs: Vec<bundle::mount::MountSpec> = req
                .rootfs
                .iter()
                .map(|m| bundle::mount::MountSpec {
                    kind: m.type_.clone(),
                    source: m.source.clone(),
                    options: m.options.clone(),
                })
                .collect();
            bundle::mount::mount_all(&specs, &target)
                .map_err(|e| Error::Io(format!("container {id}: {e}")))?;
            Some(target)
        };

        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let undo_mount = |why: &str| {
            if let Some(r) = &rootfs {
                if let Err(e) = mount::unmount_all(r, cfg.timeouts.unmount, &id) {
                    log::warn!(
                        "msg=\"unmount after failed create failed\" id={id} why={q_why} error={q_error}",
                        q_why = quote(why),
                        q_error = quote(&e)
                    );
                }
            }
        };
        let prepared = match stdio::prepare(&paths, &id, "", cfg.timeouts.io_drain) {
            Ok(p) => p,
            Err(e) => {
                undo_mount("stdio");
                return Err(e);
            }
        };
        let pid_file = bundle_dir.join("init.pid");
        let console_path = prepared.console.as_ref().map(|c| c.path().to_path_buf());
        let prepared = {
            let mut prepared = prepared;
            let stdio = std::mem::take(&mut prepared.runtime);
            let res = runc.create(
                &id,
                CreateOpts {
                    bundle: &bundle_dir,
                    pid_file: &pid_file,
                    console_socket: console_path.as_deref(),
                    no_pivot: cfg.runtime.no_pivot_root,
                    no_new_keyring: cfg.runtime.no_new_keyring,
                    stdio,
                },
            );
            if let Err(e) = res {
                log::warn!(
                    "msg=\"create failed; cleaning up\" id={id} error={q_error}",
                    q_error = quote(&e)
                );
                if let Err(de) = runc.delete(&id, true) {
                    if de.kind() != robust_runtime::ErrorKind::NotFound {
                        log::warn!(
                            "msg=\"delete after failed create failed\" id={id} error={q_error}",
                            q_error = quote(&de)
                        );
                    }
                }
                undo_mount("create");
                return Err(e.into());
            }
            prepared
        };
        let fail = |e: Error| {
            let _ = runc.delete(&id, true);
            undo_mount("after create");
            e
        };
        let io = prepared
            .finish(&paths, &id, cfg.timeouts.create)
            .map_err(fail)?;
        let pid = bundle::read_pid(&bundle_dir, "init.pid").ok_or_else(|| {
            fail(Error::Other(format!(
                "container {id}: runtime create left no valid init.pid"
            )))
        })?;

        let cgroup = match robust_cgroups::Cgroup::for_pid(pid as u32) {
            Ok(cg) => Some(cg),
            Err(e) => {
                log::warn!(
                    "msg=\"cannot find the container's cgroup; no OOM events or cgroup kill for it\" id={id} error={q_error}",
                    q_error = quote(&e)
                );
                None
            }
        };
        let kind = cfg.runtime_kind();
        // The proof every later kill through the cgroup is checked against
        // (docs/cleanup.md, the ownership rule). An app container of a
        // gVisor pod is in the sandbox's cgroup, never its own.
        let scope = robust_cleanup::owner::Scope::new(
            &bundle_dir,
            std::slice::from_ref(&runc.config().root),
        );
        let sees_own_cgroup = kind == RuntimeKind::Runc || owns;
        let mut owner = robust_cleanup::owner::OwnerRecord::observe(
            &id,
            pid,
            cgroup.as_ref().filter(|_| sees_own_cgroup),
            &scope,
        );
        if !sees_own_cgroup {
            owner.shared_init = true;
            owner.not_owned =
                Some("an app container of a gVisor pod lives in the sandbox's cgroup".into());
        } else if let Some(why) = &owner.not_owned {
            log::warn!(
                "msg=\"the container's cgroup is not its own alone; the shim will never kill through it\" id={id} why={}",
                robust_cleanup::logfmt::quote(why)
            );
        }
        if let Err(e) = owner.write(&bundle_dir) {
            log::warn!(
                "msg=\"cannot write the ownership record; the dead-shim delete will rely on the runtime alone\" id={id} error={}",
                robust_cleanup::logfmt::quote(&e)
            );
        }
        // With runsc the host pid is the sandbox's: only the container that
        // owns the sandbox watches its cgroup for OOM.
        let watch_oom = kind == RuntimeKind::Runc || owns;
        if let (Some(oom), Some(cg), true) = (&self.inner.oom, &cgroup, watch_oom) {
            if let Err(e) = oom.watch(&id, cg) {
                log::warn!(
                    "msg=\"cannot watch OOM\" id={id} error={q_error}",
                    q_error = quote(&e)
                );
            }
        }
        let init = Arc::new(Process::new("", paths.clone(), Vec::new()));
        init.lock()?.pid = pid;
        *init.io.lock().map_err(|_| Error::poisoned("io"))? = Some(io);
        let container = Arc::new(Container {
            id: id.clone(),
            bundle: bundle_dir.clone(),
            runc,
            config: cfg,
            init,
            execs: Mutex::new(HashMap::new()),
            rootfs,
            oom_published: Mutex::new(
                cgroup
                    .as_ref()
                    .and_then(|c| c.oom_kill_count())
                    .unwrap_or(0),
            ),
            cgroup,
            owner,
            own_pid_ns: spec.own_pid_ns,
            escalating: std::sync::atomic::AtomicBool::new(false),
            init_exit_held: Mutex::new(false),
            kind,
            owns_sandbox: owns,
        });
        self.inner
            .containers
            .lock()
            .map_err(|_| Error::poisoned("containers"))?
            .insert(id.clone(), container.clone());
        match kind {
            RuntimeKind::Runc => self.register_pid(pid, &id, ""),
            RuntimeKind::Runsc => {
                // The sandbox process is ours to reap; a container's own
                // exit is learned from `runsc wait`.
                if owns {
                    self.register_pid(pid, &id, "");
                }
                // `runsc wait` is started once the container runs: on a
                // created container it gives up after a few seconds.
            }
        }

        let mut m = ev::TaskCreate::new();
        m.container_id = id.clone();
        m.bundle = req.bundle.clone();
        m.rootfs = req.rootfs.clone();
        let mut tio = ev::TaskIO::new();
        tio.stdin = req.stdin.clone();
        tio.stdout = req.stdout.clone();
        tio.stderr = req.stderr.clone();
        tio.terminal = req.terminal;
        m.io = MessageField::some(tio);
        m.pid = pid as u32;
        self.inner.publisher.publish(events::task_create(&m));
        log::info!("msg=\"container created\" id={id} pid={pid}");

        let mut resp = api::CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    // ---- start / exec ------------------------------------------------

    pub fn do_start(&self, req: api::StartRequest) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        {
            let mut st = p.lock()?;
            if st.status != Status::Created || st.starting {
                return Err(Error::FailedPrecondition(format!(
                    "container {} exec {:?}: cannot start a process in state {:?}",
                    c.id, req.exec_id, st.status
                )));
            }
            st.starting = true;
        }
        let res = if req.exec_id.is_empty() {
            let r = c.runc.start(&c.id).map_err(Error::from).map(|_| p.pid());
            if r.is_ok() && c.kind == RuntimeKind::Runsc {
                self.runsc_wait(&c);
            }
            r
        } else {
            self.start_exec(&c, &p)
        };
        let mut st = p.lock()?;
        st.starting = false;
        let pid = match res {
            Ok(pid) => pid,
            Err(e) => {
                if st.exit_deferred {
                    st.exit_deferred = false;
                    self.publish_exit(&c.id, &p, &st);
                }
                if !req.exec_id.is_empty() {
                    // A failed exec start is over: nothing to wait for.
                    let _ = Process::set_exited(&mut st, 255, SystemTime::now());
                    drop(st);
                    p.notify_exit();
                }
                return Err(e);
            }
        };
        if st.exited_at.is_none() {
            Process::transition(&mut st, Status::Running)?;
        }
        if req.exec_id.is_empty() {
            let mut m = ev::TaskStart::new();
            m.container_id = c.id.clone();
            m.pid = pid as u32;
            self.inner.publisher.publish(events::task_start(&m));
        } else {
            let mut m = ev::TaskExecStarted::new();
            m.container_id = c.id.clone();
            m.exec_id = req.exec_id.clone();
            m.pid = pid as u32;
            self.inner.publisher.publish(events::task_exec_started(&m));
        }
        if st.exit_deferred {
            st.exit_deferred = false;
            self.publish_exit(&c.id, &p, &st);
        }
        let mut resp = api::StartResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn start_exec(&self, c: &Container, p: &Arc<Process>) -> Result<i32> {
        let eid = &p.exec_id;
        let spec_path = c.bundle.join(format!(".{eid}.process.json"));
        bundle::write_atomic(&c.bundle, &format!(".{eid}.process.json"), &p.spec).map_err(|e| {
            Error::Io(format!(
                "container {} exec {eid}: write process spec: {e}",
                c.id
            ))
        })?;
        let pid_file = c.pid_file(eid);
        let mut prepared = stdio::prepare(&p.stdio, &c.id, eid, c.config.timeouts.io_drain)?;
        let console_path = prepared.console.as_ref().map(|s| s.path().to_path_buf());
        let stdio = std::mem::take(&mut prepared.runtime);
        let opts = ExecOpts {
            process_json: &spec_path,
            pid_file: &pid_file,
            console_socket: console_path.as_deref(),
            stdio,
        };
        let res = c.runc.exec(&c.id, opts);
        let _ = std::fs::remove_file(&spec_path);
        res?;
        let io = prepared.finish(&p.stdio, &c.id, c.config.timeouts.exec)?;
        let pid = bundle::read_pid(&c.bundle, &format!("{eid}.pid")).ok_or_else(|| {
            Error::Other(format!(
                "container {} exec {eid}: runtime exec left no valid pid file",
                c.id
            ))
        })?;
        let _ = std::fs::remove_file(&pid_file);
        *p.io.lock().map_err(|_| Error::poisoned("io"))? = Some(io);
        p.lock()?.pid = pid;
        self.register_pid(pid, &c.id, eid);
        Ok(pid)
    }

    /// runsc: learn the container's exit with `runsc wait`, in its own
    /// thread for as long as the container lives.
    fn runsc_wait(&self, container: &Arc<Container>) {
        let svc = self.clone();
        let c = container.clone();
        let spawned = std::thread::Builder::new()
            .name("runsc-wait".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let status = loop {
                    match c.runc.wait(&c.id) {
                        Ok(code) => break robust_reaper::ExitStatus::Code(code as i32),
                        Err(e) => {
                            if c.init.lock().map(|s| s.exited_at.is_some()).unwrap_or(true) {
                                return;
                            }
                            // Still running by the runtime's account: wait again.
                            let running = matches!(
                                c.runc.state(&c.id).map(|s| s.status),
                                Ok(ref st) if st == "running" || st == "paused"
                            );
                            if running {
                                log::debug!(
                                    "msg=\"runsc wait returned early; waiting again\" id={} error={q_error}",
                                    c.id,
                                    q_error = quote(&e)
                                );
                                continue;
                            }
                            // The sandbox died with it: its exit status is gone.
                            log::warn!(
                                "msg=\"runsc wait failed; reporting exit 137\" id={} error={q_error}",
                                c.id,
                                q_error = quote(&e)
                            );
                            break robust_reaper::ExitStatus::Signal(libc::SIGKILL);
                        }
                    }
                };
                svc.deliver_exit(
                    &c.id,
                    "",
                    Exit {
                        pid: c.init.pid(),
                        status,
                        at: SystemTime::now(),
                    },
                );
            });
        if let Err(e) = spawned {
            log::error!(
                "msg=\"cannot start runsc wait thread\" id={} error={q_error}",
                container.id,
                q_error = quote(&e)
            );
        }
    }

    pub fn do_exec(&self, req: api::ExecProcessRequest) -> Result<()> {
        robust_config::ids::validate_exec_id(&req.exec_id)?;
        let c = self.container(&req.id)?;
        if c.init.status() == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {}: cannot exec in a stopped container",
                c.id
            )));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if spec.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "container {} exec {}: no process spec",
                c.id, req.exec_id
            )));
        }
        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        {
            let mut execs = c.execs.lock().map_err(|_| Error::poisoned("execs"))?;
            if execs.contains_key(&req.exec_id) {
                return Err(Error::AlreadyExists(format!(
                    "container {} exec {} already exists",
                    c.id, req.exec_id
                )));
            }
            execs.insert(
                req.exec_id.clone(),
                Arc::new(Process::new(&req.exec_id, paths, spec)),
            );
        }
        let mut m = ev::TaskExecAdded::new();
        m.container_id = c.id.clone();
        m.exec_id = req.exec_id.clone();
        self.inner.publisher.publish(events::task_exec_added(&m));
        Ok(())
    }

    // ---- state / signals ---------------------------------------------

    pub fn do_state(&self, req: api::StateRequest) -> Result<api::StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        self.check_gone(&c, &p);
        let st = p.lock()?;
        let mut r = api::StateResponse::new();
        r.id = if req.exec_id.is_empty() {
            c.id.clone()
        } else {
            req.exec_id.clone()
        };
        r.bundle = c.bundle.display().to_string();
        r.pid = st.pid as u32;
        r.status = match st.status {
            Status::Created => PbStatus::CREATED,
            Status::Running => PbStatus::RUNNING,
            Status::Paused => PbStatus::PAUSED,
            Status::Stopped => PbStatus::STOPPED,
        }
        .into();
        r.stdin = p.stdio.stdin.clone();
        r.stdout = p.stdio.stdout.clone();
        r.stderr = p.stdio.stderr.clone();
        r.terminal = p.stdio.terminal;
        r.exit_status = st.exit_code;
        if let Some(at) = st.exited_at {
            r.exited_at = events::timestamp(at);
        }
        r.exec_id = req.exec_id.clone();
        Ok(r)
    }

    /// Truth over cache: a process we believe alive whose pid no longer
    /// exists, and whose exit never reached us, is reported stopped (255)
    /// and its exit published, instead of answering RUNNING forever.
    fn check_gone(&self, c: &Container, p: &Arc<Process>) {
        let pid = match p.lock() {
            Ok(st) if st.exited_at.is_none() && st.pid > 0 && !st.starting => st.pid,
            _ => return,
        };
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            != Err(nix::errno::Errno::ESRCH)
        {
            return;
        }
        // The reaper may be delivering it right now.
        if p.wait_timeout(Duration::from_millis(500)).is_some() {
            return;
        }
        log::warn!(
            "msg=\"process is gone but its exit was never seen; reporting exit 255\" id={} exec_id={} pid={pid}",
            c.id,
            p.exec_id
        );
        if let Ok(mut st) = p.lock() {
            if Process::set_exited(&mut st, 255, SystemTime::now()) {
                self.publish_exit(&c.id, p, &st);
            }
        }
        p.notify_exit();
        p.finish_io();
        self.unregister_pid(pid);
    }

    pub fn do_kill(&self, req: api::KillRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let (pid, exited) = {
            let st = p.lock()?;
            (st.pid, st.exited_at.is_some())
        };
        if req.exec_id.is_empty() {
            if exited && !req.all {
                return Err(Error::NotFound(format!(
                    "container {}: process already finished",
                    c.id
                )));
            }
            // A runsc container that never started (its start failed) has no
            // process in the sandbox and no `runsc wait`: a SIGKILL ends it
            // at once, as a kill of a created runc container kills its init.
            let never_started = c.kind == RuntimeKind::Runsc
                && c.init.status() == Status::Created
                && !c.owns_sandbox;
            if never_started && req.signal == libc::SIGKILL as u32 {
                if let Err(e) = c.runc.kill(&c.id, req.signal, req.all) {
                    log::debug!(
                        "msg=\"runsc kill of a never-started container\" id={} error={q_error}",
                        c.id,
                        q_error = quote(&e)
                    );
                }
                if let Ok(mut st) = c.init.lock() {
                    if Process::set_exited(&mut st, 137, SystemTime::now()) {
                        self.publish_exit(&c.id, &c.init, &st);
                    }
                }
                c.init.notify_exit();
                c.init.finish_io();
                return Ok(());
            }
            return match self.signal_container(&c, req.signal, req.all) {
                Ok(()) => {
                    if req.signal == libc::SIGKILL as u32 {
                        self.watch_sigkill(&c);
                    }
                    Ok(())
                }
                Err(e) if e.kind() != robust_runtime::ErrorKind::Other => Err(Error::NotFound(
                    format!("container {}: process already finished: {e}", c.id),
                )),
                // A SIGKILL the runtime could not deliver (it hung or failed)
                // is delivered by us: the processes of the container's cgroup
                // when it is proven the container's alone, then the rest of
                // the escalation in the background.
                Err(e) if req.signal == libc::SIGKILL as u32 && c.cgroup.is_some() => {
                    let n = self.kill_cgroup(&c);
                    log::warn!(
                        "msg=\"runtime kill failed; killed the container's cgroup instead\" id={} pids={n} error={q_error}",
                        c.id,
                        q_error = quote(&e)
                    );
                    self.watch_sigkill(&c);
                    Ok(())
                }
                Err(e) => Err(e.into()),
            };
        }
        if exited || pid <= 0 {
            return Err(Error::NotFound(format!(
                "container {} exec {}: process already finished",
                c.id, req.exec_id
            )));
        }
        let sig = nix::sys::signal::Signal::try_from(req.signal as i32)
            .map_err(|_| Error::InvalidArgument(format!("invalid signal {}", req.signal)))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(|e| match e {
            nix::errno::Errno::ESRCH => Error::NotFound(format!(
                "container {} exec {}: process already finished",
                c.id, req.exec_id
            )),
            e => Error::Other(format!(
                "container {} exec {}: kill: {e}",
                c.id, req.exec_id
            )),
        })
    }

    pub fn do_delete(&self, req: api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        if !req.exec_id.is_empty() {
            let p = c.process(&req.exec_id)?;
            let st = p.lock()?;
            if st.status != Status::Stopped && st.status != Status::Created {
                return Err(Error::FailedPrecondition(format!(
                    "container {} exec {}: cannot delete a running process",
                    c.id, req.exec_id
                )));
            }
            let resp = delete_response(&st);
            drop(st);
            self.unregister_pid(p.pid());
            c.execs
                .lock()
                .map_err(|_| Error::poisoned("execs"))?
                .remove(&req.exec_id);
            return Ok(resp);
        }
        let status = c.init.status();
        if status == Status::Running || status == Status::Paused {
            return Err(Error::FailedPrecondition(format!(
                "container {}: cannot delete a running task; kill it first",
                c.id
            )));
        }
        match c.runc.delete(&c.id, status == Status::Created) {
            Ok(()) => {}
            Err(e) if e.kind() == robust_runtime::ErrorKind::NotFound => {}
            // runsc cannot force-delete a created or already-stopped
            // container ("cannot signal container in state created",
            // "sandbox is not running"): that means gone or retry plainly.
            Err(e) if e.kind() == robust_runtime::ErrorKind::NotRunning => {
                if let Err(pe) = c.runc.delete(&c.id, false) {
                    if pe.kind() == robust_runtime::ErrorKind::Other {
                        return Err(pe.into());
                    }
                }
            }
            // A hung runtime already used the whole deadline: retrying would
            // double it. The caller gets the deadline error and may retry.
            Err(e) if e.is_timeout() => return Err(e.into()),
            Err(e) => {
                // A stopped container that runc cannot delete plainly is
                // deleted by force; the error is only fatal if that fails.
                log::warn!(
                    "msg=\"runtime delete failed; forcing\" id={} error={q_error}",
                    c.id,
                    q_error = quote(&e)
                );
                if let Err(fe) = c.runc.delete(&c.id, true) {
                    if fe.kind() != robust_runtime::ErrorKind::NotFound {
                        return Err(fe.into());
                    }
                }
            }
        }
        if c.kind == RuntimeKind::Runsc {
            let root = &c.runc.config().root;
            robust_cleanup::runsc::kill_leftover_gofers(root, &c.id, &c.bundle);
            robust_cleanup::runsc::remove_orphan_locks(root, &c.id);
        }
        if let Some(r) = &c.rootfs {
            // An app container of a runsc pod: the pod's sandbox, which lives on,
            // may hold files of its rootfs (runsc 2024 keeps the overlay filestore
            // `.gvisor.filestore.<pod>` of a container whose start failed open
            // until the sandbox ends): waiting for it to let go cannot help.
            let sandbox = (c.kind == RuntimeKind::Runsc && !c.owns_sandbox)
                .then(|| bundle::spec_or_assumed(&c.bundle).sandbox_id)
                .flatten();
            let held_by_sandbox = |h: &[(i32, String)]| {
                let Some(sid) = &sandbox else {
                    return false;
                };
                let tree =
                    robust_cleanup::runsc::sandbox_tree(&c.runc.config().root, sid, c.init.pid());
                h.iter().all(|(p, _)| tree.contains(p))
            };
            let lasting: Option<mount::Lasting<'_>> = sandbox
                .is_some()
                .then_some(&held_by_sandbox as mount::Lasting<'_>);
            mount::unmount_all_lasting(r, c.config.timeouts.unmount, &c.id, lasting)
                .map_err(|e| Error::Io(format!("container {}: {e}", c.id)))?;
        }
        if let Some(oom) = &self.inner.oom {
            oom.unwatch(&c.id);
        }
        let st = c.init.lock()?;
        let resp = delete_response(&st);
        drop(st);
        self.unregister_pid(c.init.pid());
        self.inner
            .containers
            .lock()
            .map_err(|_| Error::poisoned("containers"))?
            .remove(&c.id);
        let mut m = ev::TaskDelete::new();
        m.container_id = c.id.clone();
        m.id = c.id.clone();
        m.pid = resp.pid;
        m.exit_status = resp.exit_status;
        m.exited_at = resp.exited_at.clone();
        self.inner.publisher.publish(events::task_delete(&m));
        log::info!("msg=\"container deleted\" id={}", c.id);
        Ok(resp)
    }

    pub fn do_pids(&self, req: api::PidsRequest) -> Result<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let stopped = c.init.status() == Status::Stopped;
        let mut pids = match c.runc.ps(&c.id) {
            Ok(p) => p,
            Err(_) if stopped => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        // A stopped init whose task containerd has not deleted yet is still
        // listed. containerd 1.7+ reloading its shims after a restart takes a
        // shim that lists no process for a leaked one and deletes it without
        // an exit event (ShimManager.loadShim): CRI would then report exit
        // 255 "Unknown" instead of the status we hold (docs/events.md).
        let init_pid = c.init.pid();
        if pids.is_empty() && stopped && init_pid > 0 {
            pids.push(init_pid);
        }
        let execs: HashMap<i32, String> = c
            .execs
            .lock()
            .map_err(|_| Error::poisoned("execs"))?
            .values()
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        let mut resp = api::PidsResponse::new();
        for pid in pids {
            let mut info = ProcessInfo::new();
            info.pid = pid as u32;
            if let Some(eid) = execs.get(&pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = eid.clone();
                let mut any = Any::new();
                any.type_url = "containerd.runc.v1.ProcessDetails".into();
                any.value = d.write_to_bytes().unwrap_or_default();
                info.info = MessageField::some(any);
            }
            resp.processes.push(info);
        }
        Ok(resp)
    }

    pub fn do_pause(&self, req: api::PauseRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        c.runc.pause(&c.id)?;
        {
            let mut st = c.init.lock()?;
            Process::transition(&mut st, Status::Paused)?;
        }
        let mut m = ev::TaskPaused::new();
        m.container_id = c.id.clone();
        self.inner.publisher.publish(events::task_paused(&m));
        Ok(())
    }

    pub fn do_resume(&self, req: api::ResumeRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        c.runc.resume(&c.id)?;
        {
            let mut st = c.init.lock()?;
            if st.status == Status::Paused {
                Process::transition(&mut st, Status::Running)?;
            }
        }
        let mut m = ev::TaskResumed::new();
        m.container_id = c.id.clone();
        self.inner.publisher.publish(events::task_resumed(&m));
        Ok(())
    }

    pub fn do_update(&self, req: api::UpdateTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let res = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if res.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "container {}: no resources to update",
                c.id
            )));
        }
        serde_json::from_slice::<serde_json::Value>(&res).map_err(|e| {
            Error::InvalidArgument(format!("container {}: resources are not JSON: {e}", c.id))
        })?;
        c.runc.update(&c.id, &res)?;
        Ok(())
    }

    pub fn do_wait(&self, req: api::WaitRequest) -> Result<api::WaitResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        drop(c);
        let (code, at) = p.wait()?;
        let mut r = api::WaitResponse::new();
        r.exit_status = code;
        r.exited_at = events::timestamp(at);
        Ok(r)
    }

    pub fn do_stats(&self, req: api::StatsRequest) -> Result<api::StatsResponse> {
        let c = self.container(&req.id)?;
        if c.kind == RuntimeKind::Runsc {
            // Every container of a gVisor pod is in the sandbox's cgroup:
            // only runsc can tell their usage apart.
            let s = c.runc.stats(&c.id)?;
            let m = robust_cgroups::Metrics::V1(crate::runsc_stats::to_v1_metrics(&s));
            let mut r = api::StatsResponse::new();
            r.stats = MessageField::some(m.to_any());
            return Ok(r);
        }
        let pid = c.init.pid();
        let cg = robust_cgroups::Cgroup::for_pid(pid as u32)
            .map_err(|e| Error::NotFound(format!("container {}: cgroup: {e}", c.id)))?;
        let metrics = cg
            .metrics()
            .map_err(|e| Error::Other(format!("container {}: stats: {e}", c.id)))?;
        let mut r = api::StatsResponse::new();
        r.stats = MessageField::some(metrics.to_any());
        Ok(r)
    }

    pub fn do_close_io(&self, req: api::CloseIORequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if req.stdin {
            if let Some(io) = p.io.lock().map_err(|_| Error::poisoned("io"))?.as_ref() {
                io.close_stdin();
            }
        }
        Ok(())
    }

    pub fn do_resize(&self, req: api::ResizePtyRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        // As containerd's runc shim answers: an exec that exited cannot be
        // resized; any other process without a terminal (it never had one,
        // or it was released at the exit) is resized as a no-op, since
        // clients resize right after start and race a quick exit.
        if !req.exec_id.is_empty() && p.status() == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {} exec {}: cannot resize a stopped process",
                c.id, req.exec_id
            )));
        }
        let guard = p.io.lock().map_err(|_| Error::poisoned("io"))?;
        if let Some(io) = guard.as_ref() {
            io.resize(req.width, req.height)?;
        }
        Ok(())
    }

    pub fn do_connect(&self, req: api::ConnectRequest) -> Result<api::ConnectResponse> {
        let mut r = api::ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.version = env!("CARGO_PKG_VERSION").to_string();
        if let Ok(c) = self.container(&req.id) {
            r.task_pid = c.init.pid() as u32;
        }
        Ok(r)
    }

    pub fn do_shutdown(&self, req: api::ShutdownRequest) -> Result<()> {
        if req.now {
            // containerd wants the daemon gone now: stop what it still runs.
            self.stop_all();
        } else if self.container_count() > 0 {
            return Ok(());
        }
        if let Ok(tx) = self.inner.shutdown.lock() {
            let _ = tx.send(());
        }
        Ok(())
    }

    /// Bundle directories of the containers still held (for shutdown).
    pub fn bundles(&self) -> Vec<(String, PathBuf)> {
        self.inner
            .containers
            .lock()
            .map(|m| {
                m.values()
                    .map(|c| (c.id.clone(), c.bundle.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn delete_response(st: &crate::process::State) -> api::DeleteResponse {
    let mut r = api::DeleteResponse::new();
    r.pid = st.pid.max(0) as u32;
    r.exit_status = st.exit_code;
    r.exited_at = events::timestamp(st.exited_at.unwrap_or_else(SystemTime::now));
    r
}

/// Log one RPC: method, container, exec, outcome and time taken.
fn traced<T>(
    method: &str,
    id: &str,
    exec_id: &str,
    f: impl FnOnce() -> Result<T>,
) -> ttrpc::Result<T> {
    let started = Instant::now();
    // A panic while serving one request fails that request (INTERNAL) and
    // leaves the worker, the daemon and the other containers serving.
    let res = crate::error::contain(f).unwrap_or_else(|why| {
        log::error!(
            "msg=\"shim panicked while serving a request; the daemon keeps serving\" method={method} id={id} exec_id={exec_id} panic={q_panic}",
            q_panic = quote(&why)
        );
        Err(Error::Internal(format!(
            "{method} of container {id}: the shim failed internally: {why}"
        )))
    });
    match &res {
        Ok(_) => log::debug!(
            "msg=\"rpc\" method={method} id={id} exec_id={exec_id} took={:?}",
            started.elapsed()
        ),
        // "No such container or process" answers a question (containerd
        // asks about a task it is not sure of; `ctr task ls` races a
        // create): an answer, not an incident for an operator.
        Err(e) => log::log!(
            if matches!(e, Error::NotFound(_)) {
                log::Level::Info
            } else {
                log::Level::Warn
            },
            "msg=\"rpc failed\" method={method} id={id} exec_id={exec_id} code={:?} error={q_error}",
            e.code(),
            q_error = quote(e)
        ),
    }
    res.map_err(Into::into)
}

impl containerd_shim_protos::Task for Service {
    fn state(&self, _: &TtrpcContext, r: api::StateRequest) -> ttrpc::Result<api::StateResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("State", &id, &eid, || self.do_state(r))
    }
    fn create(
        &self,
        _: &TtrpcContext,
        r: api::CreateTaskRequest,
    ) -> ttrpc::Result<api::CreateTaskResponse> {
        let id = r.id.clone();
        traced("Create", &id, "", || self.do_create(r))
    }
    fn start(&self, _: &TtrpcContext, r: api::StartRequest) -> ttrpc::Result<api::StartResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Start", &id, &eid, || self.do_start(r))
    }
    fn delete(
        &self,
        _: &TtrpcContext,
        r: api::DeleteRequest,
    ) -> ttrpc::Result<api::DeleteResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Delete", &id, &eid, || self.do_delete(r))
    }
    fn pids(&self, _: &TtrpcContext, r: api::PidsRequest) -> ttrpc::Result<api::PidsResponse> {
        let id = r.id.clone();
        traced("Pids", &id, "", || self.do_pids(r))
    }
    fn pause(&self, _: &TtrpcContext, r: api::PauseRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Pause", &id, "", || self.do_pause(r).map(|_| Empty::new()))
    }
    fn resume(&self, _: &TtrpcContext, r: api::ResumeRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Resume", &id, "", || {
            self.do_resume(r).map(|_| Empty::new())
        })
    }
    fn checkpoint(&self, _: &TtrpcContext, r: api::CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        traced("Checkpoint", &r.id, "", || {
            Err(Error::Unimplemented(format!(
                "container {}: checkpoint is not supported by containerd-shim-robust-v2",
                r.id
            )))
        })
    }
    fn kill(&self, _: &TtrpcContext, r: api::KillRequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Kill", &id, &eid, || self.do_kill(r).map(|_| Empty::new()))
    }
    fn exec(&self, _: &TtrpcContext, r: api::ExecProcessRequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Exec", &id, &eid, || self.do_exec(r).map(|_| Empty::new()))
    }
    fn resize_pty(&self, _: &TtrpcContext, r: api::ResizePtyRequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("ResizePty", &id, &eid, || {
            self.do_resize(r).map(|_| Empty::new())
        })
    }
    fn close_io(&self, _: &TtrpcContext, r: api::CloseIORequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("CloseIO", &id, &eid, || {
            self.do_close_io(r).map(|_| Empty::new())
        })
    }
    fn update(&self, _: &TtrpcContext, r: api::UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Update", &id, "", || {
            self.do_update(r).map(|_| Empty::new())
        })
    }
    fn wait(&self, _: &TtrpcContext, r: api::WaitRequest) -> ttrpc::Result<api::WaitResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Wait", &id, &eid, || self.do_wait(r))
    }
    fn stats(&self, _: &TtrpcContext, r: api::StatsRequest) -> ttrpc::Result<api::StatsResponse> {
        let id = r.id.clone();
        traced("Stats", &id, "", || self.do_stats(r))
    }
    fn connect(
        &self,
        _: &TtrpcContext,
        r: api::ConnectRequest,
    ) -> ttrpc::Result<api::ConnectResponse> {
        let id = r.id.clone();
        traced("Connect", &id, "", || self.do_connect(r))
    }
    fn shutdown(&self, _: &TtrpcContext, r: api::ShutdownRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Shutdown", &id, "", || {
            self.do_shutdown(r).map(|_| Empty::new())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_request_fails_alone_with_internal() {
        let r: ttrpc::Result<()> = traced("State", "c1", "", || panic!("index out of bounds"));
        match r {
            Err(ttrpc::Error::RpcStatus(st)) => {
                assert_eq!(st.code(), ttrpc::Code::INTERNAL);
                assert!(
                    st.message().contains("State of container c1"),
                    "{}",
                    st.message()
                );
                assert!(
                    st.message().contains("index out of bounds"),
                    "{}",
                    st.message()
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // the same thread serves the next request
        let ok: ttrpc::Result<u32> = traced("State", "c1", "", || Ok(7));
        assert_eq!(ok.unwrap(), 7);
    }
}
