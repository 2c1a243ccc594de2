//! The node sweep: task bundles that no live shim owns, cleaned with the
//! same routine as `delete`, then removed.
//!
//! A bundle `<state>/<ns>/<id>` is *dead* when its `address` socket does
//! not accept a connection **and** its `shim.pid`, if present, is not a
//! live `containerd-shim-robust-v2` process (`liveness`). Only bundles of
//! this shim (the `shim-binary-path` file names it) are cleaned; others
//! are listed as skipped. A bundle is removed only once nothing is mounted
//! under it, and the removal never follows a symlink nor crosses a mount.
//! Which directory is swept is decided in `state_dir`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use robust_bundle as bundle;
use robust_config::ids;
use robust_reaper::Reaper;

use crate::delete::{delete_bundle, q, DeleteRequest, Limits};
use crate::mount;

mod liveness;
mod state_dir;
#[cfg(test)]
mod tests;

pub use liveness::{
    exe_name, liveness, owner, probe_socket, remove_stale_socket, socket_of, Liveness, Owner,
    SocketState,
};
pub use state_dir::resolve_state_dir;

/// The file name of this shim's binary.
pub const OUR_SHIM: &str = "containerd-shim-robust-v2";
/// containerd's default task state directory.
pub const DEFAULT_STATE_DIR: &str = "/run/containerd/io.containerd.runtime.v2.task";
/// The name of the task state directory under containerd's state dir.
pub const TASK_DIR: &str = "io.containerd.runtime.v2.task";

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
            r.result = format!("failed: still left: {}", o.remains_text());
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
