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

/// A one-connection fake of containerd's events service: answers each
/// Forward with `answer` (None: never answers), and hands what it got
/// to the test.
fn fake_containerd(
    sock: &std::path::Path,
    answer: Option<ttrpc::Code>,
) -> std::sync::mpsc::Receiver<(String, String, Vec<String>, ForwardRequest)> {
    use std::io::{Read, Write};
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut c, _)) = listener.accept() else {
            return;
        };
        loop {
            let mut head = [0u8; MESSAGE_HEADER_LENGTH];
            if c.read_exact(&mut head).is_err() {
                return;
            }
            let mh = MessageHeader::from(head);
            let mut body = vec![0u8; mh.length as usize];
            c.read_exact(&mut body).unwrap();
            let req = ttrpc::Request::decode(&body).unwrap();
            let meta = req
                .metadata
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            let fwd = ForwardRequest::parse_from_bytes(&req.payload).unwrap();
            let _ = tx.send((req.service.clone(), req.method.clone(), meta, fwd));
            let Some(code) = answer else { continue };
            let mut res = ttrpc::Response::new();
            res.status = MessageField::some(ttrpc::get_status(code, "nope"));
            let body = res.encode().unwrap();
            let mut frame: Vec<u8> =
                MessageHeader::new_response(mh.stream_id, body.len() as u32).into();
            frame.extend_from_slice(&body);
            c.write_all(&frame).unwrap();
        }
    });
    rx
}

fn forward_request(id: &str) -> ForwardRequest {
    let mut m = ev::TaskExit::new();
    m.container_id = id.into();
    let e = task_exit(&m);
    let mut env = Envelope::new();
    env.topic = e.topic.to_string();
    env.namespace = "default".into();
    let mut req = ForwardRequest::new();
    req.envelope = MessageField::some(env);
    req
}

#[test]
fn forwarder_speaks_ttrpc_to_containerd() {
    let dir = std::env::temp_dir().join(format!("robust-fwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("c.sock");
    let got = fake_containerd(&sock, Some(ttrpc::Code::OK));
    let mut f = Forwarder::connect(sock.to_str().unwrap()).unwrap();
    for id in ["c1", "c2"] {
        f.forward(&forward_request(id), "k8s.io", Duration::from_secs(5))
            .unwrap();
        let (service, method, meta, fwd) = got.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(service, EVENTS_SERVICE);
        assert_eq!(method, "Forward");
        assert_eq!(meta, vec!["containerd-namespace-ttrpc=k8s.io".to_string()]);
        assert_eq!(fwd.envelope.topic, "/tasks/exit");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn forwarder_reports_containerds_error_and_its_silence() {
    let dir = std::env::temp_dir().join(format!("robust-fwd2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("err.sock");
    let _got = fake_containerd(&sock, Some(ttrpc::Code::UNAVAILABLE));
    let mut f = Forwarder::connect(sock.to_str().unwrap()).unwrap();
    let err = f
        .forward(&forward_request("c1"), "default", Duration::from_secs(5))
        .unwrap_err();
    assert!(err.contains("UNAVAILABLE") && err.contains("nope"), "{err}");

    let sock = dir.join("mute.sock");
    let _got = fake_containerd(&sock, None);
    let mut f = Forwarder::connect(sock.to_str().unwrap()).unwrap();
    let t = Instant::now();
    let err = f
        .forward(
            &forward_request("c1"),
            "default",
            Duration::from_millis(300),
        )
        .unwrap_err();
    assert!(err.starts_with("receive"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    std::fs::remove_dir_all(&dir).unwrap();
}
