//! The shim daemon: serves the Task API (v2 and v3 names) over ttrpc until
//! containerd shuts it down or it is told to stop by a signal.

use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use robust_cleanup::logfmt::quote;
use robust_reaper::Reaper;
use robust_service::events::Publisher;
use robust_service::Service;

use crate::args::Args;
use crate::logger;
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
    let socket = std::env::var(SOCKET_ENV).unwrap_or_default();
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();

    let (reaper, exits) = Reaper::start().context("start reaper")?;
    // Long enough to ride out a containerd restart; order is kept meanwhile.
    let publisher = Publisher::start(&ttrpc_address, &args.namespace, PUBLISH_RETRY);
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let service = Service::new(&args.namespace, reaper, exits, publisher, stop_tx.clone());

    // Few idle workers: the pool spawns a new worker whenever fewer than
    // `min` are idle (a blocked Wait holds one), so a small pool costs no
    // responsiveness. ttrpc wants min < default < max.
    let mut server = ttrpc::Server::new()
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(3)
        .add_listener(fd)
        .context("ttrpc listener")?
        .register_service(task_methods(Arc::new(service.clone())));
    server.start().context("start ttrpc server")?;
    log::info!(
        "msg=\"shim daemon serving\" id={} pid={} socket={socket}",
        args.id,
        std::process::id()
    );

    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
        .context("install signal handlers")?;
    let sig_tx = stop_tx;
    let sig_service = service.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // A bounded orderly exit: stop every container (SIGTERM,
                // grace, SIGKILL, grace, cgroup kill, forced delete), clean
                // it, publish the exits, then let main remove the socket.
                log::warn!(
                    "msg=\"shim received signal; stopping containers and exiting\" signal={sig} containers={}",
                    sig_service.container_count()
                );
                for r in sig_service.stop_all() {
                    log::warn!(
                        "msg=\"stopped on shim exit\" id={} confirmed={} steps={} took={:?}",
                        r.id,
                        r.confirmed,
                        quote(r.steps.join(",")),
                        r.took
                    );
                }
                let _ = sig_tx.send(());
            }
        })
        .context("start signal thread")?;

    let _ = stop_rx.recv();
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
    let undelivered = service.publisher().drain(service.shutdown_bound());
    if undelivered > 0 {
        log::warn!("msg=\"shim exiting with undelivered events\" count={undelivered}");
    }
    log::info!("msg=\"shim daemon exiting\" id={}", args.id);
    log::logger().flush();
    std::process::exit(0)
}
