//! `Create`: the container's id is reserved first (a second create of the
//! same id fails at once and never touches this one's container), then
//! its bundle files, rootfs, stdio and the runtime's create, the record of
//! what the shim saw (`robust-owner.json`), and the TaskCreate event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim_protos::api;
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use robust_bundle as bundle;
use robust_cleanup::logfmt::quote;
use robust_cleanup::mount;
use robust_config::Config;
use robust_runtime::{ContainerRuntime, CreateOpts, Placement, SpecEdit};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events;
use crate::process::Process;
use crate::stdio::{self, Io, StdioPaths};
use crate::Service;

/// What a create set up so far, undone if a later step fails.
struct Setup {
    id: String,
    bundle: PathBuf,
    cfg: Config,
    runtime: Arc<dyn ContainerRuntime>,
    placement: Placement,
    rootfs: Option<PathBuf>,
    /// The runtime created the container.
    created: bool,
}

/// A failed step, and what to say of it when undoing the rest.
type Failed = (Error, &'static str);

impl Setup {
    /// Take back what was set up: the runtime's container, the rootfs.
    fn undo(&self, why: &str) {
        let id = &self.id;
        if self.created {
            if let Err(e) = self.runtime.delete(id, true) {
                if e.kind() != robust_runtime::ErrorKind::NotFound {
                    log::warn!(
                        "msg=\"delete after failed create failed\" id={id} error={}",
                        quote(&e)
                    );
                }
            }
        }
        if let Some(r) = &self.rootfs {
            if let Err(e) = mount::unmount_all(r, self.cfg.timeouts.unmount, id) {
                log::warn!(
                    "msg=\"unmount after failed create failed\" id={id} why={} error={}",
                    quote(why),
                    quote(&e)
                );
            }
        }
    }
}

impl Service {
    fn config_for(&self, options: &MessageField<Any>) -> Result<Config> {
        match options.as_ref() {
            Some(any) if !any.type_url.is_empty() => Ok(robust_config::options::config_from_any(
                &any.type_url,
                &any.value,
            )?),
            _ => Ok(Config::default()),
        }
    }

    pub fn do_create(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        let id = req.id.clone();
        robust_config::ids::validate_container_id(&id)?;
        let reservation = self.reserve(&id)?;
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
        let cfg = self.config_for(&req.options)?;
        let runtime = (self.inner.open)(&cfg)?;
        let spec = bundle::spec_or_assumed(&bundle_dir);
        let placement = runtime.placement(Some(spec.pod_app));
        // The host pid of the pod's sandbox, when this daemon runs it.
        let sandbox_pid = spec
            .sandbox_id
            .as_deref()
            .and_then(|sid| self.container(sid).ok())
            .map(|sb| sb.init.pid())
            .unwrap_or(0);
        let edits = runtime.spec_edits(placement, sandbox_pid);
        apply_spec_edits(&bundle_dir, &id, &edits)?;
        if let Ok(mut b) = self.inner.shutdown_bound.lock() {
            *b = (*b).max(cfg.timeouts.shutdown);
        }
        write_cleanup_files(&bundle_dir, &id, &cfg)?;
        let mut setup = Setup {
            id: id.clone(),
            bundle: bundle_dir,
            cfg,
            runtime,
            placement,
            rootfs: None,
            created: false,
        };
        let container = match self.make(&mut setup, &req, spec, placement) {
            Ok(c) => Arc::new(c),
            Err((e, why)) => {
                setup.undo(why);
                return Err(e);
            }
        };
        let pid = container.init.pid();
        if let Err(e) = reservation.commit(container.clone()) {
            setup.undo("after create");
            return Err(e);
        }
        if container.exit_source.reaped {
            self.register_pid(pid, &id, "");
        }
        // An exit learned from the runtime's wait is watched once the
        // container runs (`start`).
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
        self.publish(&container.config, events::task_create(&m));
        log::info!("msg=\"container created\" id={id} pid={pid}");
        let mut resp = api::CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    /// The rootfs, the stdio, the runtime's create, and the container with
    /// what the shim saw of it: its cgroup, the ownership record, the OOM
    /// watch.
    fn make(
        &self,
        setup: &mut Setup,
        req: &api::CreateTaskRequest,
        spec: bundle::SpecInfo,
        placement: Placement,
    ) -> std::result::Result<Container, Failed> {
        setup.rootfs = mount_rootfs(req, &setup.bundle, &setup.id).map_err(|e| (e, "mount"))?;
        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let (io, pid) = create_in_runtime(setup, &paths)?;
        let id = setup.id.as_str();
        let cgroup = match (self.inner.cgroup_of)(pid) {
            Ok(cg) => Some(cg),
            Err(e) => {
                log::warn!(
                    "msg=\"cannot find the container's cgroup; no OOM events or cgroup kill for it\" id={id} error={}",
                    quote(&e)
                );
                None
            }
        };
        let owner = observe_owner(setup, pid, cgroup.as_ref(), placement);
        // Only a cgroup of the container's own is watched for OOM.
        if let (Some(oom), Some(cg), true) = (&self.inner.oom, &cgroup, placement.is_own()) {
            if let Err(e) = oom.watch(id, cg) {
                log::warn!("msg=\"cannot watch OOM\" id={id} error={}", quote(&e));
            }
        }
        let init = Process::new("", paths, Vec::new());
        {
            let mut st = init.lock().map_err(|e| (e, "after create"))?;
            st.pid = pid;
            st.oom_seen = cgroup
                .as_ref()
                .and_then(|c| c.oom_kill_count())
                .unwrap_or(0);
        }
        *init
            .io
            .lock()
            .map_err(|_| (Error::poisoned("io"), "after create"))? = Some(io);
        Ok(Container {
            id: setup.id.clone(),
            bundle: setup.bundle.clone(),
            runtime: setup.runtime.clone(),
            config: setup.cfg.clone(),
            init: Arc::new(init),
            execs: Mutex::new(HashMap::new()),
            rootfs: setup.rootfs.clone(),
            cgroup,
            owner,
            own_pid_ns: spec.own_pid_ns,
            placement,
            exit_source: setup.runtime.exit_source(placement),
            pod_oom_kills: self.pod_oom_counter(placement, spec.sandbox_id.as_deref()),
            pod_sandbox: spec.sandbox_id,
        })
    }
}

impl Service {
    /// The OOM-kill count a new container shares: a container of a pod
    /// sandbox shares its sandbox container's (when this daemon runs it);
    /// any other container has its own.
    fn pod_oom_counter(
        &self,
        placement: Placement,
        sandbox_id: Option<&str>,
    ) -> Arc<std::sync::atomic::AtomicU64> {
        if !placement.is_own() {
            if let Some(sb) = sandbox_id.and_then(|sid| self.container(sid).ok()) {
                return sb.pod_oom_kills.clone();
            }
        }
        Arc::default()
    }
}

/// The files cleanup relies on, written before anything can go wrong.
fn write_cleanup_files(bundle_dir: &Path, id: &str, cfg: &Config) -> Result<()> {
    bundle::write_atomic(bundle_dir, "options.json", cfg.to_options_json().as_bytes())
        .map_err(|e| Error::Io(format!("container {id}: write options.json: {e}")))?;
    bundle::write_atomic(bundle_dir, "runtime", cfg.runtime.binary.as_bytes())
        .map_err(|e| Error::Io(format!("container {id}: write runtime: {e}")))
}

/// Mount containerd's rootfs list on `<bundle>/rootfs`, if it sent one.
fn mount_rootfs(
    req: &api::CreateTaskRequest,
    bundle_dir: &Path,
    id: &str,
) -> Result<Option<PathBuf>> {
    if req.rootfs.is_empty() {
        return Ok(None);
    }
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
    Ok(Some(target))
}

/// The runtime's create with the container's stdio; then its terminal, if
/// any, and the init's pid.
fn create_in_runtime(
    setup: &mut Setup,
    paths: &StdioPaths,
) -> std::result::Result<(Io, i32), Failed> {
    let id = setup.id.as_str();
    let cfg = &setup.cfg;
    let mut prepared =
        stdio::prepare(paths, id, "", cfg.timeouts.io_drain).map_err(|e| (e, "stdio"))?;
    if setup.runtime.stdio_at_start(setup.placement) {
        prepared.keep_for_start().map_err(|e| (e, "stdio"))?;
    }
    let pid_file = setup.bundle.join("init.pid");
    let console_path = prepared.console.as_ref().map(|c| c.path().to_path_buf());
    let res = setup.runtime.create(
        id,
        CreateOpts {
            bundle: &setup.bundle,
            pid_file: &pid_file,
            console_socket: console_path.as_deref(),
            no_pivot: cfg.runtime.no_pivot_root,
            no_new_keyring: cfg.runtime.no_new_keyring,
            stdio: std::mem::take(&mut prepared.runtime),
        },
    );
    // A failed create may still have left the container in the runtime.
    setup.created = true;
    if let Err(e) = res {
        log::warn!(
            "msg=\"create failed; cleaning up\" id={id} error={}",
            quote(&e)
        );
        return Err((e.into(), "create"));
    }
    let io = prepared
        .finish(paths, id, cfg.timeouts.create)
        .map_err(|e| (e, "after create"))?;
    let pid = bundle::read_pid(&setup.bundle, "init.pid").ok_or_else(|| {
        (
            Error::Other(format!(
                "container {id}: runtime create left no valid init.pid"
            )),
            "after create",
        )
    })?;
    Ok((io, pid))
}

/// The proof every later kill through the cgroup is checked against
/// (docs/cleanup.md, the ownership rule). A container in its pod's
/// sandbox is in the sandbox's cgroup, never its own.
fn observe_owner(
    setup: &Setup,
    pid: i32,
    cgroup: Option<&robust_cgroups::Cgroup>,
    placement: Placement,
) -> robust_cleanup::owner::OwnerRecord {
    let id = setup.id.as_str();
    let root = setup.runtime.root().to_path_buf();
    let scope = robust_cleanup::owner::Scope::new(&setup.bundle, std::slice::from_ref(&root));
    let own = placement.is_own();
    let mut owner =
        robust_cleanup::owner::OwnerRecord::observe(id, pid, cgroup.filter(|_| own), &scope);
    if !own {
        owner.shared_init = true;
        owner.not_owned = Some("a container of a pod sandbox lives in the sandbox's cgroup".into());
    } else if let Some(why) = &owner.not_owned {
        log::warn!(
            "msg=\"the container's cgroup is not its own alone; the shim will never kill through it\" id={id} why={}",
            quote(why)
        );
    }
    if let Err(e) = owner.write(&setup.bundle) {
        log::warn!(
            "msg=\"cannot write the ownership record; the dead-shim delete will rely on the runtime alone\" id={id} error={}",
            quote(&e)
        );
    }
    owner
}

/// Apply the runtime family's changes to the bundle's `config.json`.
fn apply_spec_edits(bundle_dir: &Path, id: &str, edits: &[SpecEdit]) -> Result<()> {
    if edits.is_empty() {
        return Ok(());
    }
    let name = "config.json";
    let raw = match bundle::read_file(bundle_dir, name) {
        bundle::FileRead::Bytes(b) => b,
        bundle::FileRead::Missing => {
            return Err(Error::InvalidArgument(format!(
                "container {id}: the bundle has no {name}"
            )))
        }
        bundle::FileRead::Unusable(why) => {
            return Err(Error::InvalidArgument(format!(
                "container {id}: {name} {why}"
            )))
        }
    };
    let mut spec: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::InvalidArgument(format!("container {id}: {name}: {e}")))?;
    let mut changed = false;
    for edit in edits {
        let SpecEdit::DropNamespace { kind, path, why } = edit;
        let Some(namespaces) = spec
            .pointer_mut("/linux/namespaces")
            .and_then(|n| n.as_array_mut())
        else {
            continue;
        };
        let before = namespaces.len();
        namespaces.retain(|n| {
            !(n.get("type").and_then(|t| t.as_str()) == Some(kind)
                && n.get("path").and_then(|p| p.as_str()) == Some(path.as_str()))
        });
        if namespaces.len() != before {
            changed = true;
            log::info!("msg={} id={id} path={}", quote(why), quote(path));
        }
    }
    if !changed {
        return Ok(());
    }
    let out = serde_json::to_vec(&spec)
        .map_err(|e| Error::Other(format!("container {id}: encode {name}: {e}")))?;
    bundle::write_atomic(bundle_dir, name, &out)
        .map_err(|e| Error::Io(format!("container {id}: write {name}: {e}")))
}
