//! The loop with tasks of its own: readiness, deadlines, interest changes,
//! spawned tasks, a panicking task, and `run_until`.

use super::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

/// A loop run by a thread of the test; stopped when the guard drops.
struct Running {
    lp: EventLoop,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn new() -> Running {
        let lp = EventLoop::new().unwrap();
        assert!(lp.claim());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (lp2, stop2) = (lp.clone(), stop.clone());
        let thread =
            std::thread::spawn(move || lp2.run_until(|| stop2.load(Ordering::SeqCst), None));
        Running {
            lp,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.lp.wake();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Echoes what it reads back to its socket, and ends at EOF.
struct Echo {
    sock: UnixStream,
    tx: mpsc::Sender<&'static str>,
}

impl Task for Echo {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        match cx.why() {
            Why::Start => {
                self.sock.set_nonblocking(true).unwrap();
                cx.watch(0, self.sock.as_fd(), Interest::Read).unwrap();
                Poll::Pending
            }
            Why::Ready(0) => {
                let mut buf = [0u8; 64];
                match self.sock.read(&mut buf) {
                    Ok(0) => {
                        self.tx.send("eof").unwrap();
                        Poll::Done
                    }
                    Ok(n) => {
                        self.sock.write_all(&buf[..n]).unwrap();
                        Poll::Pending
                    }
                    Err(_) => Poll::Pending,
                }
            }
            _ => Poll::Pending,
        }
    }
}

#[test]
fn a_ready_fd_runs_its_task_and_done_drops_it() {
    let r = Running::new();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let (tx, rx) = mpsc::channel();
    r.lp.add(Box::new(Echo { sock: theirs, tx })).unwrap();
    ours.write_all(b"ping").unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = [0u8; 4];
    ours.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    drop(ours.try_clone().unwrap());
    ours.shutdown(std::net::Shutdown::Both).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "eof");
    // Dropped, with its fd: the loop holds nothing of it.
    let t = Instant::now();
    while r.lp.task_count() != 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(r.lp.task_count(), 0);
}

/// Fires at its deadlines, three times, then ends.
struct Ticks {
    left: u32,
    tx: mpsc::Sender<Instant>,
}

impl Task for Ticks {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        if cx.why() == Why::Deadline {
            self.tx.send(cx.now()).unwrap();
            self.left -= 1;
            if self.left == 0 {
                return Poll::Done;
            }
        }
        cx.set_deadline(Some(cx.now() + Duration::from_millis(50)));
        Poll::Pending
    }
}

#[test]
fn deadlines_fire_in_time_and_not_before() {
    let r = Running::new();
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    r.lp.add(Box::new(Ticks { left: 3, tx })).unwrap();
    let mut last = t0;
    for _ in 0..3 {
        let at = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            at.duration_since(last) >= Duration::from_millis(49),
            "{:?}",
            at - last
        );
        last = at;
    }
    assert!(last.duration_since(t0) < Duration::from_secs(3));
}

/// Panics on its first event; the loop drops it and goes on serving.
struct Bomb {
    sock: UnixStream,
}

impl Task for Bomb {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        if cx.why() == Why::Start {
            cx.watch(0, self.sock.as_fd(), Interest::Read).unwrap();
            return Poll::Pending;
        }
        panic!("a bug in one task");
    }
}

#[test]
fn a_panicking_task_is_dropped_and_the_loop_goes_on() {
    let r = Running::new();
    let (mut a, b) = UnixStream::pair().unwrap();
    r.lp.add(Box::new(Bomb { sock: b })).unwrap();
    a.write_all(b"x").unwrap();
    // The bomb's socket is closed when it is dropped: EOF (or a reset: it
    // closed with our byte unread).
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    match a.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the panicked task's socket is still open: {other:?}"),
    }
    // Another task still runs.
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let (tx, _rx) = mpsc::channel();
    r.lp.add(Box::new(Echo { sock: theirs, tx })).unwrap();
    ours.write_all(b"ok").unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = [0u8; 2];
    ours.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ok");
}

/// Spawns an Echo for a socket it is given, then ends.
struct Spawner {
    sock: Option<UnixStream>,
    tx: mpsc::Sender<&'static str>,
}

impl Task for Spawner {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        if let Some(sock) = self.sock.take() {
            cx.spawn(Box::new(Echo {
                sock,
                tx: self.tx.clone(),
            }));
        }
        Poll::Done
    }
}

#[test]
fn a_spawned_task_starts_right_away() {
    let r = Running::new();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let (tx, _rx) = mpsc::channel();
    r.lp.add(Box::new(Spawner {
        sock: Some(theirs),
        tx,
    }))
    .unwrap();
    ours.write_all(b"hi").unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = [0u8; 2];
    ours.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi");
}

/// A hung-up fd the task no longer watches does not wake the loop: after
/// the peer closes, the task unwatches it and nothing runs it again.
struct Unwatcher {
    sock: UnixStream,
    runs: Arc<std::sync::atomic::AtomicUsize>,
}

impl Task for Unwatcher {
    fn run(&mut self, cx: &mut Cx<'_>) -> Poll {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match cx.why() {
            Why::Start => cx.watch(0, self.sock.as_fd(), Interest::Read).unwrap(),
            _ => cx.unwatch(0),
        }
        Poll::Pending
    }
}

#[test]
fn an_unwatched_fd_that_hung_up_does_not_spin() {
    let r = Running::new();
    let (a, b) = UnixStream::pair().unwrap();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    r.lp.add(Box::new(Unwatcher {
        sock: b,
        runs: runs.clone(),
    }))
    .unwrap();
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "start, then one hangup");
}

#[test]
fn run_until_returns_when_woken_and_done() {
    let lp = EventLoop::new().unwrap();
    assert!(lp.claim());
    assert!(!lp.claim(), "one runner");
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (lp2, flag2) = (lp.clone(), flag.clone());
    let t = std::thread::spawn(move || {
        let t0 = Instant::now();
        lp2.run_until(|| flag2.load(Ordering::SeqCst), None);
        t0.elapsed()
    });
    std::thread::sleep(Duration::from_millis(100));
    flag.store(true, Ordering::SeqCst);
    lp.wake();
    let took = t.join().unwrap();
    assert!(took < Duration::from_secs(5));
    // With a tick, the condition is asked without any wake-up.
    let t0 = Instant::now();
    let mut n = 0;
    lp.run_until(
        || {
            n += 1;
            n > 3
        },
        Some(Duration::from_millis(10)),
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
}
