//! The soak's subscription to containerd's events, for the whole run: every /tasks/exit
//! and /tasks/oom of the soak's namespace, to check that each exit is published exactly
//! once. A subscription is only taken as live once a probe event came through it, so a
//! resubscription after a containerd restart misses nothing that is forwarded after it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use robust_integration::containerd_client::events::{TaskExit, TaskOom};
use robust_integration::containerd_client::services::v1::events_client::EventsClient;
use robust_integration::containerd_client::services::v1::namespaces_client::NamespacesClient;
use robust_integration::containerd_client::services::v1::{
    CreateNamespaceRequest, DeleteNamespaceRequest, Namespace, SubscribeRequest,
};
use robust_integration::prost::Message;
use robust_integration::req;
use robust_integration::tonic::transport::Channel;

#[derive(Clone, Debug)]
pub struct Ev {
    pub topic: String,
    pub cid: String,
    /// TaskExit: the process id (the container id for the init)
    pub id: String,
    pub status: u32,
}

#[derive(Default)]
struct Shared {
    evs: Vec<Ev>,
    /// the generation whose stream ended (a subscription is a generation)
    closed: Option<u64>,
    gen: u64,
    probe_seen: bool,
}

#[derive(Clone, Default)]
pub struct Events {
    s: Arc<Mutex<Shared>>,
}

impl Events {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.s.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes on `rt` and returns once a probe namespace's event came through
    /// (within `limit`). The previous subscription, if any, is forgotten.
    pub fn subscribe(
        &self,
        rt: &tokio::runtime::Runtime,
        ch: Channel,
        ns: &str,
        limit: Duration,
    ) -> Result<(), String> {
        let gen = {
            let mut s = self.lock();
            s.gen += 1;
            s.probe_seen = false;
            s.gen
        };
        let shared = self.s.clone();
        let ns_owned = ns.to_string();
        let mut ev = EventsClient::new(ch.clone());
        rt.spawn(async move {
            let filters = vec![
                format!(r#"namespace=={ns_owned},topic~="^/tasks/""#),
                r#"topic=="/namespaces/create""#.to_string(),
            ];
            if let Ok(s) = ev.subscribe(SubscribeRequest { filters }).await {
                let mut s = s.into_inner();
                while let Ok(Some(env)) = s.message().await {
                    let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
                    if g.gen != gen {
                        return;
                    }
                    if env.topic == "/namespaces/create" {
                        g.probe_seen = true;
                        continue;
                    }
                    if env.namespace != ns_owned {
                        continue;
                    }
                    let Some(any) = env.event.as_ref() else {
                        continue;
                    };
                    let v = any.value.as_slice();
                    let e = match env.topic.as_str() {
                        "/tasks/exit" => TaskExit::decode(v).ok().map(|m| Ev {
                            topic: env.topic.clone(),
                            cid: m.container_id,
                            id: m.id,
                            status: m.exit_status,
                        }),
                        "/tasks/oom" => TaskOom::decode(v).ok().map(|m| Ev {
                            topic: env.topic.clone(),
                            cid: m.container_id,
                            id: String::new(),
                            status: 0,
                        }),
                        _ => None,
                    };
                    if let Some(e) = e {
                        g.evs.push(e);
                    }
                }
            }
            let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
            if g.gen == gen {
                g.closed = Some(gen);
            }
        });
        // probe: a namespace created (and removed) until its event is seen
        let end = Instant::now() + limit;
        let mut k = 0;
        let mut probes = Vec::new();
        let live = loop {
            if self.lock().probe_seen {
                break true;
            }
            if Instant::now() >= end {
                break false;
            }
            let name = format!("{ns}-probe-{gen}-{k}");
            k += 1;
            let mut n = NamespacesClient::new(ch.clone());
            let nm = name.clone();
            let r = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    n.create(req(
                        &nm,
                        CreateNamespaceRequest {
                            namespace: Some(Namespace {
                                name: nm.clone(),
                                labels: Default::default(),
                            }),
                        },
                    )),
                )
                .await
            });
            if matches!(r, Ok(Ok(_))) {
                probes.push(name);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        for p in probes {
            let mut n = NamespacesClient::new(ch.clone());
            let _ = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    n.delete(req(&p, DeleteNamespaceRequest { name: p.clone() })),
                )
                .await
            });
        }
        if live {
            let s = self.lock();
            if s.closed == Some(gen) {
                return Err("the event stream ended right after it was opened".into());
            }
            Ok(())
        } else {
            Err(format!("no probe event within {limit:?}"))
        }
    }

    /// Whether the current subscription's stream has ended.
    pub fn closed(&self) -> bool {
        let s = self.lock();
        s.closed == Some(s.gen)
    }

    /// How many /tasks/exit of process `id` of container `cid`, and their statuses.
    pub fn exits(&self, cid: &str, id: &str) -> Vec<u32> {
        self.lock()
            .evs
            .iter()
            .filter(|e| e.topic == "/tasks/exit" && e.cid == cid && e.id == id)
            .map(|e| e.status)
            .collect()
    }

    /// The topics of container `cid`, in order ("oom", "exit:<id>").
    pub fn sequence(&self, cid: &str) -> Vec<String> {
        self.lock()
            .evs
            .iter()
            .filter(|e| e.cid == cid)
            .map(|e| {
                if e.topic == "/tasks/oom" {
                    "oom".to_string()
                } else {
                    format!("exit:{}", e.id)
                }
            })
            .collect()
    }

    pub fn total(&self) -> usize {
        self.lock().evs.len()
    }
}
