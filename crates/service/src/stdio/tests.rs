//! The copies and the console socket, with pipes, FIFOs and a fake
//! runtime end.

use super::copy::*;
use super::*;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The runtime may connect after it started (an attached exec of a
/// sandbox runtime):
/// receive waits for it, through signals, up to its timeout.
#[test]
fn console_socket_waits_for_a_late_sender() {
    let sock = ConsoleSocket::new().unwrap();
    let path = sock.path().to_path_buf();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let fds = [f.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"/dev/null")];
        sendmsg::<()>(
            s.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
    });
    let t = Instant::now();
    let fd = sock.receive("c1", Duration::from_secs(5)).unwrap();
    assert!(fd.as_raw_fd() >= 0);
    assert!(t.elapsed() >= Duration::from_millis(250));
    sender.join().unwrap();
}

/// CloseIO right after the client's last write: everything it wrote
/// reaches the process (a bug once lost the FIFO's unread tail).
#[test]
fn close_stdin_delivers_what_is_still_in_the_fifo() {
    let dir = std::env::temp_dir().join(format!("robust-stdin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("stdin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let stop = Arc::new(eventfd().unwrap());
    let copier = spawn_copy_in(fifo.to_str().unwrap(), File::from(w), stop.clone(), "c1").unwrap();
    // The client writes 100 kB while the process does not read yet: the
    // copy fills the process's pipe and the rest stays in the FIFO. Then
    // the client closes stdin, and only then the process reads.
    let mut wr = OpenOptions::new().write(true).open(&fifo).unwrap();
    wr.write_all(&vec![b'x'; 100_000]).unwrap();
    stop.write(1).unwrap();
    drop(wr);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        File::from(r).read_to_end(&mut got).unwrap();
        got.len()
    });
    copier.join().unwrap();
    assert_eq!(reader.join().unwrap(), 100_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pipe() -> (File, File) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (File::from(r), File::from(w))
}

fn drain(bound: Duration) -> Arc<Drain> {
    Arc::new(Drain::new("c1", "e1", bound).unwrap())
}

/// Reads `r` to EOF on a thread; returns what it got.
fn collect(mut r: File) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    })
}

/// A process that writes and exits loses nothing, and its copy ends at
/// EOF, long before the drain bound.
#[test]
fn output_written_before_the_exit_is_all_delivered() {
    let (src_r, mut src_w) = pipe();
    let (dst_r, dst_w) = pipe();
    let d = drain(Duration::from_secs(30));
    let copier = std::thread::spawn({
        let d = d.clone();
        move || copy_out(src_r, dst_w, &d)
    });
    let reader = collect(dst_r);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    src_w.write_all(&data).unwrap();
    drop(src_w); // the process exits: EOF
    d.exited.write(1).unwrap();
    let t = Instant::now();
    assert_eq!(copier.join().unwrap(), CopyEnd::Done);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(reader.join().unwrap(), data);
    assert!(!d.warned.load(Ordering::Relaxed));
}

/// A background child keeps the pipe open after the exit: the copy
/// delivers what was written, then stops at the drain bound, not at
/// EOF, and closes its destination.
#[test]
fn an_open_pipe_after_the_exit_is_drained_for_the_bound_only() {
    let bound = Duration::from_millis(400);
    let (src_r, mut src_w) = pipe();
    let (dst_r, dst_w) = pipe();
    let d = drain(bound);
    let copier = std::thread::spawn({
        let d = d.clone();
        move || {
            let end = copy_out(src_r, dst_w, &d);
            (end, Instant::now())
        }
    });
    let reader = collect(dst_r);
    src_w.write_all(b"before the exit\n").unwrap();
    let exited = Instant::now();
    d.exited.write(1).unwrap();
    let (end, at) = copier.join().unwrap();
    assert_eq!(end, CopyEnd::Bound);
    let took = at.duration_since(exited);
    assert!(took >= bound, "stopped {took:?} after the exit");
    assert!(took < bound + Duration::from_secs(2), "{took:?}");
    // The destination is closed: the reader saw EOF and all the data.
    assert_eq!(reader.join().unwrap(), b"before the exit\n");
    drop(src_w);
}

/// Without an exit there is no bound: a source held open keeps the copy
/// going; the bound only counts from the exit.
#[test]
fn the_bound_counts_from_the_exit() {
    let bound = Duration::from_millis(300);
    let (src_r, mut src_w) = pipe();
    let (dst_r, dst_w) = pipe();
    let d = drain(bound);
    let copier = std::thread::spawn({
        let d = d.clone();
        move || (copy_out(src_r, dst_w, &d), Instant::now())
    });
    let reader = collect(dst_r);
    // Longer than the bound, with no exit: the copy still runs and
    // still copies.
    std::thread::sleep(bound * 3);
    assert!(!copier.is_finished());
    src_w.write_all(b"late").unwrap();
    let exited = Instant::now();
    d.exited.write(1).unwrap();
    let (end, at) = copier.join().unwrap();
    assert_eq!(end, CopyEnd::Bound);
    assert!(at.duration_since(exited) >= bound);
    assert_eq!(reader.join().unwrap(), b"late");
}

/// A destination nobody reads (a client that went away) holds the copy
/// only until the drain bound after the exit.
#[test]
fn a_destination_nobody_reads_is_given_up_at_the_bound() {
    let bound = Duration::from_millis(300);
    let (src_r, mut src_w) = pipe();
    let (_dst_r, dst_w) = pipe();
    let d = drain(bound);
    let copier = std::thread::spawn({
        let d = d.clone();
        move || copy_out(src_r, dst_w, &d)
    });
    // More than both pipe buffers: the copy blocks on its destination.
    let writer = std::thread::spawn(move || {
        let _ = src_w.write_all(&vec![b'x'; 256 * 1024]);
    });
    d.exited.write(1).unwrap();
    let t = Instant::now();
    assert_eq!(copier.join().unwrap(), CopyEnd::Bound);
    assert!(t.elapsed() < bound + Duration::from_secs(2));
    // The copy closed its source: the writer is not left blocked.
    writer.join().unwrap();
}

/// stdout and stderr of one process hitting the bound log one line.
#[test]
fn the_bound_is_reported_once_per_process() {
    let d = drain(Duration::from_millis(100));
    let (a_r, _a_w) = pipe();
    let (b_r, _b_w) = pipe();
    let (_x, out_a) = pipe();
    let (_y, out_b) = pipe();
    let h1 = spawn_copy_out(a_r, out_a, d.clone()).unwrap();
    let h2 = spawn_copy_out(b_r, out_b, d.clone()).unwrap();
    d.exited.write(1).unwrap();
    h1.join().unwrap();
    h2.join().unwrap();
    assert!(d.warned.load(Ordering::Relaxed));
}

/// A process without a terminal is resized as a no-op.
#[test]
fn resize_without_a_terminal_is_a_no_op() {
    let paths = StdioPaths::default();
    let p = prepare(&paths, "c1", "", Duration::from_secs(1)).unwrap();
    let io = p.finish(&paths, "c1", Duration::from_secs(1)).unwrap();
    assert!(!io.resize(80, 24).unwrap());
    io.finish_after_exit();
    assert!(!io.resize(80, 24).unwrap());
}

#[test]
fn console_socket_gives_up_after_its_timeout() {
    let sock = ConsoleSocket::new().unwrap();
    let t = Instant::now();
    let err = sock.receive("c1", Duration::from_millis(200)).unwrap_err();
    assert!(err.to_string().contains("sent no terminal"), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(150));
}

/// A client that opens the FIFO's read end late (containerd's fifo library
/// opens it from a goroutine) still gets what a short process wrote: the
/// copy ends at EOF before any reader, and the shim keeps the FIFO open
/// until the bytes in it are read.
#[test]
fn a_late_reader_of_the_fifo_still_gets_the_output() {
    let dir = std::env::temp_dir().join(format!("robust-late-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("stdout");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (src_r, mut src_w) = pipe();
    let dst = super::open_output(fifo.to_str().unwrap()).unwrap();
    let d = drain(Duration::from_secs(5));
    src_w.write_all(b"/dev/pts/0\r\n").unwrap();
    drop(src_w); // the process exited
    let copier = std::thread::spawn({
        let d = d.clone();
        move || copy_out(src_r, dst, &d)
    });
    std::thread::sleep(Duration::from_millis(200)); // the client is slow to open
                                                    // Opened non-blocking so a FIFO nobody holds reads as EOF (a failure,
                                                    // not a hang), then read blocking to EOF.
    let mut r = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    nix::fcntl::fcntl(
        r.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(copier.join().unwrap(), CopyEnd::Done);
    assert_eq!(got, b"/dev/pts/0\r\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// All copies share one loop: a copy whose destination nobody reads waits
/// without holding up another process's copy.
#[test]
fn a_stuck_copy_does_not_hold_up_the_others() {
    let (stuck_r, mut stuck_w) = pipe();
    let (_nobody, stuck_dst) = pipe();
    let d1 = drain(Duration::from_millis(300));
    let stuck = spawn_copy_out(stuck_r, stuck_dst, d1.clone()).unwrap();
    // Fills both pipes; the copy then waits on its destination.
    let filler = std::thread::spawn(move || {
        let _ = stuck_w.write_all(&vec![b'x'; 256 * 1024]);
    });
    std::thread::sleep(Duration::from_millis(100));

    let (src_r, mut src_w) = pipe();
    let (dst_r, dst_w) = pipe();
    let d2 = drain(Duration::from_secs(30));
    let other = spawn_copy_out(src_r, dst_w, d2.clone()).unwrap();
    let reader = collect(dst_r);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    src_w.write_all(&data).unwrap();
    drop(src_w);
    assert_eq!(other.join().unwrap(), CopyEnd::Done);
    assert_eq!(reader.join().unwrap(), data);

    d1.exited.write(1).unwrap();
    assert_eq!(stuck.join().unwrap(), CopyEnd::Bound);
    filler.join().unwrap();
}

/// A terminal is no pipe: its output is copied through a buffer (splice
/// refuses it), and the copy ends when the last slave closes.
#[test]
fn terminal_output_is_copied_and_ends_when_the_slave_closes() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let master = File::from(pty.master);
    let mut slave = File::from(pty.slave);
    let (dst_r, dst_w) = pipe();
    let d = drain(Duration::from_secs(30));
    let copier = spawn_copy_out(master, dst_w, d.clone()).unwrap();
    let reader = collect(dst_r);
    slave.write_all(b"hello from the tty\n").unwrap();
    drop(slave);
    assert_eq!(copier.join().unwrap(), CopyEnd::Done);
    let got = reader.join().unwrap();
    // The line discipline turns \n into \r\n.
    assert_eq!(got, b"hello from the tty\r\n");
}

/// stdin into a terminal: what the client writes reaches the process
/// reading the slave.
#[test]
fn stdin_reaches_a_terminal() {
    let dir = std::env::temp_dir().join(format!("robust-stdin-tty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("stdin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let master = File::from(pty.master);
    let mut slave = File::from(pty.slave);
    let stop = Arc::new(eventfd().unwrap());
    let copier = spawn_copy_in(fifo.to_str().unwrap(), master, stop.clone(), "c1").unwrap();
    let mut wr = OpenOptions::new().write(true).open(&fifo).unwrap();
    wr.write_all(b"typed\n").unwrap();
    let mut got = [0u8; 6];
    slave.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"typed\n");
    stop.write(1).unwrap();
    drop(wr);
    copier.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `file://` log: a regular file opened for appending (epoll refuses it,
/// splice refuses O_APPEND), copied through the buffer.
#[test]
fn output_to_a_file_uri_is_appended() {
    let dir = std::env::temp_dir().join(format!("robust-file-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sub").join("out.log");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"old\n").unwrap();
    let dst = super::open_output(&format!("file://{}", path.display())).unwrap();
    let (src_r, mut src_w) = pipe();
    let d = drain(Duration::from_secs(30));
    let copier = spawn_copy_out(src_r, dst, d).unwrap();
    src_w.write_all(b"new line\n").unwrap();
    drop(src_w);
    assert_eq!(copier.join().unwrap(), CopyEnd::Done);
    assert_eq!(std::fs::read(&path).unwrap(), b"old\nnew line\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CloseIO before any writer opened the FIFO: the process's stdin is
/// closed at once (it reads EOF).
#[test]
fn close_stdin_without_a_writer_closes_the_process_stdin() {
    let dir = std::env::temp_dir().join(format!("robust-stdin-none-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("stdin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (r, w) = pipe();
    let stop = Arc::new(eventfd().unwrap());
    let copier = spawn_copy_in(fifo.to_str().unwrap(), w, stop.clone(), "c1").unwrap();
    let reader = collect(r);
    std::thread::sleep(Duration::from_millis(100));
    stop.write(1).unwrap();
    copier.join().unwrap();
    assert_eq!(reader.join().unwrap(), b"");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Until a client opens the stdin FIFO, reading it says EOF, which means
/// nothing: the process's stdin stays open, and the FIFO keeps its reader
/// (a client opening it later does not wait, and its bytes go through).
#[test]
fn stdin_waits_for_its_writer() {
    let dir = std::env::temp_dir().join(format!("robust-stdin-wait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("stdin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (r, w) = pipe();
    let stop = Arc::new(eventfd().unwrap());
    let copier = spawn_copy_in(fifo.to_str().unwrap(), w, stop.clone(), "c1").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The process's end: nothing to read, and no EOF.
    nix::fcntl::fcntl(
        r.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut buf = [0u8; 16];
    let e = (&r).read(&mut buf).unwrap_err();
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::WouldBlock,
        "stdin closed early"
    );
    // A non-blocking open for writing fails (ENXIO) unless a reader holds
    // the FIFO: the copy still does.
    let mut wr = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("the copy let go of the stdin FIFO");
    wr.write_all(b"late\n").unwrap();
    drop(wr);
    nix::fcntl::fcntl(
        r.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    let reader = collect(r);
    copier.join().unwrap();
    assert_eq!(reader.join().unwrap(), b"late\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO at `dir/name`, and a reader of it opened now (non-blocking, so
/// it never waits for the shim, then blocking) that reads to EOF on a
/// thread: EOF comes once the shim's copy closed its end.
fn fifo_reader(dir: &Path, name: &str) -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let fifo = dir.join(name);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let path = fifo.to_str().unwrap().to_string();
    (path, {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // The shim opens it read-write first: wait for that.
            std::thread::sleep(Duration::from_millis(100));
            let r = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap();
            nix::fcntl::fcntl(
                r.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
            )
            .unwrap();
            let mut got = Vec::new();
            File::from(OwnedFd::from(r)).read_to_end(&mut got).unwrap();
            got
        })
    })
}

/// A runtime that takes a container's stdio at its start (runsc, an app
/// container of a pod): the pipe ends kept at create are the ones whose
/// other ends the loop's copies serve, so what the process writes after
/// the start reaches containerd's FIFOs, and stdin reaches the process.
#[test]
fn stdio_kept_for_the_start_is_copied_after_it() {
    let dir = std::env::temp_dir().join(format!("robust-kept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (stdout, out) = fifo_reader(&dir, "stdout");
    let (stderr, err) = fifo_reader(&dir, "stderr");
    let stdin_fifo = dir.join("stdin");
    nix::unistd::mkfifo(&stdin_fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let paths = StdioPaths {
        stdin: stdin_fifo.to_str().unwrap().to_string(),
        stdout,
        stderr,
        terminal: false,
    };
    let mut prepared = prepare(&paths, "c1", "", Duration::from_secs(30)).unwrap();
    prepared.keep_for_start().unwrap();
    assert!(
        prepared.runtime.stdin.is_none()
            && prepared.runtime.stdout.is_none()
            && prepared.runtime.stderr.is_none(),
        "nothing goes to the create"
    );
    let io = prepared
        .finish(&paths, "c1", Duration::from_secs(1))
        .unwrap();
    // The start takes them, once.
    let kept = io.take_for_start().expect("kept for the start");
    assert!(io.take_for_start().is_none());
    let mut client_in = OpenOptions::new().write(true).open(&stdin_fifo).unwrap();
    client_in.write_all(b"ping\n").unwrap();
    drop(client_in);
    let mut got_in = Vec::new();
    File::from(kept.stdin.unwrap())
        .read_to_end(&mut got_in)
        .unwrap();
    assert_eq!(got_in, b"ping\n");
    File::from(kept.stdout.unwrap())
        .write_all(b"out\n")
        .unwrap();
    File::from(kept.stderr.unwrap())
        .write_all(b"err\n")
        .unwrap();
    // The process's ends are closed (the files above dropped): EOF.
    io.finish_after_exit();
    assert_eq!(out.join().unwrap(), b"out\n");
    assert_eq!(err.join().unwrap(), b"err\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A process whose stdio was kept for a start that never came (its start
/// failed, or it was killed while created): its exit closes the kept ends,
/// so the output copies end at EOF, not at the drain bound.
#[test]
fn stdio_kept_for_a_start_that_never_came_ends_at_the_exit() {
    let dir = std::env::temp_dir().join(format!("robust-kept2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (stdout, out) = fifo_reader(&dir, "stdout");
    let paths = StdioPaths {
        stdout,
        ..Default::default()
    };
    let mut prepared = prepare(&paths, "c1", "", Duration::from_secs(30)).unwrap();
    prepared.keep_for_start().unwrap();
    let io = prepared
        .finish(&paths, "c1", Duration::from_secs(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    io.finish_after_exit();
    assert_eq!(out.join().unwrap(), b"");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "ended at EOF, not at the 30 s bound: {:?}",
        t.elapsed()
    );
    assert!(io.take_for_start().is_none(), "released at the exit");
    std::fs::remove_dir_all(&dir).unwrap();
}
