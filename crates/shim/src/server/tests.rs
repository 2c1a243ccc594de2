//! The server against ttrpc's own client and raw frames: answers, a call
//! that blocks, unknown methods, panics, bad and oversized messages.

use super::*;
use std::io::Write;
use std::sync::mpsc;

/// A server on its own loop and socket; stopped when dropped.
struct TestServer {
    path: std::path::PathBuf,
    lp: EventLoop,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    release: mpsc::Sender<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.lp.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

enum Behaviour {
    Echo,
    /// Waits until the test releases it, then echoes.
    Block(Arc<Mutex<mpsc::Receiver<()>>>),
    Panic,
    Fail,
}

struct Fake(Behaviour);

impl MethodHandler for Fake {
    fn handler(&self, ctx: TtrpcContext, req: Request) -> ttrpc::Result<()> {
        match &self.0 {
            Behaviour::Echo => {}
            Behaviour::Block(rx) => {
                let _ = rx.lock().unwrap().recv();
            }
            Behaviour::Panic => panic!("a bug in one call"),
            Behaviour::Fail => {
                return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                    Code::NOT_FOUND,
                    "no such thing",
                )))
            }
        }
        let mut res = Response::new();
        res.set_status(ttrpc::get_status(Code::OK, ""));
        res.payload = req.payload;
        ctx.respond(ctx.mh.stream_id, res)
    }
}

fn start_server(name: &str) -> TestServer {
    let path = std::env::temp_dir().join(format!("robust-srv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let (release, rx) = mpsc::channel();
    let rx = Arc::new(Mutex::new(rx));
    let mut methods: Methods = HashMap::new();
    methods.insert("/t.T/Echo".into(), Box::new(Fake(Behaviour::Echo)));
    methods.insert("/t.T/Block".into(), Box::new(Fake(Behaviour::Block(rx))));
    methods.insert("/t.T/Panic".into(), Box::new(Fake(Behaviour::Panic)));
    methods.insert("/t.T/Fail".into(), Box::new(Fake(Behaviour::Fail)));
    let lp = EventLoop::new().unwrap();
    assert!(lp.claim());
    let w = lp.clone();
    let pool = Pool::new(1, pool::MAX_THREADS, Box::new(move || w.wake()));
    serve(&lp, OwnedFd::from(listener), methods, pool).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (lp2, stop2) = (lp.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        lp2.run_until(|| stop2.load(std::sync::atomic::Ordering::SeqCst), None)
    });
    TestServer {
        path,
        lp,
        stop,
        thread: Some(thread),
        release,
    }
}

fn client(s: &TestServer) -> ttrpc::Client {
    ttrpc::Client::connect(&format!("unix://{}", s.path.display())).unwrap()
}

fn request(method: &str, payload: &[u8]) -> Request {
    let mut r = Request::new();
    r.service = "t.T".into();
    r.method = method.into();
    r.payload = payload.to_vec();
    r.timeout_nano = Duration::from_secs(10).as_nanos() as i64;
    r
}

fn code_of(e: ttrpc::Error) -> Code {
    match e {
        ttrpc::Error::RpcStatus(s) => s.code(),
        other => panic!("not a status: {other:?}"),
    }
}

#[test]
fn calls_are_answered_on_their_stream() {
    let s = start_server("echo");
    let c = client(&s);
    for i in 0..5u8 {
        let res = c.request(request("Echo", &[i; 3])).unwrap();
        assert_eq!(res.payload, vec![i; 3]);
    }
}

/// A call that hangs (a runtime that does not answer) holds up no other
/// call on the same connection, nor on another.
#[test]
fn a_blocked_call_holds_up_no_other() {
    let s = start_server("block");
    let c = client(&s);
    let c2 = c.clone();
    let blocked = std::thread::spawn(move || c2.request(request("Block", b"late")));
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    assert_eq!(c.request(request("Echo", b"a")).unwrap().payload, b"a");
    let other = client(&s);
    assert_eq!(other.request(request("Echo", b"b")).unwrap().payload, b"b");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!blocked.is_finished());
    s.release.send(()).unwrap();
    assert_eq!(blocked.join().unwrap().unwrap().payload, b"late");
}

#[test]
fn unknown_methods_fail_and_errors_keep_their_code() {
    let s = start_server("unknown");
    let c = client(&s);
    assert_eq!(
        code_of(c.request(request("Nope", b"")).unwrap_err()),
        Code::UNIMPLEMENTED
    );
    assert_eq!(
        code_of(c.request(request("Fail", b"")).unwrap_err()),
        Code::NOT_FOUND
    );
    assert_eq!(c.request(request("Echo", b"x")).unwrap().payload, b"x");
}

/// A panic fails its own call (INTERNAL); the connection goes on.
#[test]
fn a_panic_fails_its_call_only() {
    let s = start_server("panic");
    let c = client(&s);
    assert_eq!(
        code_of(c.request(request("Panic", b"")).unwrap_err()),
        Code::INTERNAL
    );
    assert_eq!(c.request(request("Echo", b"y")).unwrap().payload, b"y");
}

fn raw_frame(stream: u32, body: &[u8]) -> Vec<u8> {
    let mut f: Vec<u8> = MessageHeader::new_request(stream, body.len() as u32).into();
    f.extend_from_slice(body);
    f
}

fn read_response(c: &mut UnixStream) -> (MessageHeader, Response) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; MESSAGE_HEADER_LENGTH];
    c.read_exact(&mut head).unwrap();
    let mh = MessageHeader::from(head);
    let mut body = vec![0u8; mh.length as usize];
    c.read_exact(&mut body).unwrap();
    (mh, Response::decode(&body).unwrap())
}

/// Bytes that are no request get INVALID_ARGUMENT; a frame split across
/// writes is put together; the connection goes on.
#[test]
fn bad_and_split_frames() {
    let s = start_server("raw");
    let mut c = UnixStream::connect(&s.path).unwrap();
    c.write_all(&raw_frame(1, &[0xff, 0xff, 0xff])).unwrap();
    let (mh, res) = read_response(&mut c);
    assert_eq!(mh.stream_id, 1);
    assert_eq!(res.status.code(), Code::INVALID_ARGUMENT);

    let body = request("Echo", b"split").encode().unwrap();
    let frame = raw_frame(3, &body);
    c.write_all(&frame[..4]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.write_all(&frame[4..]).unwrap();
    let (mh, res) = read_response(&mut c);
    assert_eq!(mh.stream_id, 3);
    assert_eq!(res.payload, b"split");
}

/// A frame over ttrpc's size limit closes the connection.
#[test]
fn an_oversized_frame_closes_the_connection() {
    let s = start_server("big");
    let mut c = UnixStream::connect(&s.path).unwrap();
    let mh = MessageHeader::new_request(1, (MESSAGE_LENGTH_MAX + 1) as u32);
    let head: Vec<u8> = mh.into();
    c.write_all(&head).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
}

/// A client that leaves with a call in flight: the late answer goes
/// nowhere and the server goes on.
#[test]
fn a_client_that_leaves_mid_call() {
    let s = start_server("leave");
    {
        let mut c = UnixStream::connect(&s.path).unwrap();
        c.write_all(&raw_frame(1, &request("Block", b"").encode().unwrap()))
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    s.release.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let c = client(&s);
    assert_eq!(c.request(request("Echo", b"z")).unwrap().payload, b"z");
}
