//! The node sweep: task bundles that no live shim owns, cleaned with the
//! same routine as `delete`, then removed.
//!
//! A bundle `<state>/<ns>/<id>` is *dead* when its `address` socket does
//! not accept a connection **and** its `shim.pid`, if present, is not a
//! live `containerd-shim-robust-v2` process. Only bundles of this shim
//! (the `shim-binary-path` file names it) are cleaned; others are listed
//! as skipped. A bundle is removed only once nothing is mounted under it,
//! and the removal never follows a symlink nor crosses a mount.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use robust_config::ids;
use robust_reaper::Reaper;

use crate::delete::{delete_bundle, q, DeleteRequest, Limits};
use crate::mount;
use robust_bundle::{self as bundle, read_file, FileRead};

/// The file name of this shim's binary.
pub const OUR_SHIM: &str = "containerd-shim-robust-v2";
/// containerd's default task state directory.
pub const DEFAULT_STATE_DIR: &str = "/run/containerd/io.containerd.runtime.v2.task";
/// The name of the task state directory under containerd's state dir.
pub const TASK_DIR: &str = "io.containerd.runtime.v2.task";

/// The task state directory to sweep, from what an operator names:
/// containerd's state dir itself (`/run/containerd`, where the task
/// directory is [`TASK_DIR`]) or the task directory. A directory named
/// otherwise, without a [`TASK_DIR`] under it, is taken as a task
/// directory (its subdirectories are namespaces) unless it holds
/// containerd's own `io.containerd.*` directories: then it is a state dir
/// with no task state. The path is checked like a bundle path (absolute,
/// no `..`, no symlinked component).
pub fn resolve_state_dir(dir: &Path) -> Result<PathBuf, String> {
    let dir = bundle::check_dir_path(dir, "state dir")?;
    let how = "containerd keeps it under its state dir (`state` in its config.toml, \
               /run/containerd by default): pass --state-dir with containerd's state dir \
               or its io.containerd.runtime.v2.task subdirectory";
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    if !is_dir(&dir) {
        let why = match std::fs::symlink_metadata(&dir) {
            Ok(_) => "not a directory".to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such directory".into(),
            Err(e) => e.to_string(),
        };
        return Err(format!(
            "no containerd task state at {} ({why}); {how}",
            dir.display()
        ));
    }
    if dir.file_name().is_some_and(|n| n == TASK_DIR) {
        return Ok(dir);
    }
    let tasks = dir.join(TASK_DIR);
    if let Ok(m) = std::fs::symlink_metadata(&tasks) {
        if m.is_dir() {
            return Ok(tasks);
        }
        return Err(format!("{} is not a directory", tasks.display()));
    }
    let containerds = std::fs::read_dir(&dir)
        .map_err(|e| format!("state dir {}: {e}", dir.display()))?
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("io.containerd.")
        });
    if containerds {
        return Err(format!(
            "no containerd task state at {} (it is containerd's state dir, without {TASK_DIR}); {how}",
            tasks.display()
        ));
    }
    Ok(dir)
}

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

/// Remove a cleaned bundle, and containerd's `work` dir it links to. Fails
/// when anything is still mounted under the bundle.
pub fn remove_bundle(bundle: &Path, ns: &str, id: &str) -> Result<(), String> {
    let left = mount::mounts_under(bundle);
    if !left.is_empty() {
        return Err(format!(
            "still mounted under the bundle: {}",
            left.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // containerd 1.6+: `work` -> <root>/io.containerd.runtime.v2.task/<ns>/<id>
    let work = std::fs::read_link(bundle.join("work")).ok().filter(|w| {
        w.is_absolute()
            && w.ends_with(Path::new("io.containerd.runtime.v2.task").join(ns).join(id))
            && bundle::check_bundle_path(w, id).is_ok()
            && std::fs::symlink_metadata(w).is_ok_and(|m| m.is_dir())
    });
    bundle::remove_tree_one_fs(bundle).map_err(|e| format!("remove {}: {e}", bundle.display()))?;
    if let Some(w) = work {
        if mount::mounts_under(&w).is_empty() {
            if let Err(e) = bundle::remove_tree_one_fs(&w) {
                log::warn!(
                    "msg=\"sweep: cannot remove containerd's work dir\" id={id} dir={} error={}",
                    q(w.display()),
                    q(&e)
                );
            }
        }
    }
    Ok(())
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub state_dir: PathBuf,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this container id.
    pub id: Option<String>,
    /// List what would be done; change nothing.
    pub dry_run: bool,
    /// Leave bundles changed more recently than this alone (one being
    /// created has no shim yet).
    pub min_age: Duration,
    pub limits: Limits,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            namespace: None,
            id: None,
            dry_run: false,
            min_age: Duration::from_secs(10),
            limits: Limits::default(),
        }
    }
}

/// One line of the sweep's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub id: String,
    /// `alive (why)` / `dead (why)` / `-`.
    pub shim: String,
    pub action: String,
    pub result: String,
    /// The clean was attempted and failed.
    pub failed: bool,
}

fn row(ns: &str, id: &str, shim: &str, action: &str, result: &str) -> Row {
    Row {
        namespace: ns.into(),
        id: id.into(),
        shim: shim.into(),
        action: action.into(),
        result: result.into(),
        failed: false,
    }
}

fn sorted_dirs(dir: &Path) -> Result<Vec<(String, PathBuf, std::fs::FileType)>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v: Vec<_> = rd
        .flatten()
        .filter_map(|e| {
            let t = e.file_type().ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), e.path(), t))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Age of a bundle: since its newest change among the directory itself and
/// the files a starting shim writes.
fn age(bundle: &Path) -> Duration {
    let now = SystemTime::now();
    ["", "address", "shim.pid", "init.pid", "config.json"]
        .iter()
        .filter_map(|f| {
            let p = if f.is_empty() {
                bundle.to_path_buf()
            } else {
                bundle.join(f)
            };
            std::fs::symlink_metadata(p).ok()?.modified().ok()
        })
        .map(|t| now.duration_since(t).unwrap_or_default())
        .min()
        .unwrap_or_default()
}

/// Sweep the state directory. `reaper` runs the runtime; it is only used
/// when not a dry run.
pub fn sweep(opts: &SweepOptions, reaper: Option<&Reaper>) -> Result<Vec<Row>, String> {
    let state_dir = resolve_state_dir(&opts.state_dir)?;
    let mut rows = Vec::new();
    for (ns, ns_dir, t) in sorted_dirs(&state_dir)? {
        if opts.namespace.as_deref().is_some_and(|want| want != ns) {
            continue;
        }
        if !t.is_dir() {
            rows.push(row(&ns, "-", "-", "skip", "not a directory"));
            continue;
        }
        if let Err(e) = ids::validate_namespace(&ns) {
            rows.push(row(&ns, "-", "-", "skip", &e.to_string()));
            continue;
        }
        let entries = match sorted_dirs(&ns_dir) {
            Ok(e) => e,
            Err(e) => {
                rows.push(row(&ns, "-", "-", "skip", &e));
                continue;
            }
        };
        for (id, b, t) in entries {
            if opts.id.as_deref().is_some_and(|want| want != id) {
                continue;
            }
            rows.push(sweep_one(opts, reaper, &ns, &id, &b, t));
        }
    }
    Ok(rows)
}

fn sweep_one(
    opts: &SweepOptions,
    reaper: Option<&Reaper>,
    ns: &str,
    id: &str,
    b: &Path,
    t: std::fs::FileType,
) -> Row {
    if id.starts_with('.') {
        return row(
            ns,
            id,
            "-",
            "skip",
            "hidden entry (containerd renames a bundle to .<id> while removing it)",
        );
    }
    if t.is_symlink() {
        return row(ns, id, "-", "skip", "bundle is a symlink; not followed");
    }
    if !t.is_dir() {
        return row(ns, id, "-", "skip", "not a directory");
    }
    if let Err(e) = ids::validate_container_id(id) {
        return row(ns, id, "-", "skip", &e.to_string());
    }
    let why = match liveness(b) {
        Liveness::Alive(why) => return row(ns, id, &format!("alive ({why})"), "skip", "-"),
        Liveness::Dead(why) => why,
    };
    let shim = format!("dead ({why})");
    if let Owner::Other(name) = owner(b) {
        return row(ns, id, &shim, "skip", &format!("not our shim ({name})"));
    }
    let a = age(b);
    if a < opts.min_age {
        return row(
            ns,
            id,
            &shim,
            "skip",
            &format!(
                "changed {a:.1?} ago (< min-age {:?}); may be starting",
                opts.min_age
            ),
        );
    }
    if opts.dry_run {
        return row(ns, id, &shim, "would clean", "-");
    }
    let Some(reaper) = reaper else {
        return row(ns, id, &shim, "skip", "no reaper to run the runtime");
    };
    let mut req = DeleteRequest::new(ns, id, b);
    req.limits = opts.limits;
    let mut r = row(ns, id, &shim, "clean", "");
    match delete_bundle(&req, reaper) {
        Err(e) => {
            r.result = e.to_string();
            r.failed = true;
        }
        Ok(o) if !o.is_clean() => {
            r.result = format!("failed: still left: {}", o.remains.join("; "));
            r.failed = true;
        }
        Ok(o) => match remove_bundle(b, ns, id) {
            Ok(()) => {
                r.result = format!(
                    "ok: bundle removed (pid {}, {} assumed, {} lazily detached, {:.1?})",
                    o.pid,
                    o.assumed.len(),
                    o.detached.len(),
                    o.took
                );
            }
            Err(e) => {
                r.result = format!("cleaned, but the bundle stays: {e}");
                r.failed = true;
            }
        },
    }
    r
}

/// The sweep's rows as an aligned table.
pub fn format_table(rows: &[Row]) -> String {
    let head = ["NAMESPACE", "ID", "SHIM", "ACTION", "RESULT"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.namespace.as_str(),
                r.id.as_str(),
                r.shim.as_str(),
                r.action.as_str(),
                r.result.as_str(),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for c in &cells {
        for i in 0..5 {
            w[i] = w[i].max(c[i].chars().count());
        }
    }
    let line = |c: [&str; 5]| {
        let mut s = String::new();
        for i in 0..4 {
            s.push_str(&format!("{:<width$}  ", c[i], width = w[i]));
        }
        s.push_str(c[4]);
        s.push('\n');
        s
    };
    let mut out = line(head);
    for c in cells {
        out.push_str(&line(c));
    }
    if rows.is_empty() {
        out.push_str("(no task bundles)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn bundle(state: &Path, ns: &str, id: &str) -> PathBuf {
        let b = state.join(ns).join(id);
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            b.join("shim-binary-path"),
            "/usr/local/bin/containerd-shim-robust-v2",
        )
        .unwrap();
        b
    }

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

    #[test]
    fn dry_run_lists_and_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let socks = tempfile::tempdir().unwrap();
        let s = socks.path();
        let live = bundle(d.path(), "default", "live");
        let sock = s.join("live.sock");
        let _l = UnixListener::bind(&sock).unwrap();
        std::fs::write(live.join("address"), format!("unix://{}", sock.display())).unwrap();
        let dead = bundle(d.path(), "default", "dead");
        let other = bundle(d.path(), "k8s.io", "other");
        std::fs::write(
            other.join("shim-binary-path"),
            "/usr/bin/containerd-shim-runc-v2",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("default/.hidden")).unwrap();
        let opts = SweepOptions {
            state_dir: d.path().to_path_buf(),
            dry_run: true,
            min_age: Duration::ZERO,
            ..SweepOptions::default()
        };
        let rows = sweep(&opts, None).unwrap();
        let by_id = |id: &str| rows.iter().find(|r| r.id == id).unwrap().clone();
        assert_eq!(by_id("live").action, "skip");
        assert!(by_id("live").shim.starts_with("alive"));
        assert_eq!(by_id("dead").action, "would clean");
        assert!(by_id("other").result.contains("not our shim"));
        assert_eq!(by_id(".hidden").action, "skip");
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(live.exists() && dead.exists() && other.exists());
        // Young bundles are left alone by default.
        let rows = sweep(
            &SweepOptions {
                min_age: Duration::from_secs(3600),
                ..opts.clone()
            },
            None,
        )
        .unwrap();
        assert!(rows
            .iter()
            .find(|r| r.id == "dead")
            .unwrap()
            .result
            .contains("min-age"));
        // Filters.
        let rows = sweep(
            &SweepOptions {
                namespace: Some("k8s.io".into()),
                ..opts.clone()
            },
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        let rows = sweep(
            &SweepOptions {
                id: Some("dead".into()),
                ..opts.clone()
            },
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        let t = format_table(&rows);
        assert!(t.starts_with("NAMESPACE"), "{t}");
        assert!(t.contains("would clean"), "{t}");
        assert!(sweep(
            &SweepOptions {
                state_dir: d.path().join("nope"),
                ..opts.clone()
            },
            None
        )
        .is_err());
        let e = sweep(
            &SweepOptions {
                state_dir: d.path().join("default/.."),
                ..opts
            },
            None,
        )
        .unwrap_err();
        assert!(e.contains("\"..\""), "{e}");
    }

    /// containerd's state dir or its task dir: the same bundles; a dir with
    /// no containerd state says where it looked and how to point elsewhere.
    #[test]
    fn state_dir_is_containerds_or_its_task_dir() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("containerd");
        let tasks = state.join(TASK_DIR);
        bundle(&tasks, "default", "dead");
        std::fs::create_dir_all(state.join("io.containerd.grpc.v1.cri")).unwrap();
        assert_eq!(resolve_state_dir(&state).unwrap(), tasks);
        assert_eq!(resolve_state_dir(&tasks).unwrap(), tasks);
        let opts = |dir: &Path| SweepOptions {
            state_dir: dir.to_path_buf(),
            dry_run: true,
            min_age: Duration::ZERO,
            ..SweepOptions::default()
        };
        for dir in [&state, &tasks] {
            let rows = sweep(&opts(dir), None).unwrap();
            assert_eq!(rows.len(), 1, "{dir:?}: {rows:?}");
            assert_eq!(
                (rows[0].namespace.as_str(), rows[0].id.as_str()),
                ("default", "dead")
            );
        }
        // No containerd there at all.
        let none = d.path().join("nothing-here");
        let e = resolve_state_dir(&none).unwrap_err();
        assert!(e.contains(&none.display().to_string()), "{e}");
        assert!(
            e.contains("no such directory") && e.contains("--state-dir"),
            "{e}"
        );
        // containerd's state dir whose task dir is gone: not read as a namespace.
        std::fs::remove_dir_all(&tasks).unwrap();
        let e = sweep(&opts(&state), None).unwrap_err();
        assert!(e.contains(&tasks.display().to_string()), "{e}");
        assert!(e.contains("--state-dir"), "{e}");
        // A task dir named otherwise (its entries are namespaces) still works.
        let custom = d.path().join("tasks");
        bundle(&custom, "k8s.io", "x");
        assert_eq!(resolve_state_dir(&custom).unwrap(), custom);
        // A plain file.
        std::fs::write(d.path().join("file"), "").unwrap();
        let e = resolve_state_dir(&d.path().join("file")).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn sweep_cleans_a_dead_bundle_and_removes_it() {
        let reaper = crate::delete::tests::test_reaper();
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        let b = bundle(&state, "default", "dead");
        // containerd's work dir, linked from the bundle.
        let work = d
            .path()
            .join("root/io.containerd.runtime.v2.task/default/dead");
        std::fs::create_dir_all(&work).unwrap();
        std::os::unix::fs::symlink(&work, b.join("work")).unwrap();
        // A runtime that knows nothing of the container.
        let rt = d.path().join("rt");
        std::fs::write(
            &rt,
            "#!/bin/sh\necho 'container does not exist' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(b.join("runtime"), rt.display().to_string()).unwrap();
        std::fs::create_dir(b.join("rootfs")).unwrap();
        std::fs::write(b.join("rootfs/file"), "x").unwrap();
        let opts = SweepOptions {
            state_dir: state.clone(),
            min_age: Duration::ZERO,
            ..SweepOptions::default()
        };
        let rows = sweep(&opts, Some(&reaper)).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].failed, "{rows:?}");
        assert!(rows[0].result.starts_with("ok"), "{rows:?}");
        assert!(!b.exists());
        assert!(!work.exists());
        // Again: nothing left to do.
        let rows = sweep(&opts, Some(&reaper)).unwrap();
        assert!(rows.is_empty(), "{rows:?}");
    }
}
