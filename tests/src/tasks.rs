//! Containers and tasks through the containerd API: the runtime options of each shim, a
//! container record with its rootfs snapshot, and every task operation, bounded or in
//! the background. The soak client uses the same options and constants.

use std::future::Future;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest,
    ExecProcessRequest, GetImageRequest, GetRequest, KillRequest, ListPidsRequest,
    PauseTaskRequest, ReadContentRequest, ResumeTaskRequest, StartRequest, UpdateTaskRequest,
    WaitRequest,
};
use containerd_client::types::Mount;
use prost::Message;
use tonic::transport::Channel;

use crate::{bound, ctr, env, ns, req, secs, tonic, Api, Shim, SEC};

/// The type url of an OCI runtime spec in containerd's API.
pub const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// The type url of an OCI process spec (an exec).
pub const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// The type url of OCI Linux resources (an update).
pub const RESOURCES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
/// CRI's annotation naming a container's pod sandbox: it groups containers into one shim.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// The PATH of every process the cases start in a container.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd.v1.types.Status
pub fn status_name(s: i32) -> &'static str {
    match s {
        1 => "CREATED",
        2 => "RUNNING",
        3 => "STOPPED",
        4 => "PAUSED",
        5 => "PAUSING",
        _ => "UNKNOWN",
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct RuntimeOptionsPb {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(string, tag = "2")]
    config_path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptionsPb {
    #[prost(string, tag = "6")]
    binary_name: String,
}

/// Runtime options for our shim: `runtimeoptions.v1.Options{ConfigPath}` (what ctr's
/// `--runtime-config-path` and CRI send).
pub fn robust_options(config: &Path) -> prost_types::Any {
    prost_types::Any {
        type_url: "runtimeoptions.v1.Options".into(),
        value: RuntimeOptionsPb {
            type_url: String::new(),
            config_path: config.display().to_string(),
        }
        .encode_to_vec(),
    }
}

/// Runtime options for the reference shim: runc `Options{BinaryName}` (what ctr's
/// `--runc-binary` sends).
pub fn reference_options(binary: &Path) -> prost_types::Any {
    prost_types::Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: RuncOptionsPb {
            binary_name: binary.display().to_string(),
        }
        .encode_to_vec(),
    }
}

/// How a container is made.
pub struct Ct<'a> {
    pub id: &'a str,
    pub args: &'a [&'a str],
    pub options: Option<prost_types::Any>,
    /// Share the shim of this container (the sandbox-id annotation).
    pub group: Option<&'a str>,
    /// Run in the host's pid namespace.
    pub host_pid: bool,
}

fn base_spec() -> serde_json::Value {
    static SPEC: OnceLock<String> = OnceLock::new();
    let s = SPEC.get_or_init(|| {
        let out = ctr(ns(), &["oci", "spec"]).run().ok();
        out.stdout
    });
    serde_json::from_str(s).expect("ctr oci spec json")
}

fn spec_json(c: &Ct) -> Vec<u8> {
    let mut spec = base_spec();
    spec["process"]["args"] = serde_json::json!(c.args);
    spec["process"]["env"] = serde_json::json!([PATH_ENV]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["root"] = serde_json::json!({ "path": "rootfs" });
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{}", ns(), c.id));
    if let Some(g) = c.group {
        spec["annotations"] = serde_json::json!({ SANDBOX_ID: g });
    }
    if c.host_pid {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "pid");
        }
    }
    serde_json::to_vec(&spec).unwrap()
}

fn read_blob(api: &Api, digest: &str) -> Vec<u8> {
    let mut content = api.content();
    api.call("Content.Read", 10 * SEC, async {
        let mut s = content
            .read(req(
                ns(),
                ReadContentRequest {
                    digest: digest.into(),
                    offset: 0,
                    size: 0,
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("Content.Read({digest}): {s}"))
            .into_inner();
        let mut buf = Vec::new();
        while let Some(m) = s
            .message()
            .await
            .unwrap_or_else(|s| panic!("Content.Read({digest}) stream: {s}"))
        {
            buf.extend_from_slice(&m.data);
        }
        buf
    })
}

/// The snapshot the test image's single layer was unpacked as (its chain id).
fn image_chain_id(api: &Api) -> String {
    static CHAIN: OnceLock<String> = OnceLock::new();
    CHAIN
        .get_or_init(|| {
            let name = env().image.clone();
            let img = api
                .call(
                    "Images.Get",
                    10 * SEC,
                    api.images()
                        .get(req(ns(), GetImageRequest { name: name.clone() })),
                )
                .unwrap_or_else(|s| panic!("Images.Get({name}): {s}"))
                .into_inner()
                .image
                .expect("no image");
            let target = img.target.expect("image without target");
            let mut m: serde_json::Value =
                serde_json::from_slice(&read_blob(api, &target.digest)).unwrap();
            if m.get("manifests").is_some() {
                let d = m["manifests"][0]["digest"].as_str().unwrap().to_string();
                m = serde_json::from_slice(&read_blob(api, &d)).unwrap();
            }
            let cfg = m["config"]["digest"].as_str().unwrap().to_string();
            let c: serde_json::Value = serde_json::from_slice(&read_blob(api, &cfg)).unwrap();
            let ids = c["rootfs"]["diff_ids"].as_array().expect("diff_ids");
            assert_eq!(ids.len(), 1, "the test image has one layer");
            ids[0].as_str().unwrap().to_string()
        })
        .clone()
}

/// Creates the container record and its rootfs snapshot; returns the rootfs mounts.
pub fn create_container(api: &Api, shim: Shim, c: &Ct) -> Vec<Mount> {
    let chain = image_chain_id(api);
    api.call(
        "Containers.Create",
        10 * SEC,
        api.containers().create(req(
            ns(),
            CreateContainerRequest {
                container: Some(Container {
                    id: c.id.to_string(),
                    image: env().image.clone(),
                    runtime: Some(Runtime {
                        name: shim.runtime().into(),
                        options: c.options.clone(),
                    }),
                    spec: Some(prost_types::Any {
                        type_url: SPEC_TYPE.into(),
                        value: spec_json(c),
                    }),
                    snapshotter: "overlayfs".into(),
                    snapshot_key: c.id.to_string(),
                    ..Default::default()
                }),
            },
        )),
    )
    .unwrap_or_else(|s| panic!("Containers.Create({}): {s}", c.id));
    api.call(
        "Snapshots.Prepare",
        20 * SEC,
        api.snapshots().prepare(req(
            ns(),
            PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: c.id.to_string(),
                parent: chain,
                labels: Default::default(),
            },
        )),
    )
    .unwrap_or_else(|s| panic!("Snapshots.Prepare({}): {s}", c.id))
    .into_inner()
    .mounts
}

/// A process spec for an exec.
pub fn process_spec(args: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "args": args,
        "env": [PATH_ENV],
        "cwd": "/",
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
    }))
    .unwrap()
}

/// One task operation through the API.
#[derive(Clone, Debug)]
pub enum Op {
    Create(String, Vec<Mount>),
    Start(String, String),
    Kill(String, String, u32, bool),
    Delete(String),
    DeleteProcess(String, String),
    Exec(String, String, Vec<String>),
    Pause(String),
    Resume(String),
    Update(String, serde_json::Value),
    Pids(String),
    Get(String, String),
    Wait(String, String),
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Create(id, _) => format!("Tasks.Create({id})"),
            Op::Start(id, e) => format!("Tasks.Start({id}{})", ex(e)),
            Op::Kill(id, e, s, a) => format!("Tasks.Kill({id}{}, {s}, all={a})", ex(e)),
            Op::Delete(id) => format!("Tasks.Delete({id})"),
            Op::DeleteProcess(id, e) => format!("Tasks.DeleteProcess({id}, {e})"),
            Op::Exec(id, e, _) => format!("Tasks.Exec({id}, {e})"),
            Op::Pause(id) => format!("Tasks.Pause({id})"),
            Op::Resume(id) => format!("Tasks.Resume({id})"),
            Op::Update(id, _) => format!("Tasks.Update({id})"),
            Op::Pids(id) => format!("Tasks.ListPids({id})"),
            Op::Get(id, e) => format!("Tasks.Get({id}{})", ex(e)),
            Op::Wait(id, e) => format!("Tasks.Wait({id}{})", ex(e)),
        }
    }
}

fn ex(e: &str) -> String {
    if e.is_empty() {
        String::new()
    } else {
        format!(", exec {e}")
    }
}

/// What an operation gave back.
#[derive(Clone, Debug, PartialEq)]
pub enum OpOk {
    Empty,
    Pid(u32),
    Pids(Vec<u32>),
    /// Tasks.Get: pid, status, exit status
    Proc(u32, i32, u32),
    /// Wait / Delete: exit status
    Exit(u32),
}

pub type OpResult = Result<OpOk, tonic::Status>;

/// Runs an operation (no bound of its own).
pub async fn run_op(ch: Channel, ns: &'static str, op: Op) -> OpResult {
    let mut t = containerd_client::services::v1::tasks_client::TasksClient::new(ch);
    match op {
        Op::Create(id, rootfs) => t
            .create(req(
                ns,
                CreateTaskRequest {
                    container_id: id,
                    rootfs,
                    ..Default::default()
                },
            ))
            .await
            .map(|r| OpOk::Pid(r.into_inner().pid)),
        Op::Start(id, exec_id) => t
            .start(req(
                ns,
                StartRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| OpOk::Pid(r.into_inner().pid)),
        Op::Kill(id, exec_id, signal, all) => t
            .kill(req(
                ns,
                KillRequest {
                    container_id: id,
                    exec_id,
                    signal,
                    all,
                },
            ))
            .await
            .map(|_| OpOk::Empty),
        Op::Delete(id) => t
            .delete(req(ns, DeleteTaskRequest { container_id: id }))
            .await
            .map(|r| OpOk::Exit(r.into_inner().exit_status)),
        Op::DeleteProcess(id, exec_id) => t
            .delete_process(req(
                ns,
                DeleteProcessRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| OpOk::Exit(r.into_inner().exit_status)),
        Op::Exec(id, exec_id, args) => {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            t.exec(req(
                ns,
                ExecProcessRequest {
                    container_id: id,
                    exec_id,
                    spec: Some(prost_types::Any {
                        type_url: PROCESS_TYPE.into(),
                        value: process_spec(&a),
                    }),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| OpOk::Empty)
        }
        Op::Pause(id) => t
            .pause(req(ns, PauseTaskRequest { container_id: id }))
            .await
            .map(|_| OpOk::Empty),
        Op::Resume(id) => t
            .resume(req(ns, ResumeTaskRequest { container_id: id }))
            .await
            .map(|_| OpOk::Empty),
        Op::Update(id, resources) => t
            .update(req(
                ns,
                UpdateTaskRequest {
                    container_id: id,
                    resources: Some(prost_types::Any {
                        type_url: RESOURCES_TYPE.into(),
                        value: serde_json::to_vec(&resources).unwrap(),
                    }),
                    annotations: Default::default(),
                },
            ))
            .await
            .map(|_| OpOk::Empty),
        Op::Pids(id) => t
            .list_pids(req(ns, ListPidsRequest { container_id: id }))
            .await
            .map(|r| OpOk::Pids(r.into_inner().processes.iter().map(|p| p.pid).collect())),
        Op::Get(id, exec_id) => t
            .get(req(
                ns,
                GetRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| {
                let p = r.into_inner().process.unwrap_or_default();
                OpOk::Proc(p.pid, p.status, p.exit_status)
            }),
        Op::Wait(id, exec_id) => t
            .wait(req(
                ns,
                WaitRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| OpOk::Exit(r.into_inner().exit_status)),
    }
}

/// Runs `fut` for at most `limit` (clamped to the case's deadline): None when it did not
/// finish in time, and how long it took.
pub fn try_call<F: Future>(api: &Api, limit: Duration, fut: F) -> (Option<F::Output>, Duration) {
    let limit = bound(limit);
    let t = Instant::now();
    let r = api
        .rt
        .block_on(async { tokio::time::timeout(limit, fut).await })
        .ok();
    (r, t.elapsed())
}

/// An operation, bounded: None when it did not answer within `limit`.
pub fn op_within(api: &Api, op: Op, limit: Duration) -> (Option<OpResult>, Duration) {
    try_call(api, limit, run_op(api.channel.clone(), ns(), op))
}

/// An operation that must succeed within `limit`.
pub fn op_ok(api: &Api, op: Op, limit: Duration) -> OpOk {
    let name = op.name();
    match op_within(api, op, limit) {
        (Some(Ok(v)), _) => v,
        (Some(Err(s)), t) => panic!("{name} failed after {}: {s}", secs(t)),
        (None, t) => panic!("{name}: no answer within {}", secs(t)),
    }
}

/// An operation running in the background.
pub struct InFlight {
    pub name: String,
    handle: Option<tokio::task::JoinHandle<(OpResult, Duration)>>,
    pub started: Instant,
}

pub fn spawn_op(api: &Api, op: Op) -> InFlight {
    let name = op.name();
    let ch = api.channel.clone();
    let n = ns();
    let started = Instant::now();
    let handle = api.rt.spawn(async move {
        let t = Instant::now();
        let r = run_op(ch, n, op).await;
        (r, t.elapsed())
    });
    InFlight {
        name,
        handle: Some(handle),
        started,
    }
}

impl InFlight {
    pub fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
    /// Waits at most `limit` more; None when still in flight.
    pub fn join(&mut self, api: &Api, limit: Duration) -> Option<(OpResult, Duration)> {
        let h = self.handle.as_mut()?;
        let limit = bound(limit);
        let r = api
            .rt
            .block_on(async { tokio::time::timeout(limit, h).await });
        match r {
            Ok(Ok(v)) => {
                self.handle = None;
                Some(v)
            }
            Ok(Err(e)) => panic!("{}: task failed: {e}", self.name),
            Err(_) => None,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Short text of an operation's outcome.
pub fn describe(r: &Option<OpResult>, t: Duration) -> String {
    match r {
        Some(Ok(v)) => format!("ok {v:?} in {}", secs(t)),
        Some(Err(s)) => format!(
            "{:?} in {}: {}",
            s.code(),
            secs(t),
            s.message().replace('\n', " ")
        ),
        None => format!("no answer within {}", secs(t)),
    }
}
