//! The service driven by the fake runtime (`robust_runtime::fake`), as a
//! normal user: no root, no containerd, no runc. The fake's processes are
//! real children of the test process, reaped by one reaper shared by every
//! test (two reapers in one process would reap each other's children) and
//! handed to each test's service; the events the service publishes are
//! captured in order.

mod create;
mod ordering;
mod pod;
mod shutdown;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use containerd_shim_protos::api;
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::Message;
use robust_cgroups::{Cgroup, CgroupError};
use robust_reaper::{Exit, Reaper};
use robust_runtime::fake::FakeRuntime;
use robust_runtime::ContainerRuntime;

use crate::events::{Event, Publisher};
use crate::Service;

/// The test process's reaper; every reaped exit goes to every service.
fn shared_reaper() -> &'static (Reaper, Mutex<Vec<Sender<Exit>>>) {
    static R: OnceLock<(Reaper, Mutex<Vec<Sender<Exit>>>)> = OnceLock::new();
    R.get_or_init(|| {
        let (reaper, sink) = Reaper::start().expect("reaper");
        std::thread::spawn(move || {
            for exit in sink {
                let Some((_, subscribers)) = R.get() else {
                    continue;
                };
                if let Ok(mut subs) = subscribers.lock() {
                    subs.retain(|s| s.send(exit).is_ok());
                }
            }
        });
        (reaper, Mutex::new(Vec::new()))
    })
}

/// An event as published: its topic, container, and for an exit the
/// process's id and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub topic: &'static str,
    pub container: String,
    /// `/tasks/exit`: the container id (its init) or the exec id.
    pub id: String,
    pub status: u32,
}

fn seen(e: Event) -> Seen {
    let (id, status) = match e.topic {
        "/tasks/exit" => ev::TaskExit::parse_from_bytes(&e.payload)
            .map(|m| (m.id, m.exit_status))
            .unwrap_or_default(),
        "/tasks/exec-started" => ev::TaskExecStarted::parse_from_bytes(&e.payload)
            .map(|m| (m.exec_id, 0))
            .unwrap_or_default(),
        _ => (String::new(), 0),
    };
    Seen {
        topic: e.topic,
        container: e.container_id,
        id,
        status,
    }
}

/// A service over a fake runtime, in a temporary directory.
pub(crate) struct Harness {
    pub svc: Service,
    pub fake: FakeRuntime,
    events: Receiver<Event>,
    pub dir: tempfile::TempDir,
    /// Container id -> a cgroup v2 directory of the test's own making.
    cgroups: Arc<Mutex<HashMap<String, PathBuf>>>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(|f| f)
    }

    /// A harness over the fake `make` gives.
    pub fn with(make: impl FnOnce(FakeRuntime) -> FakeRuntime) -> Harness {
        let (reaper, subscribers) = shared_reaper();
        let (tx, exits) = std::sync::mpsc::channel();
        subscribers.lock().unwrap().push(tx);
        let dir = tempfile::tempdir().unwrap();
        let fake = make(FakeRuntime::new(&dir.path().join("root")));
        let (publisher, events) = Publisher::capture();
        let (stop_tx, _stop_rx) = std::sync::mpsc::channel();
        let f = fake.clone();
        let open =
            move |_: &robust_config::Config| Ok(Arc::new(f.clone()) as Arc<dyn ContainerRuntime>);
        let cgroups: Arc<Mutex<HashMap<String, PathBuf>>> = Arc::default();
        let (f, cg) = (fake.clone(), cgroups.clone());
        // The cgroup a test made for the container whose init is `pid`;
        // none otherwise (no OOM watch, no kill through a cgroup).
        let cgroup_of = move |pid: i32| {
            let all = cg.lock().unwrap();
            all.iter()
                .find(|(id, _)| f.pid(id, "") == Some(pid))
                .map(|(_, dir)| Cgroup::from_v2_path(dir))
                .ok_or(CgroupError::NoCgroup {
                    pid: pid as u32,
                    detail: "not a test cgroup".into(),
                })
        };
        let svc = Service::with(
            "test",
            reaper.clone(),
            exits,
            publisher,
            stop_tx,
            Box::new(open),
            Box::new(cgroup_of),
        );
        Harness {
            svc,
            fake,
            events,
            dir,
            cgroups,
        }
    }

    /// Let container `id` share the cgroup directory made for `with`.
    pub fn share_cgroup(&self, id: &str, with: &str) {
        let mut all = self.cgroups.lock().unwrap();
        let d = all[with].clone();
        all.insert(id.to_string(), d);
    }

    /// A bundle whose spec makes `id` an app container of pod `pod`.
    pub fn pod_app_request(&self, id: &str, pod: &str) -> api::CreateTaskRequest {
        let r = self.create_request(id);
        std::fs::write(
            self.bundle(id).join("config.json"),
            format!(
                r#"{{"annotations":{{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"{pod}"}}}}"#
            ),
        )
        .unwrap();
        r
    }

    /// Give container `id` a cgroup v2 directory of its own whose
    /// `memory.events` says `oom_kill` is `count`; `watchable`: with the
    /// `cgroup.events` the OOM watcher needs.
    pub fn cgroup(&self, id: &str, count: u64, watchable: bool) -> PathBuf {
        let d = self.dir.path().join(format!("cg-{id}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("memory.events"),
            format!("oom 0\noom_kill {count}\n"),
        )
        .unwrap();
        if watchable {
            std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        }
        self.cgroups
            .lock()
            .unwrap()
            .insert(id.to_string(), d.clone());
        d
    }

    pub fn bundle(&self, id: &str) -> PathBuf {
        let b = self.dir.path().join("bundles").join(id);
        std::fs::create_dir_all(&b).unwrap();
        b
    }

    pub fn create_request(&self, id: &str) -> api::CreateTaskRequest {
        let mut r = api::CreateTaskRequest::new();
        r.id = id.to_string();
        r.bundle = self.bundle(id).display().to_string();
        r
    }

    /// Create and start container `id`.
    pub fn run(&self, id: &str) {
        self.svc.do_create(self.create_request(id)).unwrap();
        self.start(id, "").unwrap();
    }

    pub fn start(&self, id: &str, exec: &str) -> crate::Result<api::StartResponse> {
        let mut r = api::StartRequest::new();
        r.id = id.to_string();
        r.exec_id = exec.to_string();
        self.svc.do_start(r)
    }

    /// Add exec `exec` to container `id` and start it.
    pub fn exec(&self, id: &str, exec: &str) {
        let mut r = api::ExecProcessRequest::new();
        r.id = id.to_string();
        r.exec_id = exec.to_string();
        let mut spec = containerd_shim_protos::protobuf::well_known_types::any::Any::new();
        spec.value = br#"{"args":["sh"]}"#.to_vec();
        r.spec = containerd_shim_protos::protobuf::MessageField::some(spec);
        self.svc.do_exec(r).unwrap();
        self.start(id, exec).unwrap();
    }

    /// The events published so far (waiting up to `within` for `n`).
    pub fn events(&self, n: usize, within: Duration) -> Vec<Seen> {
        let end = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => out.push(seen(e)),
                Err(_) => break,
            }
        }
        // and whatever else is already there
        while let Ok(e) = self.events.try_recv() {
            out.push(seen(e));
        }
        out
    }

    /// The topics (with the exit's process id) of `events`, in order.
    pub fn topics(events: &[Seen]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e.topic {
                "/tasks/exit" => format!("exit:{}:{}", e.id, e.status),
                t => t.trim_start_matches("/tasks/").to_string(),
            })
            .collect()
    }
}

/// Poll `cond` every 5 ms for up to `within`.
pub(crate) fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
