//! Publishing task events to containerd.
//!
//! Events go into a bounded queue; one thread forwards them in order over
//! ttrpc to containerd's events service, retrying with backoff for up to
//! the publish bound and reconnecting when the connection broke (containerd
//! restarted). What finally cannot be delivered is logged with its topic
//! and container id.
//!
//! The thread speaks ttrpc itself (`Forwarder`): one request at a time,
//! written and then read back on the calling thread with the socket's
//! timeouts, where ttrpc's client would add a reader and a writer thread.

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
use ttrpc::proto::{Codec, MessageHeader, MESSAGE_HEADER_LENGTH, MESSAGE_TYPE_RESPONSE};

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

    /// Events queued and not yet delivered or given up on.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
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

/// A ttrpc connection to containerd's events service that forwards one
/// event at a time on the calling thread.
struct Forwarder {
    stream: std::os::unix::net::UnixStream,
    /// Client streams are odd, and each request takes a new one.
    next_stream: u32,
}

const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";

impl Forwarder {
    /// Connect to containerd's ttrpc address.
    fn connect(address: &str) -> Option<Forwarder> {
        let path = address.strip_prefix("unix://").unwrap_or(address);
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(stream) => Some(Forwarder {
                stream,
                next_stream: 1,
            }),
            Err(e) => {
                log::debug!(
                    "msg=\"connect to containerd events failed\" address={address} error={q_error}",
                    q_error = quote(&e)
                );
                None
            }
        }
    }

    /// Send `req` and wait up to `timeout` for containerd's answer.
    fn forward(
        &mut self,
        req: &ForwardRequest,
        namespace: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        use std::io::{Read, Write};
        let stream_id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        let mut kv = ttrpc::proto::KeyValue::new();
        kv.key = "containerd-namespace-ttrpc".to_string();
        kv.value = namespace.to_string();
        let mut r = ttrpc::Request::new();
        r.service = EVENTS_SERVICE.to_string();
        r.method = "Forward".to_string();
        r.timeout_nano = timeout.as_nanos().min(i64::MAX as u128) as i64;
        r.metadata = vec![kv];
        r.payload = req.write_to_bytes().map_err(|e| format!("encode: {e}"))?;
        let body = r.encode().map_err(|e| format!("encode: {e}"))?;
        let mut frame: Vec<u8> = MessageHeader::new_request(stream_id, body.len() as u32).into();
        frame.extend_from_slice(&body);

        let deadline = Instant::now() + timeout;
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        let io_err = |what: &str, e: std::io::Error| format!("{what}: {e}");
        self.stream
            .set_write_timeout(Some(left()))
            .map_err(|e| io_err("set timeout", e))?;
        self.stream
            .write_all(&frame)
            .map_err(|e| io_err("send", e))?;
        loop {
            self.stream
                .set_read_timeout(Some(left()))
                .map_err(|e| io_err("set timeout", e))?;
            let mut head = [0u8; MESSAGE_HEADER_LENGTH];
            self.stream
                .read_exact(&mut head)
                .map_err(|e| io_err("receive", e))?;
            let mh = MessageHeader::from(head);
            if mh.length as usize > ttrpc::proto::MESSAGE_LENGTH_MAX {
                return Err(format!("receive: a {}-byte message", mh.length));
            }
            let mut body = vec![0u8; mh.length as usize];
            self.stream
                .set_read_timeout(Some(left()))
                .map_err(|e| io_err("set timeout", e))?;
            self.stream
                .read_exact(&mut body)
                .map_err(|e| io_err("receive", e))?;
            // Only our request is in flight; anything else is not ours.
            if mh.type_ != MESSAGE_TYPE_RESPONSE || mh.stream_id != stream_id {
                continue;
            }
            let res = ttrpc::Response::decode(&body).map_err(|e| format!("decode: {e}"))?;
            return match res.status.as_ref() {
                Some(st) if st.code() != ttrpc::Code::OK => {
                    Err(format!("{:?}: {}", st.code(), st.message()))
                }
                _ => Ok(()),
            };
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
    let mut client: Option<Forwarder> = None;
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
    client: &mut Option<Forwarder>,
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
            *client = Forwarder::connect(address);
        }
        let sent = match client.as_mut() {
            Some(c) => c.forward(&req, namespace, FORWARD_TIMEOUT),
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
mod tests;
