//! The shim daemon's service: the containers it runs, the threads that
//! deliver exits and OOMs, and the locks between them. Each Task verb has
//! its own module (`create`, `start`, `exec`, `kill`, `delete`, `state`,
//! `rest`); `exits` applies the ordering rules of `order`; `task`
//! answers containerd's ttrpc calls.
//!
//! # Locks
//!
//! Always taken in this order, never the other way round; none is held
//! across a runtime call:
//! 1. `Inner::containers` (the map, and the ids being created): held
//!    only to look up, reserve, insert or remove; nothing is taken under
//!    it.
//! 2. A container's init [`Process`](crate::process::Process) state: its
//!    phase and OOM count, with which every event of the container is
//!    published, so that they leave in the order the rules give.
//! 3. The container's `execs` map (under 2: does an exec still run?).
//! 4. An exec's process state (under 3, or alone). An exec's exit takes 4,
//!    lets it go, then takes 3 and 4 to see whether execs still run, lets
//!    them go, then takes 2 to release the init's held exit.
//! 5. The exit router (`Inner::router`): alone.
//! 6. A process's `io`: alone (a leaf).

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim_protos::events::task as ev;
use robust_cgroups::{Cgroup, CgroupError};
use robust_cleanup::logfmt::quote;
use robust_config::Config;
use robust_reaper::{Exit, Reaper};
use robust_runtime::{ContainerRuntime, RuntimeSpec};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events::{self, Event, Publisher};
use crate::router::ExitRouter;

/// How the service finds the cgroup of a host pid.
pub type CgroupOf = dyn Fn(i32) -> std::result::Result<Cgroup, CgroupError> + Send + Sync + 'static;

/// How the service turns a container's config into its runtime.
pub type OpenRuntime = dyn Fn(&Config) -> Result<Arc<dyn ContainerRuntime>> + Send + Sync + 'static;

/// The shim daemon's service.
#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<Inner>,
}

/// The containers, and the ids whose create is under way (reserved at the
/// start of a create, so that a second create of the same id fails at
/// once and never touches the first one's container).
#[derive(Default)]
pub(crate) struct Containers {
    pub(crate) map: HashMap<String, Arc<Container>>,
    creating: HashSet<String>,
}

pub(crate) struct Inner {
    pub(crate) namespace: String,
    pub(crate) reaper: Reaper,
    pub(crate) publisher: Publisher,
    pub(crate) containers: Mutex<Containers>,
    pub(crate) router: Mutex<ExitRouter>,
    pub(crate) oom: Option<robust_cgroups::OomWatcher>,
    /// The longest `timeouts.shutdown` of the containers served so far.
    pub(crate) shutdown_bound: Mutex<Duration>,
    pub(crate) shutdown: Mutex<Sender<()>>,
    pub(crate) open: Box<OpenRuntime>,
    /// The cgroup of a host pid (a seam for tests).
    pub(crate) cgroup_of: Box<CgroupOf>,
}

/// An id reserved by a create under way; released when dropped unless
/// the create committed its container.
pub(crate) struct Reservation {
    svc: Service,
    id: String,
    committed: bool,
}

impl Reservation {
    /// The container exists: from now on it is found by its id.
    pub(crate) fn commit(mut self, c: Arc<Container>) -> Result<()> {
        let mut all = self.svc.containers()?;
        all.creating.remove(&self.id);
        all.map.insert(self.id.clone(), c);
        self.committed = true;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            if let Ok(mut all) = self.svc.inner.containers.lock() {
                all.creating.remove(&self.id);
            }
        }
    }
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
        let (ns, r) = (namespace.to_string(), reaper.clone());
        let open = move |cfg: &Config| -> Result<Arc<dyn ContainerRuntime>> {
            Ok(RuntimeSpec::for_namespace(cfg, &ns)?.open(r.clone()))
        };
        Service::with(
            namespace,
            reaper,
            exits,
            publisher,
            shutdown,
            Box::new(open),
            Box::new(|pid| Cgroup::for_pid(pid as u32)),
        )
    }

    /// [`Service::new`] with the runtime and the cgroups given (tests).
    pub(crate) fn with(
        namespace: &str,
        reaper: Reaper,
        exits: Receiver<Exit>,
        publisher: Publisher,
        shutdown: Sender<()>,
        open: Box<OpenRuntime>,
        cgroup_of: Box<CgroupOf>,
    ) -> Service {
        let (oom_tx, oom_rx) = std::sync::mpsc::channel::<String>();
        let oom = match crate::event_loop::watch_ooms(oom_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("msg=\"OOM events unavailable\" error={}", quote(&e));
                None
            }
        };
        let svc = Service {
            inner: Arc::new(Inner {
                namespace: namespace.to_string(),
                reaper,
                publisher,
                containers: Mutex::new(Containers::default()),
                router: Mutex::new(ExitRouter::default()),
                oom,
                shutdown_bound: Mutex::new(Config::default().timeouts.shutdown),
                shutdown: Mutex::new(shutdown),
                open,
                cgroup_of,
            }),
        };
        svc.spawn_exits_thread(exits);
        svc.spawn_oom_thread(oom_rx);
        svc
    }

    fn spawn_exits_thread(&self, exits: Receiver<Exit>) {
        let s = self.clone();
        let _ = std::thread::Builder::new()
            .name("exits".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                for exit in exits {
                    // One exit that cannot be handled must not stop the
                    // delivery of every later one.
                    if let Err(why) = crate::error::contain(|| s.on_exit(exit)) {
                        log::error!(
                            "msg=\"shim panicked handling an exit; continuing\" pid={} panic={}",
                            exit.pid,
                            quote(&why)
                        );
                    }
                }
            });
    }

    fn spawn_oom_thread(&self, oom_rx: Receiver<String>) {
        let s = self.clone();
        let _ = std::thread::Builder::new()
            .name("oom".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                for id in oom_rx {
                    log::info!("msg=\"container OOM\" id={id}");
                    let handled = crate::error::contain(|| match s.container(&id) {
                        Ok(c) => s.oom_watched(&c),
                        Err(_) => {
                            let mut m = ev::TaskOOM::new();
                            m.container_id = id.clone();
                            s.inner.publisher.publish(events::task_oom(&m));
                        }
                    });
                    if let Err(why) = handled {
                        log::error!(
                            "msg=\"shim panicked handling an OOM; continuing\" id={id} panic={}",
                            quote(&why)
                        );
                    }
                }
            });
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

    pub(crate) fn containers(&self) -> Result<MutexGuard<'_, Containers>> {
        self.inner
            .containers
            .lock()
            .map_err(|_| Error::poisoned("containers"))
    }

    pub fn container_count(&self) -> usize {
        self.containers().map(|c| c.map.len()).unwrap_or(0)
    }

    pub(crate) fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers()?
            .map
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id} not found")))
    }

    /// Every container, for the stops that take them all down.
    pub(crate) fn all_containers(&self) -> Vec<Arc<Container>> {
        self.containers()
            .map(|m| m.map.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Reserve `id` for a create: `AlreadyExists` when a container of that
    /// id exists or is being created.
    pub(crate) fn reserve(&self, id: &str) -> Result<Reservation> {
        let mut all = self.containers()?;
        if all.map.contains_key(id) || !all.creating.insert(id.to_string()) {
            return Err(Error::AlreadyExists(format!(
                "container {id} already exists"
            )));
        }
        Ok(Reservation {
            svc: self.clone(),
            id: id.to_string(),
            committed: false,
        })
    }

    /// Forget a container (its task is deleted).
    pub(crate) fn forget(&self, c: &Container) {
        if let Some(oom) = &self.inner.oom {
            oom.unwatch(&c.id);
        }
        self.unregister_pid(c.init.pid());
        if let Ok(mut all) = self.containers() {
            all.map.remove(&c.id);
        }
    }

    /// Publish a container's event, retried for its own `timeouts.publish`
    /// (exits and OOMs until delivered).
    pub(crate) fn publish(&self, cfg: &Config, e: Event) {
        self.inner.publisher.publish(e.within(cfg.timeouts.publish));
    }

    /// Bundle directories of the containers still held (for shutdown).
    pub fn bundles(&self) -> Vec<(String, std::path::PathBuf)> {
        self.all_containers()
            .iter()
            .map(|c| (c.id.clone(), c.bundle.clone()))
            .collect()
    }

    // ---- the exit router -------------------------------------------------

    pub(crate) fn on_exit(&self, exit: Exit) {
        let owner = match self.inner.router.lock() {
            Ok(mut r) => r.route(exit),
            Err(_) => return,
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
    pub(crate) fn register_pid(&self, pid: i32, cid: &str, eid: &str) {
        let early = match self.inner.router.lock() {
            Ok(mut r) => r.register(pid, (cid.to_string(), eid.to_string())),
            Err(_) => return,
        };
        if let Some(e) = early {
            self.deliver_exit(cid, eid, e);
        }
    }

    pub(crate) fn unregister_pid(&self, pid: i32) {
        if let Ok(mut r) = self.inner.router.lock() {
            r.unregister(pid);
        }
    }
}
