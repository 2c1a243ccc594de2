//! The shim daemon: serves the Task API (v2 and v3 names) over ttrpc until
//! containerd shuts it down or it is told to stop by a signal.
//!
//! Its main thread runs the event loop (`robust_service::event_loop`): the
//! ttrpc listener and connections, the reaper's SIGCHLD, the OOM watches,
//! every stdio copy and the signals. Other threads: the RPC workers (one
//! idle, one more per call in flight), the exit and OOM handlers and the
//! event publisher; `docs/benchmarks.md` lists them.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use robust_cleanup::logfmt::quote;
use robust_reaper::Reaper;
use robust_service::event_loop::{self, OnReadable};
use robust_service::events::Publisher;
use robust_service::Service;

use crate::args::Args;
use crate::logger;
use crate::server::{self, pool::Pool};
use crate::start::{LISTEN_FD_ENV, SOCKET_ENV};

const V3: &str = "/containerd.task.v3.Task/";
const V2: &str = "/containerd.task.v2.Task/";

/// How long an ordinary event is retried before a container's config sets
/// `timeouts.publish` (exits and OOMs are retried until delivered).
const PUBLISH_RETRY: Duration = Duration::from_secs(30);

/// The Task service under both names containerd may call it by: 1.6/1.7
/// speak v2, 2.x speak v2 or v3; the messages are the same on the wire.
pub fn task_methods(
    service: Arc<dyn containerd_shim_protos::Task + Send + Sync>,
) -> std::collections::HashMap<String, Box<dyn ttrpc::MethodHandler + Send + Sync>> {
    let mut all = containerd_shim_protos::create_task(service.clone());
    for (name, handler) in containerd_shim_protos::create_task(service) {
        if let Some(method) = name.strip_prefix(V3) {
            all.insert(format!("{V2}{method}"), handler);
        }
    }
    all
}

pub fn run(args: Args) -> Result<()> {
    // Our own session: containerd's signals to its process group are not ours.
    let _ = nix::unistd::setsid();
    let level = if args.debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    let out: Box<dyn std::io::Write + Send> = match logger::open_log_fifo(Path::new("log")) {
        Some(f) => Box::new(f),
        None => Box::new(std::io::stderr()),
    };
    logger::init(out, level, &args.namespace);
    // A panic goes to the shim log with where it happened; the request or
    // event it hit is failed alone (robust_service::error::contain).
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!(
            "msg=\"panic\" thread={} location={} panic={}",
            thread.name().unwrap_or("unnamed"),
            quote(info.location().map(|l| l.to_string()).unwrap_or_default()),
            quote(robust_service::error::panic_message(info.payload()))
        );
    }));
    // `start` checked these before spawning us; a daemon run by hand (or
    // by anything else) is held to the same rules before it touches a path.
    if let Err(e) = robust_config::ids::validate_namespace(&args.namespace)
        .and_then(|()| robust_config::ids::validate_container_id(&args.id))
    {
        log::error!(
            "msg=\"shim daemon refused its arguments\" error={}",
            quote(&e)
        );
        return Err(e.into());
    }
    for (k, v) in &args.unknown {
        log::warn!(
            "msg=\"unknown flag ignored\" flag={} value={}",
            quote(k),
            quote(v)
        );
    }

    let fd: RawFd = std::env::var(LISTEN_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .context("daemon started without a listening socket (run the `start` action)")?;
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("listener fd")?;
    // SAFETY: `start` passed us this fd (checked open just above) for the
    // listening socket, and nothing else in the daemon refers to it.
    #[allow(unsafe_code)]
    let listener = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = std::env::var(SOCKET_ENV).unwrap_or_default();
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();

    // The main thread runs the loop (below): tasks added before that wait
    // in it, and no thread is started for it.
    let lp = event_loop::global().context("create the event loop")?;
    lp.claim();
    let (reaper, exits, sigchld) = Reaper::start_polled().context("start reaper")?;
    lp.add(Box::new(OnReadable::new(sigchld, |s| {
        s.reap();
        true
    })))
    .context("reap from the event loop")?;
    // Long enough to ride out a containerd restart; order is kept meanwhile.
    let publisher = Publisher::start(&ttrpc_address, &args.namespace, PUBLISH_RETRY);
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let service = Service::new(&args.namespace, reaper, exits, publisher, stop_tx.clone());

    // One idle RPC thread; a call that blocks takes one of its own. After
    // each call the loop looks at `stop_rx` (a Shutdown).
    let waker = lp.clone();
    let pool = Pool::new(1, server::pool::MAX_THREADS, Box::new(move || waker.wake()));
    server::serve(lp, listener, task_methods(Arc::new(service.clone())), pool)
        .context("start ttrpc server")?;
    log::info!(
        "msg=\"shim daemon serving\" id={} pid={} socket={socket}",
        args.id,
        std::process::id()
    );

    watch_signals(lp, &service, stop_tx).context("install signal handlers")?;

    lp.run_until(|| stop_rx.try_recv().is_ok(), None);
    let left = service.bundles();
    if !left.is_empty() {
        log::warn!(
            "msg=\"shim exiting with containers still held\" count={} ids={}",
            left.len(),
            quote(
                left.iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        );
    }
    if !socket.is_empty() {
        let _ = std::fs::remove_file(&socket);
    }
    // The loop keeps reaping and copying while the events go out.
    let deadline = Instant::now() + service.shutdown_bound();
    let publisher = service.publisher();
    lp.run_until(
        || publisher.pending() == 0 || Instant::now() >= deadline,
        Some(Duration::from_millis(10)),
    );
    let undelivered = publisher.pending();
    if undelivered > 0 {
        log::warn!("msg=\"shim exiting with undelivered events\" count={undelivered}");
    }
    log::info!("msg=\"shim daemon exiting\" id={}", args.id);
    log::logger().flush();
    std::process::exit(0)
}

/// SIGTERM or SIGINT: a bounded orderly exit, on a thread of its own (it
/// waits for the containers to stop, which needs the loop to reap them):
/// stop every container (SIGTERM, grace, SIGKILL, grace, cgroup kill,
/// forced delete), clean it, publish the exits, then stop the loop.
fn watch_signals(
    lp: &'static event_loop::EventLoop,
    service: &Service,
    stop_tx: std::sync::mpsc::Sender<()>,
) -> std::io::Result<()> {
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // One socket per signal, so that the log names it.
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register(sig, write)?;
        let (service, stop_tx, stopping) = (service.clone(), stop_tx.clone(), stopping.clone());
        lp.add(Box::new(OnReadable::new(read, move |r| {
            let mut got = [0u8; 16];
            let n = std::io::Read::read(&mut &*r, &mut got).unwrap_or(0);
            // Nothing yet (the first run), or a second signal: the exit
            // under way is bounded already.
            if n > 0 && !stopping.swap(true, std::sync::atomic::Ordering::AcqRel) {
                orderly_exit(lp, &service, &stop_tx, sig);
            }
            true
        })))?;
    }
    Ok(())
}

fn orderly_exit(
    lp: &'static event_loop::EventLoop,
    service: &Service,
    stop_tx: &std::sync::mpsc::Sender<()>,
    sig: libc::c_int,
) {
    let (svc, tx) = (service.clone(), stop_tx.clone());
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            log::warn!(
                "msg=\"shim received signal; stopping containers and exiting\" signal={sig} containers={}",
                svc.container_count()
            );
            for r in svc.stop_all() {
                log::warn!(
                    "msg=\"stopped on shim exit\" id={} confirmed={} steps={} took={:?}",
                    r.id,
                    r.confirmed,
                    quote(r.steps.join(",")),
                    r.took
                );
            }
            let _ = tx.send(());
            lp.wake();
        });
    if let Err(e) = spawned {
        log::error!(
            "msg=\"cannot start the orderly exit; exiting now\" error={}",
            quote(e)
        );
        let _ = stop_tx.send(());
        lp.wake();
    }
}
