//! Whether a bundle's shim is alive (its socket accepts, or its `shim.pid`
//! is a live `containerd-shim-robust-v2`), whose bundle it is, and the
//! removal of a dead shim's stale socket.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use robust_bundle::{self as bundle, read_file, FileRead};

use super::OUR_SHIM;
use crate::delete::q;

/// What connecting to a shim socket gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketState {
    /// A listener took the connection (or its backlog is full): alive.
    Accepts,
    /// Nobody listens (a stale socket file).
    Refused,
    /// No such socket.
    Missing,
    /// Something else (a scheme we do not speak, a permission error):
    /// treated as alive, never touched.
    Unknown(String),
}

/// The socket path of an `address` (`unix:///path`, or an abstract
/// `unix://@name` / `\0name`); `None` for other schemes.
pub fn socket_of(address: &str) -> Option<(bool, String)> {
    let rest = address.strip_prefix("unix://")?;
    if let Some(name) = rest.strip_prefix('@').or_else(|| rest.strip_prefix('\0')) {
        return Some((true, name.to_string()));
    }
    rest.starts_with('/').then(|| (false, rest.to_string()))
}

/// Try a non-blocking connect to a shim's address.
pub fn probe_socket(address: &str) -> SocketState {
    let Some((abstract_, path)) = socket_of(address) else {
        return SocketState::Unknown(format!("address {address:?} is not a unix socket"));
    };
    let addr = if abstract_ {
        UnixAddr::new_abstract(path.as_bytes())
    } else {
        UnixAddr::new(path.as_str())
    };
    let addr = match addr {
        Ok(a) => a,
        Err(e) => return SocketState::Unknown(format!("address {address:?}: {e}")),
    };
    let fd = match socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    ) {
        Ok(fd) => fd,
        Err(e) => return SocketState::Unknown(format!("socket: {e}")),
    };
    match connect(fd.as_raw_fd(), &addr) {
        // EAGAIN: the listener's backlog is full; it exists.
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => SocketState::Accepts,
        Err(Errno::ECONNREFUSED) => SocketState::Refused,
        Err(Errno::ENOENT) => SocketState::Missing,
        Err(e) => SocketState::Unknown(format!("connect {path}: {e}")),
    }
}

/// The file name of a process's executable, " (deleted)" stripped; `None`
/// when the process is gone or a zombie.
pub fn exe_name(pid: i32) -> Option<String> {
    if !crate::cgroup::pid_alive(pid) {
        return None;
    }
    let p = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let n = p.file_name()?.to_string_lossy().into_owned();
    Some(n.trim_end_matches(" (deleted)").to_string())
}

/// Whether a bundle's shim is alive, and why we think so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive(String),
    Dead(String),
}

/// Decide whether the shim of `bundle` is alive: its socket accepts, or
/// its `shim.pid` is a live `containerd-shim-robust-v2`.
pub fn liveness(bundle: &Path) -> Liveness {
    let sock = match read_file(bundle, "address") {
        FileRead::Bytes(b) => {
            let a = String::from_utf8_lossy(&b).trim().to_string();
            match probe_socket(&a) {
                SocketState::Accepts => return Liveness::Alive("socket accepts".into()),
                SocketState::Unknown(why) => {
                    return Liveness::Alive(format!("{why}; assumed alive"))
                }
                SocketState::Refused => "socket refuses",
                SocketState::Missing => "socket gone",
            }
        }
        FileRead::Missing => "no address",
        FileRead::Unusable(_) => "address unusable",
    };
    match bundle::read_pid(bundle, "shim.pid") {
        Some(pid) => match exe_name(pid) {
            Some(n) if n == OUR_SHIM => {
                Liveness::Alive(format!("{sock}, but shim pid {pid} is alive"))
            }
            _ => Liveness::Dead(format!("{sock}; shim pid {pid} gone")),
        },
        None => Liveness::Dead(format!("{sock}; no shim.pid")),
    }
}

/// Whose bundle it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Ours,
    Other(String),
}

/// `shim-binary-path` names this shim; without that file, an
/// `options.json` in this shim's layout (with `runtime` and `timeouts`
/// tables) counts as ours.
pub fn owner(bundle: &Path) -> Owner {
    if let Some(p) = bundle::read_text(bundle, "shim-binary-path") {
        let name = Path::new(&p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return if name == OUR_SHIM {
            Owner::Ours
        } else {
            Owner::Other(name)
        };
    }
    if let FileRead::Bytes(b) = read_file(bundle, "options.json") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
            if v.get("runtime").is_some_and(|r| r.is_object())
                && v.get("timeouts").is_some_and(|t| t.is_object())
            {
                return Owner::Ours;
            }
        }
    }
    Owner::Other("unknown (no shim-binary-path)".into())
}

/// Remove a bundle's stale shim socket (nobody listens on it). A socket
/// that accepts, or anything that is not a socket, is left alone.
pub fn remove_stale_socket(address: &str, id: &str) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Some((false, path)) = socket_of(address) else {
        return;
    };
    let Ok(before) = std::fs::symlink_metadata(&path) else {
        return;
    };
    if !before.file_type().is_socket() || probe_socket(address) != SocketState::Refused {
        return;
    }
    // Only the very socket we probed (a new shim may have bound the path).
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == before.ino())
        && std::fs::remove_file(&path).is_ok()
    {
        log::info!(
            "msg=\"cleanup: removed the dead shim's socket\" id={id} socket={}",
            q(&path)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::tests::bundle;
    use std::os::unix::net::UnixListener;

    #[test]
    fn address_parsing() {
        assert_eq!(
            socket_of("unix:///run/containerd/s/abc"),
            Some((false, "/run/containerd/s/abc".into()))
        );
        assert_eq!(socket_of("unix://@x"), Some((true, "x".into())));
        assert_eq!(socket_of("unix://\0x"), Some((true, "x".into())));
        assert_eq!(socket_of("vsock://3:1024"), None);
        assert_eq!(socket_of("unix://relative"), None);
    }

    /// The liveness decision on a fake state dir: a socket that accepts,
    /// a stale socket file, none, and a shim.pid of a live process that is
    /// not our shim.
    #[test]
    fn liveness_decision() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("s");
        std::fs::create_dir(&s).unwrap();

        let live = bundle(d.path(), "default", "live");
        let sock = s.join("live.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        std::fs::write(live.join("address"), format!("unix://{}", sock.display())).unwrap();
        assert!(matches!(liveness(&live), Liveness::Alive(w) if w == "socket accepts"));

        let stale = bundle(d.path(), "default", "stale");
        let ssock = s.join("stale.sock");
        drop(UnixListener::bind(&ssock).unwrap()); // the file stays, nobody listens
        assert!(ssock.exists());
        std::fs::write(stale.join("address"), format!("unix://{}", ssock.display())).unwrap();
        assert_eq!(
            liveness(&stale),
            Liveness::Dead("socket refuses; no shim.pid".into())
        );
        // A live pid that is not our shim (this test binary) does not count.
        std::fs::write(stale.join("shim.pid"), std::process::id().to_string()).unwrap();
        assert!(matches!(liveness(&stale), Liveness::Dead(w) if w.contains("shim pid")));

        let none = bundle(d.path(), "default", "none");
        assert_eq!(
            liveness(&none),
            Liveness::Dead("no address; no shim.pid".into())
        );
        std::fs::write(none.join("address"), format!("unix://{}/gone", s.display())).unwrap();
        assert_eq!(
            liveness(&none),
            Liveness::Dead("socket gone; no shim.pid".into())
        );
        std::fs::write(none.join("address"), "ttrpc+vsock://3:1").unwrap();
        assert!(matches!(liveness(&none), Liveness::Alive(_)));

        // The stale socket is removed; the live one is not.
        remove_stale_socket(&format!("unix://{}", ssock.display()), "stale");
        assert!(!ssock.exists());
        remove_stale_socket(&format!("unix://{}", sock.display()), "live");
        assert!(sock.exists());
        drop(listener);
    }

    #[test]
    fn ownership() {
        let d = tempfile::tempdir().unwrap();
        let b = bundle(d.path(), "default", "a");
        assert_eq!(owner(&b), Owner::Ours);
        std::fs::write(
            b.join("shim-binary-path"),
            "/usr/bin/containerd-shim-runc-v2",
        )
        .unwrap();
        assert_eq!(owner(&b), Owner::Other("containerd-shim-runc-v2".into()));
        std::fs::remove_file(b.join("shim-binary-path")).unwrap();
        assert!(matches!(owner(&b), Owner::Other(_)));
        std::fs::write(
            b.join("options.json"),
            robust_config::Config::default().to_options_json(),
        )
        .unwrap();
        assert_eq!(owner(&b), Owner::Ours);
        std::fs::write(b.join("options.json"), r#"{"binary_name":"runc"}"#).unwrap();
        assert!(matches!(owner(&b), Owner::Other(_)));
    }
}
