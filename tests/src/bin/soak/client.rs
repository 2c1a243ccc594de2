//! The containerd API calls of the soak: containers (record + overlay snapshot) and task
//! operations, each an async fn on a cloned channel so the caller can time and bound it
//! (`Ctx::rpc`).

use std::path::Path;
use std::time::Duration;

use robust_integration::containerd_client::services::v1::container::Runtime;
use robust_integration::containerd_client::services::v1::containers_client::ContainersClient;
use robust_integration::containerd_client::services::v1::content_client::ContentClient;
use robust_integration::containerd_client::services::v1::images_client::ImagesClient;
use robust_integration::containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use robust_integration::containerd_client::services::v1::snapshots::{
    ListSnapshotsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use robust_integration::containerd_client::services::v1::tasks_client::TasksClient;
use robust_integration::containerd_client::services::v1::version_client::VersionClient;
use robust_integration::containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetImageRequest, GetRequest,
    KillRequest, ListContainersRequest, ListTasksRequest, ReadContentRequest, StartRequest,
    WaitRequest,
};
use robust_integration::containerd_client::types::Mount;
use robust_integration::tonic::transport::Channel;
use robust_integration::tonic::Status;
use robust_integration::{prost_types, req, serde_json};

pub use robust_integration::{reference_options, robust_options, status_name};
use robust_integration::{PATH_ENV, PROCESS_TYPE, SANDBOX_ID, SPEC_TYPE};

pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const SNAPSHOTTER: &str = "overlayfs";
pub const RUNNING: i32 = 2;
pub const STOPPED: i32 = 3;

/// How one container is made.
#[derive(Clone, Debug, Default)]
pub struct CSpec {
    pub id: String,
    pub args: Vec<String>,
    /// (pod sandbox id, this is the sandbox container)
    pub group: Option<(String, bool)>,
    pub host_pid: bool,
    pub memory_limit: Option<u64>,
    pub options: Option<prost_types::Any>,
}

pub fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// The OCI spec of a container, from `ctr oci spec` (`base`).
pub fn spec_json(base: &serde_json::Value, ns: &str, c: &CSpec) -> Vec<u8> {
    let mut spec = base.clone();
    spec["process"]["args"] = serde_json::json!(c.args);
    spec["process"]["env"] = serde_json::json!([PATH_ENV]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["cwd"] = serde_json::json!("/");
    spec["root"] = serde_json::json!({ "path": "rootfs" });
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{ns}/{}", c.id));
    if let Some((g, is_sandbox)) = &c.group {
        let kind = if *is_sandbox { "sandbox" } else { "container" };
        spec["annotations"] = serde_json::json!({ SANDBOX_ID: g, CONTAINER_TYPE: kind });
    }
    if c.host_pid {
        if let Some(n) = spec["linux"]["namespaces"].as_array_mut() {
            n.retain(|n| n["type"] != "pid");
        }
    }
    if let Some(m) = c.memory_limit {
        spec["linux"]["resources"]["memory"] = serde_json::json!({ "limit": m, "swap": m });
    }
    serde_json::to_vec(&spec).expect("spec json")
}

/// A process spec for an exec.
pub fn process_spec(args: &[String], cwd: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "args": args,
        "env": [PATH_ENV],
        "cwd": cwd,
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
    }))
    .expect("process json")
}

async fn read_blob(ch: Channel, ns: &str, digest: &str) -> Result<Vec<u8>, Status> {
    let mut s = ContentClient::new(ch)
        .read(req(
            ns,
            ReadContentRequest {
                digest: digest.into(),
                offset: 0,
                size: 0,
            },
        ))
        .await?
        .into_inner();
    let mut buf = Vec::new();
    while let Some(m) = s.message().await? {
        buf.extend_from_slice(&m.data);
    }
    Ok(buf)
}

/// The snapshot the (single-layer) image was unpacked as: its chain id.
pub async fn image_chain_id(ch: Channel, ns: String, image: String) -> Result<String, String> {
    let img = ImagesClient::new(ch.clone())
        .get(req(
            &ns,
            GetImageRequest {
                name: image.clone(),
            },
        ))
        .await
        .map_err(|s| format!("Images.Get({image}): {s}"))?
        .into_inner()
        .image
        .ok_or("no image")?;
    let target = img.target.ok_or("image without target")?;
    let blob = |d: String| {
        let ch = ch.clone();
        let ns = ns.clone();
        async move {
            let b = read_blob(ch, &ns, &d)
                .await
                .map_err(|s| format!("Content.Read({d}): {s}"))?;
            serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| format!("{d}: {e}"))
        }
    };
    let mut m = blob(target.digest.clone()).await?;
    if m.get("manifests").is_some() {
        let d = m["manifests"][0]["digest"]
            .as_str()
            .unwrap_or("")
            .to_string();
        m = blob(d).await?;
    }
    let cfg = m["config"]["digest"].as_str().unwrap_or("").to_string();
    let c = blob(cfg).await?;
    let ids = c["rootfs"]["diff_ids"].as_array().ok_or("no diff_ids")?;
    if ids.len() != 1 {
        return Err(format!(
            "the soak image must have one layer, not {}",
            ids.len()
        ));
    }
    Ok(ids[0].as_str().unwrap_or("").to_string())
}

/// Containers.Create + Snapshots.Prepare: the rootfs mounts.
pub async fn create_container(
    ch: Channel,
    ns: String,
    image: String,
    runtime: String,
    chain: String,
    spec: Vec<u8>,
    c: CSpec,
) -> Result<Vec<Mount>, Status> {
    ContainersClient::new(ch.clone())
        .create(req(
            &ns,
            CreateContainerRequest {
                container: Some(Container {
                    id: c.id.clone(),
                    image,
                    runtime: Some(Runtime {
                        name: runtime,
                        options: c.options.clone(),
                    }),
                    spec: Some(prost_types::Any {
                        type_url: SPEC_TYPE.into(),
                        value: spec,
                    }),
                    snapshotter: SNAPSHOTTER.into(),
                    snapshot_key: c.id.clone(),
                    ..Default::default()
                }),
            },
        ))
        .await?;
    Ok(SnapshotsClient::new(ch)
        .prepare(req(
            &ns,
            PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: c.id.clone(),
                parent: chain,
                labels: Default::default(),
            },
        ))
        .await?
        .into_inner()
        .mounts)
}

pub async fn delete_container(ch: Channel, ns: String, id: String) -> Result<(), Status> {
    ContainersClient::new(ch)
        .delete(req(&ns, DeleteContainerRequest { id }))
        .await
        .map(|_| ())
}

pub async fn remove_snapshot(ch: Channel, ns: String, key: String) -> Result<(), Status> {
    SnapshotsClient::new(ch)
        .remove(req(
            &ns,
            RemoveSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key,
            },
        ))
        .await
        .map(|_| ())
}

/// Keys of the active (not committed) snapshots.
pub async fn list_snapshots(ch: Channel, ns: String) -> Result<Vec<String>, Status> {
    let mut s = SnapshotsClient::new(ch)
        .list(req(
            &ns,
            ListSnapshotsRequest {
                snapshotter: SNAPSHOTTER.into(),
                filters: vec![],
            },
        ))
        .await?
        .into_inner();
    let mut v = Vec::new();
    while let Some(m) = s.message().await? {
        // Kind: 1 view, 2 active, 3 committed
        v.extend(m.info.into_iter().filter(|i| i.kind != 3).map(|i| i.name));
    }
    Ok(v)
}

pub async fn list_containers(ch: Channel, ns: String) -> Result<Vec<String>, Status> {
    Ok(ContainersClient::new(ch)
        .list(req(&ns, ListContainersRequest { filters: vec![] }))
        .await?
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// (id, pid, status) of every task.
pub async fn list_tasks(ch: Channel, ns: String) -> Result<Vec<(String, u32, i32)>, Status> {
    Ok(TasksClient::new(ch)
        .list(req(
            &ns,
            ListTasksRequest {
                filter: String::new(),
            },
        ))
        .await?
        .into_inner()
        .tasks
        .into_iter()
        .map(|p| (p.id, p.pid, p.status))
        .collect())
}

pub async fn task_create(
    ch: Channel,
    ns: String,
    id: String,
    rootfs: Vec<Mount>,
) -> Result<u32, Status> {
    Ok(TasksClient::new(ch)
        .create(req(
            &ns,
            CreateTaskRequest {
                container_id: id,
                rootfs,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .pid)
}

pub async fn task_start(ch: Channel, ns: String, id: String, exec: String) -> Result<u32, Status> {
    Ok(TasksClient::new(ch)
        .start(req(
            &ns,
            StartRequest {
                container_id: id,
                exec_id: exec,
            },
        ))
        .await?
        .into_inner()
        .pid)
}

pub async fn task_exec(
    ch: Channel,
    ns: String,
    id: String,
    exec: String,
    args: Vec<String>,
    cwd: String,
) -> Result<(), Status> {
    TasksClient::new(ch)
        .exec(req(
            &ns,
            ExecProcessRequest {
                container_id: id,
                exec_id: exec,
                spec: Some(prost_types::Any {
                    type_url: PROCESS_TYPE.into(),
                    value: process_spec(&args, &cwd),
                }),
                ..Default::default()
            },
        ))
        .await
        .map(|_| ())
}

pub async fn task_kill(
    ch: Channel,
    ns: String,
    id: String,
    exec: String,
    signal: u32,
    all: bool,
) -> Result<(), Status> {
    TasksClient::new(ch)
        .kill(req(
            &ns,
            KillRequest {
                container_id: id,
                exec_id: exec,
                signal,
                all,
            },
        ))
        .await
        .map(|_| ())
}

pub async fn task_wait(ch: Channel, ns: String, id: String, exec: String) -> Result<u32, Status> {
    Ok(TasksClient::new(ch)
        .wait(req(
            &ns,
            WaitRequest {
                container_id: id,
                exec_id: exec,
            },
        ))
        .await?
        .into_inner()
        .exit_status)
}

pub async fn task_delete(ch: Channel, ns: String, id: String) -> Result<u32, Status> {
    Ok(TasksClient::new(ch)
        .delete(req(&ns, DeleteTaskRequest { container_id: id }))
        .await?
        .into_inner()
        .exit_status)
}

pub async fn task_delete_process(
    ch: Channel,
    ns: String,
    id: String,
    exec: String,
) -> Result<u32, Status> {
    Ok(TasksClient::new(ch)
        .delete_process(req(
            &ns,
            DeleteProcessRequest {
                container_id: id,
                exec_id: exec,
            },
        ))
        .await?
        .into_inner()
        .exit_status)
}

/// (pid, status, exit status) of a task or exec.
pub async fn task_get(
    ch: Channel,
    ns: String,
    id: String,
    exec: String,
) -> Result<(u32, i32, u32), Status> {
    let p = TasksClient::new(ch)
        .get(req(
            &ns,
            GetRequest {
                container_id: id,
                exec_id: exec,
            },
        ))
        .await?
        .into_inner()
        .process
        .unwrap_or_default();
    Ok((p.pid, p.status, p.exit_status))
}

/// A channel to `addr` that answered Version, within `limit`.
pub async fn connect(addr: &Path, limit: Duration) -> Result<Channel, String> {
    let a = addr.to_path_buf();
    let fut = async move {
        let ch = robust_integration::containerd_client::connect(a)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        VersionClient::new(ch.clone())
            .version(())
            .await
            .map_err(|s| format!("Version: {s}"))?;
        Ok::<_, String>(ch)
    };
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}
