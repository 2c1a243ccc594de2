use super::*;

use std::sync::mpsc;
use std::time::Instant;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateNamespaceRequest, CreateTaskRequest,
    DeleteContainerRequest, DeleteNamespaceRequest, DeleteTaskRequest, GetImageRequest, GetRequest,
    KillRequest, Namespace, ReadContentRequest, StartRequest, SubscribeRequest, UpdateTaskRequest,
    WaitRequest,
};
use containerd_client::types::Envelope;
use prost::Message;

const SEC: Duration = Duration::from_secs(1);
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const RESOURCES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// containerd.v1.types.Status
const STATUS_RUNNING: i32 = 2;

// 6. Tasks.Update with a memory limit lands in the container's cgroup.
shim_test!(update_memory_limit, limit = 60, |shim| {
    let id = unique_id("update", shim);
    let _g = ContainerGuard::new(NS, &id);
    let pid = run_detached(shim, &id, &["sleep", "1000"]);
    let before = cgroup_memory_limit(pid);
    let limit: u64 = 64 << 20;
    assert_ne!(
        before,
        Some(limit),
        "the limit is already {limit} before the update"
    );
    let resources = serde_json::json!({ "memory": { "limit": limit } });
    let api = Api::connect();
    api.call(
        "Tasks.Update",
        20 * SEC,
        api.tasks().update(req(
            NS,
            UpdateTaskRequest {
                container_id: id.clone(),
                resources: Some(prost_types::Any {
                    type_url: RESOURCES_TYPE.into(),
                    value: serde_json::to_vec(&resources).unwrap(),
                }),
                annotations: Default::default(),
            },
        )),
    )
    .unwrap_or_else(|s| panic!("Tasks.Update({id}, memory limit {limit}): {s}"));
    assert_eq!(
        cgroup_memory_limit(pid),
        Some(limit),
        "memory limit of pid {pid}'s cgroup after the update (was {before:?})"
    );
});

/// Reads a blob from the content store.
fn read_blob(api: &Api, digest: &str) -> Vec<u8> {
    let mut content = api.content();
    api.call("Content.Read", 10 * SEC, async {
        let mut s = content
            .read(req(
                NS,
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

/// The chain id of a single-layer image's rootfs (what the snapshotter unpacked it as).
fn image_chain_id(api: &Api, name: &str) -> String {
    let img = api
        .call(
            "Images.Get",
            10 * SEC,
            api.images()
                .get(req(NS, GetImageRequest { name: name.into() })),
        )
        .unwrap_or_else(|s| panic!("Images.Get({name}): {s}"))
        .into_inner()
        .image
        .expect("Images.Get: no image");
    let target = img.target.expect("image without target");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&read_blob(api, &target.digest)).unwrap();
    if manifest.get("manifests").is_some() {
        let first = manifest["manifests"][0]["digest"]
            .as_str()
            .expect("index without manifests")
            .to_string();
        manifest = serde_json::from_slice(&read_blob(api, &first)).unwrap();
    }
    let cfg_digest = manifest["config"]["digest"]
        .as_str()
        .expect("manifest without config")
        .to_string();
    let config: serde_json::Value = serde_json::from_slice(&read_blob(api, &cfg_digest)).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .expect("config without diff_ids");
    assert_eq!(
        diff_ids.len(),
        1,
        "the test images have exactly one layer (integration/mkimage.py)"
    );
    diff_ids[0].as_str().unwrap().to_string()
}

/// containerd's default spec (`ctr oci spec`) running `args`.
fn spec_for(id: &str, args: &[&str]) -> Vec<u8> {
    let out = ctr(NS, &["oci", "spec"]).run().ok();
    let mut spec: serde_json::Value = serde_json::from_str(&out.stdout).expect("ctr oci spec json");
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["env"] =
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["root"] = serde_json::json!({ "path": "rootfs" });
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{NS}/{id}"));
    serde_json::to_vec(&spec).unwrap()
}

// 9. Through the API only: container + task with null stdio, start, Kill(SIGKILL),
//    Wait gives 137, Delete gives 137.
shim_test!(api_kill_wait_delete, limit = 60, |shim| {
    let e = env();
    let api = Api::connect();
    let id = unique_id("api-kill", shim);
    let _g = ContainerGuard::new(NS, &id);
    let chain = image_chain_id(&api, &e.image);

    // the container first, so its snapshot is referenced (safe from GC) once prepared
    api.call(
        "Containers.Create",
        10 * SEC,
        api.containers().create(req(
            NS,
            CreateContainerRequest {
                container: Some(Container {
                    id: id.clone(),
                    image: e.image.clone(),
                    runtime: Some(Runtime {
                        name: shim.runtime().into(),
                        options: None,
                    }),
                    spec: Some(prost_types::Any {
                        type_url: SPEC_TYPE.into(),
                        value: spec_for(&id, &["sleep", "1000"]),
                    }),
                    snapshotter: "overlayfs".into(),
                    snapshot_key: id.clone(),
                    ..Default::default()
                }),
            },
        )),
    )
    .unwrap_or_else(|s| panic!("Containers.Create({id}): {s}"));
    let mounts = api
        .call(
            "Snapshots.Prepare",
            20 * SEC,
            api.snapshots().prepare(req(
                NS,
                PrepareSnapshotRequest {
                    snapshotter: "overlayfs".into(),
                    key: id.clone(),
                    parent: chain.clone(),
                    labels: Default::default(),
                },
            )),
        )
        .unwrap_or_else(|s| panic!("Snapshots.Prepare({id}, parent {chain}): {s}"))
        .into_inner()
        .mounts;

    let created = api
        .call(
            "Tasks.Create",
            30 * SEC,
            api.tasks().create(req(
                NS,
                CreateTaskRequest {
                    container_id: id.clone(),
                    rootfs: mounts,
                    ..Default::default()
                },
            )),
        )
        .unwrap_or_else(|s| panic!("Tasks.Create({id}) with {}: {s}", shim.runtime()))
        .into_inner();
    assert!(created.pid > 0, "Tasks.Create returned pid 0");
    let started = api
        .call(
            "Tasks.Start",
            20 * SEC,
            api.tasks().start(req(
                NS,
                StartRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                },
            )),
        )
        .unwrap_or_else(|s| panic!("Tasks.Start({id}): {s}"))
        .into_inner();
    assert_eq!(
        started.pid, created.pid,
        "Start and Create disagree on the pid"
    );
    let got = api
        .call(
            "Tasks.Get",
            10 * SEC,
            api.tasks().get(req(
                NS,
                GetRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                },
            )),
        )
        .unwrap_or_else(|s| panic!("Tasks.Get({id}): {s}"))
        .into_inner()
        .process
        .expect("no process");
    assert_eq!(got.status, STATUS_RUNNING, "status after Start: {got:?}");

    // Wait first (it blocks until the exit), then SIGKILL
    let mut tasks = api.tasks();
    let wid = id.clone();
    let wait = api.rt.spawn(async move {
        tasks
            .wait(req(
                NS,
                WaitRequest {
                    container_id: wid,
                    exec_id: String::new(),
                },
            ))
            .await
    });
    api.call(
        "Tasks.Kill",
        10 * SEC,
        api.tasks().kill(req(
            NS,
            KillRequest {
                container_id: id.clone(),
                exec_id: String::new(),
                signal: 9,
                all: false,
            },
        )),
    )
    .unwrap_or_else(|s| panic!("Tasks.Kill({id}, SIGKILL): {s}"));
    let waited = api
        .call("Tasks.Wait", 20 * SEC, wait)
        .expect("wait task panicked")
        .unwrap_or_else(|s| panic!("Tasks.Wait({id}): {s}"))
        .into_inner();
    assert_eq!(waited.exit_status, 137, "Wait's exit status after SIGKILL");
    assert!(waited.exited_at.is_some(), "Wait without exited_at");

    let deleted = api
        .call(
            "Tasks.Delete",
            30 * SEC,
            api.tasks().delete(req(
                NS,
                DeleteTaskRequest {
                    container_id: id.clone(),
                },
            )),
        )
        .unwrap_or_else(|s| panic!("Tasks.Delete({id}): {s}"))
        .into_inner();
    assert_eq!(
        deleted.exit_status, 137,
        "Delete's exit status after SIGKILL"
    );
    assert_eq!(deleted.pid, created.pid, "Delete's pid");
    assert!(
        !pid_alive(created.pid as i32),
        "pid {} alive after Delete",
        created.pid
    );

    // the snapshot first: once the container is gone, containerd's GC may take an
    // unreferenced snapshot at any moment (NotFound then is fine)
    let removed = api.call(
        "Snapshots.Remove",
        10 * SEC,
        api.snapshots().remove(req(
            NS,
            RemoveSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: id.clone(),
            },
        )),
    );
    if let Err(s) = removed {
        assert_eq!(
            s.code(),
            tonic::Code::NotFound,
            "Snapshots.Remove({id}): {s}"
        );
    }
    api.call(
        "Containers.Delete",
        10 * SEC,
        api.containers()
            .delete(req(NS, DeleteContainerRequest { id: id.clone() })),
    )
    .unwrap_or_else(|s| panic!("Containers.Delete({id}): {s}"));
});

/// The container id (field 1) of every /tasks/* event.
#[derive(Clone, PartialEq, prost::Message)]
struct TaskEventId {
    #[prost(string, tag = "1")]
    container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TaskExitLike {
    #[prost(string, tag = "1")]
    container_id: String,
    #[prost(uint32, tag = "3")]
    pid: u32,
    #[prost(uint32, tag = "4")]
    exit_status: u32,
}

/// Removes the probe namespaces on drop.
struct ProbeNamespaces(Vec<String>);
impl Drop for ProbeNamespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = ctr(NS, &["namespaces", "remove", n])
                .timeout(10 * SEC)
                .run_unclamped();
        }
    }
}

/// Subscribes to containerd's events; returns once the subscription is known to deliver
/// (a probe namespace's /namespaces/create came through).
fn subscribe(
    api: &Api,
    probe_base: &str,
    probes: &mut ProbeNamespaces,
) -> mpsc::Receiver<Envelope> {
    let (tx, rx) = mpsc::channel::<Envelope>();
    let mut events = api.events();
    api.rt.spawn(async move {
        match events.subscribe(SubscribeRequest { filters: vec![] }).await {
            Ok(s) => {
                let mut s = s.into_inner();
                while let Ok(Some(m)) = s.message().await {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
            }
            Err(e) => eprintln!("Events.Subscribe: {e}"),
        }
    });
    poll_until(
        "the event subscription to deliver a probe event",
        20 * SEC,
        || {
            let name = format!("{probe_base}-{}", probes.0.len());
            probes.0.push(name.clone());
            api.call(
                "Namespaces.Create",
                5 * SEC,
                api.namespaces().create(req(
                    &name,
                    CreateNamespaceRequest {
                        namespace: Some(Namespace {
                            name: name.clone(),
                            labels: Default::default(),
                        }),
                    },
                )),
            )
            .unwrap_or_else(|s| panic!("Namespaces.Create({name}): {s}"));
            let end = Instant::now() + Duration::from_millis(300);
            while let Ok(env) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                if env.topic == "/namespaces/create" {
                    return Some(());
                }
            }
            None
        },
    );
    for n in probes.0.drain(..).collect::<Vec<_>>() {
        let r = api.call(
            "Namespaces.Delete",
            5 * SEC,
            api.namespaces()
                .delete(req(&n, DeleteNamespaceRequest { name: n.clone() })),
        );
        if r.is_err() {
            probes.0.push(n);
        }
    }
    rx
}

// 11. Events of a `ctr run --rm`: /tasks/create, /tasks/start, /tasks/exit, /tasks/delete,
//     in that order, each once, with the right pid and exit status.
shim_test!(events_in_order, limit = 60, |shim| {
    let e = env();
    let api = Api::connect();
    let id = unique_id("events", shim);
    let _g = ContainerGuard::new(NS, &id);
    let mut probes = ProbeNamespaces(Vec::new());
    let rx = subscribe(&api, &format!("{id}-probe"), &mut probes);

    ctr(
        NS,
        &[
            "run",
            "--rm",
            "--runtime",
            shim.runtime(),
            &e.image,
            &id,
            "sh",
            "-c",
            "exit 3",
        ],
    )
    .run()
    .code_is(3);

    // Collect this task's events until its /tasks/delete, then anything straggling.
    let mut seen: Vec<(String, Envelope)> = Vec::new();
    let collect = |seen: &mut Vec<(String, Envelope)>, wait: Duration| {
        while let Ok(env) = rx.recv_timeout(wait) {
            let ours = env.topic.starts_with("/tasks/")
                && env.event.as_ref().is_some_and(|any| {
                    TaskEventId::decode(any.value.as_slice()).is_ok_and(|ev| ev.container_id == id)
                });
            if ours {
                eprintln!("event {} of {id}", env.topic);
                seen.push((env.topic.clone(), env));
            }
            if seen.iter().any(|(t, _)| t == "/tasks/delete") {
                break;
            }
        }
    };
    let end = Instant::now() + bound(15 * SEC);
    while Instant::now() < end && !seen.iter().any(|(t, _)| t == "/tasks/delete") {
        collect(&mut seen, Duration::from_millis(100));
    }
    collect(&mut seen, Duration::from_millis(300));
    let expected = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ];
    if shim == Shim::Reference
        && !containerd_release().starts_with("1.")
        && seen.len() < expected.len()
    {
        // containerd 2.x's runc shim queues its events and may exit before the queue is
        // sent: about one `ctr run --rm` in seven here loses /tasks/delete, sometimes
        // /tasks/create too (docs/events.md, "Events the reference loses"). What
        // arrived must still be in order, with the real exit status.
        let topics: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
        let mut rest = expected.iter();
        assert!(
            topics.iter().all(|t| rest.any(|e| e == t)),
            "task events of {id} out of order: {topics:?}"
        );
        if let Some(i) = topics.iter().position(|t| *t == "/tasks/exit") {
            let exit =
                TaskExitLike::decode(seen[i].1.event.as_ref().unwrap().value.as_slice()).unwrap();
            assert_eq!(exit.exit_status, 3, "TaskExit exit_status");
        }
        eprintln!(
            "[reference lost events] containerd {}: {id} delivered only {topics:?}",
            containerd_release()
        );
        return;
    }
    let topics: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, expected, "task events of {id} ({})", shim.runtime());
    for (topic, env) in &seen {
        assert_eq!(env.namespace, NS, "namespace of {topic}");
    }
    let decode = |i: usize| {
        TaskExitLike::decode(seen[i].1.event.as_ref().unwrap().value.as_slice()).unwrap()
    };
    // TaskCreate: pid is field 6; TaskStart: pid is field 2
    let create_pid = {
        #[derive(Clone, PartialEq, prost::Message)]
        struct CreatePid {
            #[prost(uint32, tag = "6")]
            pid: u32,
        }
        CreatePid::decode(seen[0].1.event.as_ref().unwrap().value.as_slice())
            .unwrap()
            .pid
    };
    let start_pid = {
        #[derive(Clone, PartialEq, prost::Message)]
        struct StartPid {
            #[prost(uint32, tag = "2")]
            pid: u32,
        }
        StartPid::decode(seen[1].1.event.as_ref().unwrap().value.as_slice())
            .unwrap()
            .pid
    };
    let exit = decode(2);
    assert_eq!(exit.exit_status, 3, "TaskExit exit_status");
    assert!(
        create_pid > 0 && create_pid == start_pid,
        "TaskCreate pid {create_pid} vs TaskStart pid {start_pid}"
    );
    assert_eq!(exit.pid, start_pid, "TaskExit pid");
    #[derive(Clone, PartialEq, prost::Message)]
    struct DeleteLike {
        #[prost(uint32, tag = "2")]
        pid: u32,
        #[prost(uint32, tag = "3")]
        exit_status: u32,
    }
    let del = DeleteLike::decode(seen[3].1.event.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(del.exit_status, 3, "TaskDelete exit_status");
    assert_eq!(del.pid, start_pid, "TaskDelete pid");
});
