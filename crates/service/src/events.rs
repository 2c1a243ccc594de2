//! Publishing task events to containerd.
//!
//! Events go into a bounded queue; one thread forwards them in order over
//! ttrpc to containerd's events service, retrying with backoff for up to
//! the publish bound and reconnecting when the connection broke (containerd
//! restarted). What finally cannot be delivered is logged with its topic
//! and container id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::EventsClient;

use robust_cleanup::logfmt::quote;

const QUEUE: usize = 4096;
/// How long one Forward call may take. containerd answers only after it has
/// handed the event to every subscriber; a call that times out may still
/// have been published, and resending it publishes it twice. So the bound
/// is long enough for a containerd that is slow under load (seen: over 2 s
/// with 8 `ctr run --rm` at a time on 2 busy cores), and short of an outage:
/// a containerd that does not answer within it is retried as if it were away.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// One event to publish.
pub struct Event {
    pub topic: &'static str,
    pub container_id: String,
    pub type_url: &'static str,
    pub payload: Vec<u8>,
    pub at: SystemTime,
    /// How long this event is retried when it is an ordinary one (its
    /// container's `timeouts.publish`); `None`: the publisher's default.
    pub bound: Option<Duration>,
}

impl Event {
    fn new<M: Message>(
        topic: &'static str,
        container_id: &str,
        type_url: &'static str,
        m: &M,
    ) -> Event {
        Event {
            topic,
            container_id: container_id.to_string(),
            type_url,
            payload: m.write_to_bytes().unwrap_or_default(),
            at: SystemTime::now(),
            bound: None,
        }
    }

    /// Retried for `bound` when it is an ordinary event.
    pub fn within(mut self, bound: Duration) -> Event {
        self.bound = Some(bound);
        self
    }
}

/// Builders for each task event, with containerd's type urls.
pub fn task_create(m: &ev::TaskCreate) -> Event {
    Event::new(
        "/tasks/create",
        &m.container_id,
        "containerd.events.TaskCreate",
        m,
    )
}
pub fn task_start(m: &ev::TaskStart) -> Event {
    Event::new(
        "/tasks/start",
        &m.container_id,
        "containerd.events.TaskStart",
        m,
    )
}
pub fn task_exit(m: &ev::TaskExit) -> Event {
    Event::new(
        "/tasks/exit",
        &m.container_id,
        "containerd.events.TaskExit",
        m,
    )
}
pub fn task_delete(m: &ev::TaskDelete) -> Event {
    Event::new(
        "/tasks/delete",
        &m.container_id,
        "containerd.events.TaskDelete",
        m,
    )
}
pub fn task_exec_added(m: &ev::TaskExecAdded) -> Event {
    Event::new(
        "/tasks/exec-added",
        &m.container_id,
        "containerd.events.TaskExecAdded",
        m,
    )
}
pub fn task_exec_started(m: &ev::TaskExecStarted) -> Event {
    Event::new(
        "/tasks/exec-started",
        &m.container_id,
        "containerd.events.TaskExecStarted",
        m,
    )
}
pub fn task_paused(m: &ev::TaskPaused) -> Event {
    Event::new(
        "/tasks/paused",
        &m.container_id,
        "containerd.events.TaskPaused",
        m,
    )
}
pub fn task_resumed(m: &ev::TaskResumed) -> Event {
    Event::new(
        "/tasks/resumed",
        &m.container_id,
        "containerd.events.TaskResumed",
        m,
    )
}
pub fn task_oom(m: &ev::TaskOOM) -> Event {
    Event::new(
        "/tasks/oom",
        &m.container_id,
        "containerd.events.TaskOOM",
        m,
    )
}

pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    MessageField::some(ts)
}

/// Where events go.
#[derive(Clone)]
pub struct Publisher {
    tx: Option<SyncSender<Event>>,
    /// Events queued and not yet delivered or given up on.
    pending: Arc<AtomicUsize>,
}

impl Publisher {
    /// A publisher forwarding to containerd's ttrpc address for `namespace`.
    /// An ordinary event without a bound of its own ([`Event::within`]) is
    /// retried for `bound`. An empty address gives a publisher that drops
    /// events (used by tests and the one-shot actions).
    pub fn start(address: &str, namespace: &str, bound: Duration) -> Publisher {
        let pending = Arc::new(AtomicUsize::new(0));
        if address.is_empty() {
            return Publisher { tx: None, pending };
        }
        let (tx, rx) = sync_channel(QUEUE);
        let address = address.to_string();
        let namespace = namespace.to_string();
        let p2 = pending.clone();
        let spawned = std::thread::Builder::new()
            .name("publisher".into())
            .stack_size(256 * 1024)
            .spawn(move || forward_loop(rx, &address, &namespace, bound, &p2));
        if let Err(e) = spawned {
            log::error!(
                "msg=\"cannot start event publisher; events will be dropped\" error={q_error}",
                q_error = quote(&e)
            );
            return Publisher { tx: None, pending };
        }
        Publisher {
            tx: Some(tx),
            pending,
        }
    }

    /// A publisher that hands every event to the returned receiver
    /// instead of containerd (tests).
    #[cfg(test)]
    pub fn capture() -> (Publisher, Receiver<Event>) {
        let (tx, rx) = sync_channel(QUEUE);
        let publisher = Publisher {
            tx: Some(tx),
            pending: Arc::new(AtomicUsize::new(0)),
        };
        (publisher, rx)
    }

    /// Wait until every queued event was delivered or given up on, for at
    /// most `bound`. Returns how many were still pending.
    pub fn drain(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            let n = self.pending.load(Ordering::Acquire);
            if n == 0 || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn publish(&self, e: Event) {
        let Some(tx) = &self.tx else { return };
        let (topic, id) = (e.topic, e.container_id.clone());
        self.pending.fetch_add(1, Ordering::AcqRel);
        match tx.try_send(e) {
            Ok(()) => {}
            Err(err) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                report_unsent(err, topic, &id);
            }
        }
    }
}

fn report_unsent(err: TrySendError<Event>, topic: &str, id: &str) {
    match err {
        TrySendError::Full(_) => {
            log::warn!("msg=\"event queue full; event dropped\" topic={topic} id={id}")
        }
        TrySendError::Disconnected(_) => {
            log::warn!("msg=\"event publisher stopped; event dropped\" topic={topic} id={id}")
        }
    }
}

/// Connect to containerd's ttrpc address. The socket is connected here, not
/// by `ttrpc::Client::connect`: ttrpc 0.10 leaks the socket of every failed
/// connect, one fd per retry while containerd is down (found by the soak:
/// a pod daemon went from 32 to 350 fds over 1000 cycles with containerd
/// restarts).
fn connect(address: &str) -> Option<EventsClient> {
    use std::os::fd::IntoRawFd;
    let path = address.strip_prefix("unix://").unwrap_or(address);
    let stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => {
            log::debug!(
                "msg=\"connect to containerd events failed\" address={address} error={q_error}",
                q_error = quote(&e)
            );
            return None;
        }
    };
    // The client owns the fd from here and closes it when dropped.
    match ttrpc::Client::new(stream.into_raw_fd()) {
        Ok(c) => Some(EventsClient::new(c)),
        Err(e) => {
            log::warn!(
                "msg=\"cannot set up the events client\" address={address} error={q_error}",
                q_error = quote(&e)
            );
            None
        }
    }
}

fn forward_loop(
    rx: Receiver<Event>,
    address: &str,
    namespace: &str,
    default_bound: Duration,
    pending: &AtomicUsize,
) {
    let mut client: Option<EventsClient> = None;
    for e in rx {
        let bound = e.bound.unwrap_or(default_bound);
        deliver(&mut client, e, address, namespace, bound);
        pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Exits and OOMs are what containerd's state machine cannot do without
/// (F1): they are retried until delivered. Everything else is retried for
/// the publish bound.
fn is_critical(topic: &str) -> bool {
    matches!(topic, "/tasks/exit" | "/tasks/oom")
}

fn deliver(
    client: &mut Option<EventsClient>,
    e: Event,
    address: &str,
    namespace: &str,
    bound: Duration,
) {
    let mut req = ForwardRequest::new();
    let mut env = Envelope::new();
    env.timestamp = timestamp(e.at);
    env.namespace = namespace.to_string();
    env.topic = e.topic.to_string();
    let mut any = Any::new();
    any.type_url = e.type_url.to_string();
    any.value = e.payload;
    env.event = MessageField::some(any);
    req.envelope = MessageField::some(env);

    let started = Instant::now();
    let deadline = (!is_critical(e.topic)).then(|| started + bound);
    let mut next_report = started + Duration::from_secs(60);
    let mut backoff = Duration::from_millis(20);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        if client.is_none() {
            *client = connect(address);
        }
        let sent = match client.as_ref() {
            Some(c) => {
                let mut ctx = ttrpc::context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
                ctx.add(
                    "containerd-namespace-ttrpc".to_string(),
                    namespace.to_string(),
                );
                c.forward(ctx, &req).map_err(|err| err.to_string())
            }
            None => Err("not connected".to_string()),
        };
        let err = match sent {
            Ok(_) => {
                if attempts > 1 {
                    log::info!(
                        "msg=\"event delivered after retries\" topic={} id={} attempts={attempts} took={:?}",
                        e.topic,
                        e.container_id,
                        started.elapsed()
                    );
                }
                return;
            }
            Err(err) => err,
        };
        *client = None;
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            log::warn!(
                "msg=\"event not delivered; giving up\" topic={} id={} attempts={attempts} error={q_error}",
                e.topic,
                e.container_id,
                q_error = quote(&err)
            );
            return;
        }
        if attempts == 1 {
            log::warn!(
                "msg=\"event delivery failed; retrying\" topic={} id={} until={} error={q_error}",
                e.topic,
                e.container_id,
                quote(if deadline.is_some() {
                    "publish bound"
                } else {
                    "delivered"
                }),
                q_error = quote(&err)
            );
        } else if now >= next_report {
            next_report = now + Duration::from_secs(60);
            log::warn!(
                "msg=\"event still not delivered; retrying\" topic={} id={} attempts={attempts} waited={:?} error={q_error}",
                e.topic,
                e.container_id,
                started.elapsed(),
                q_error = quote(&err)
            );
        }
        let left = deadline.map_or(backoff, |d| d.saturating_duration_since(now));
        std::thread::sleep(backoff.min(left));
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_and_ooms_are_retried_until_delivered() {
        assert!(is_critical("/tasks/exit"));
        assert!(is_critical("/tasks/oom"));
        assert!(!is_critical("/tasks/start"));
    }

    /// With nobody listening, a non-critical event is given up after the
    /// bound and the queue moves on; drain reports nothing pending.
    #[test]
    fn ordinary_event_gives_up_after_its_bound() {
        let dir = std::env::temp_dir().join(format!("robust-pub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addr = dir.join("nobody.sock");
        let p = Publisher::start(
            addr.to_str().unwrap(),
            "default",
            Duration::from_millis(200),
        );
        let mut m = ev::TaskStart::new();
        m.container_id = "c1".into();
        p.publish(task_start(&m));
        assert_eq!(p.drain(Duration::from_secs(5)), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An ordinary event is retried for its own container's bound, not for
    /// one set by whichever container was created last.
    #[test]
    fn each_event_keeps_its_containers_bound() {
        let dir = std::env::temp_dir().join(format!("robust-pub3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addr = dir.join("nobody.sock");
        let p = Publisher::start(addr.to_str().unwrap(), "default", Duration::from_secs(60));
        let mut m = ev::TaskStart::new();
        m.container_id = "short".into();
        p.publish(task_start(&m).within(Duration::from_millis(200)));
        assert_eq!(p.drain(Duration::from_secs(5)), 0, "given up after 200ms");
        m.container_id = "long".into();
        p.publish(task_start(&m).within(Duration::from_secs(60)));
        m.container_id = "short2".into();
        p.publish(task_start(&m).within(Duration::from_millis(200)));
        assert_eq!(
            p.drain(Duration::from_secs(1)),
            2,
            "the long one keeps retrying and the short one waits behind it"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exit_waits_in_the_queue_while_containerd_is_away() {
        let dir = std::env::temp_dir().join(format!("robust-pub2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addr = dir.join("nobody.sock");
        let p = Publisher::start(
            addr.to_str().unwrap(),
            "default",
            Duration::from_millis(200),
        );
        let mut m = ev::TaskExit::new();
        m.container_id = "c1".into();
        p.publish(task_exit(&m));
        assert_eq!(
            p.drain(Duration::from_millis(600)),
            1,
            "an exit must not be dropped"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
