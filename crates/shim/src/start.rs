//! `start`: find or spawn the daemon of this container's group and print
//! its address.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use robust_bundle as bundle;
use sha2::{Digest, Sha256};

use crate::args::Args;

/// Env var that hands the daemon its listening socket fd.
pub const LISTEN_FD_ENV: &str = "ROBUST_SHIM_LISTEN_FD";
/// Env var carrying the socket path (so the daemon can remove it).
pub const SOCKET_ENV: &str = "ROBUST_SHIM_SOCKET";

/// The socket of a group, as containerd's shims place theirs: a hash under
/// `/run/containerd/s` (short enough for a unix socket path).
pub fn socket_path(
    socket_dir: &Path,
    containerd_address: &str,
    namespace: &str,
    group: &str,
) -> PathBuf {
    let mut h = Sha256::new();
    h.update(format!("robust:{containerd_address}/{namespace}/{group}"));
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    socket_dir.join(hex)
}

/// containerd's default directory of shim sockets.
pub const DEFAULT_SOCKET_DIR: &str = "/run/containerd/s";

/// Where the group's socket goes: the `socket_dir` of containerd 2.3's
/// bootstrap when it names one, else containerd's default.
pub fn socket_dir_of(start: &robust_config::start_input::StartInput) -> PathBuf {
    start
        .bootstrap
        .as_ref()
        .and_then(|b| b.socket_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_DIR))
}

pub fn run(mut args: Args) -> Result<()> {
    let bundle_dir = std::env::current_dir().context("bundle: current directory")?;
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    let start = robust_config::start_input::parse(&input).context("start input on stdin")?;
    let mut ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let socket_dir = socket_dir_of(&start);
    if let Some(b) = &start.bootstrap {
        if args.id.is_empty() {
            args.id = b.id.clone();
        }
        if args.namespace.is_empty() {
            args.namespace = b.namespace.clone();
        }
        if !b.ttrpc_address.is_empty() {
            ttrpc_address = b.ttrpc_address.clone();
        }
        if args.address.is_empty() {
            args.address = b.grpc_address.clone();
        }
    }
    robust_config::ids::validate_namespace(&args.namespace)?;
    robust_config::ids::validate_container_id(&args.id)?;
    let group = bundle::group_of(&bundle_dir, &args.id);
    let path = socket_path(&socket_dir, &args.address, &args.namespace, &group);
    let address = format!("unix://{}", path.display());
    std::fs::create_dir_all(&socket_dir)
        .with_context(|| format!("create socket dir {}", socket_dir.display()))?;

    let listener = match UnixListener::bind(&path) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                // The group's daemon is alive: share it.
                None
            } else {
                log::warn!(
                    "msg=\"removing stale shim socket\" id={} socket={}",
                    args.id,
                    path.display()
                );
                std::fs::remove_file(&path)
                    .with_context(|| format!("remove stale socket {}", path.display()))?;
                Some(
                    UnixListener::bind(&path)
                        .with_context(|| format!("bind {}", path.display()))?,
                )
            }
        }
        Err(e) => return Err(e).with_context(|| format!("bind {}", path.display())),
    };

    if let Some(listener) = listener {
        let pid = spawn_daemon(&args, &listener, &path, &ttrpc_address, &bundle_dir).inspect_err(
            |_| {
                let _ = std::fs::remove_file(&path);
            },
        )?;
        bundle::write_atomic(&bundle_dir, "shim.pid", pid.to_string().as_bytes())
            .context("write shim.pid")?;
    }
    bundle::write_atomic(&bundle_dir, "address", address.as_bytes()).context("write address")?;
    print!("{address}");
    Ok(())
}

fn spawn_daemon(
    args: &Args,
    listener: &UnixListener,
    path: &Path,
    ttrpc_address: &str,
    bundle_dir: &Path,
) -> Result<u32> {
    let fd = listener.as_raw_fd();
    // The daemon inherits exactly this one fd.
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).context("pass listener to daemon")?;
    let exe = std::env::current_exe().context("locate own binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("-namespace")
        .arg(&args.namespace)
        .arg("-id")
        .arg(&args.id)
        .arg("-address")
        .arg(&args.address);
    if !args.publish_binary.is_empty() {
        cmd.arg("-publish-binary").arg(&args.publish_binary);
    }
    if args.debug {
        cmd.arg("-debug");
    }
    cmd.current_dir(bundle_dir)
        .env(LISTEN_FD_ENV, fd.to_string())
        .env(SOCKET_ENV, path)
        .env("TTRPC_ADDRESS", ttrpc_address)
        // One malloc arena: a per-thread arena costs resident memory and
        // the daemon's threads are mostly asleep.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().context("spawn shim daemon")?;
    let pid = child.id();
    // Not waited for: the daemon outlives us and is re-parented.
    drop(child);
    if pid == 0 {
        bail!("spawned daemon has no pid");
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containerd 2.3 may put shim sockets elsewhere (its `socket_dir`):
    /// the socket follows it; without one, containerd's default is used.
    #[test]
    fn socket_dir_from_the_2_3_bootstrap() {
        use containerd_shim_protos::bootstrap_api::BootstrapParams;
        use protobuf::Message;
        let mut p = BootstrapParams::new();
        p.instance_id = "c1".into();
        p.namespace = "k8s.io".into();
        p.containerd_grpc_address = "/run/containerd/containerd.sock".into();
        p.socket_dir = Some("/var/run/custom-shims".into());
        let start = robust_config::start_input::parse(&p.write_to_bytes().unwrap()).unwrap();
        let dir = socket_dir_of(&start);
        assert_eq!(dir, Path::new("/var/run/custom-shims"));
        let sock = socket_path(&dir, "/run/containerd/containerd.sock", "k8s.io", "c1");
        assert!(sock.starts_with("/var/run/custom-shims/"), "{sock:?}");
        p.socket_dir = None;
        let start = robust_config::start_input::parse(&p.write_to_bytes().unwrap()).unwrap();
        assert_eq!(socket_dir_of(&start), Path::new(DEFAULT_SOCKET_DIR));
        let empty = robust_config::start_input::parse(&[]).unwrap();
        assert_eq!(socket_dir_of(&empty), Path::new(DEFAULT_SOCKET_DIR));
    }

    #[test]
    fn socket_paths_are_short_and_distinct() {
        let a = socket_path(
            Path::new("/run/containerd/s"),
            "/run/c.sock",
            "k8s.io",
            "pod1",
        );
        let b = socket_path(
            Path::new("/run/containerd/s"),
            "/run/c.sock",
            "k8s.io",
            "pod2",
        );
        assert_ne!(a, b);
        assert!(a.as_os_str().len() < 100);
    }
}
