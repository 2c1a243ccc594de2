//! What a case works in: its containerd namespace (ours, or the reference's), scratch
//! directories with a shim TOML, the results file of bounded outcomes, and the bounds
//! shared by the cases that make a runtime hang or misbehave.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{ctr, env, Shim, NS};

pub const SEC: Duration = Duration::from_secs(1);
/// containerd namespace of the reference runs: a hung call of the reference shim makes
/// containerd's task listing of its namespace wait (2 s per hung task), which must not
/// slow down the cases of our shim running at the same time in `default`.
pub const REF_NS: &str = "reference";
/// What an RPC may take past the deadline that fired (containerd, ttrpc, killing and
/// reaping the runtime's process group, the cleanup that follows a failed create).
pub const MARGIN: Duration = Duration::from_millis(1500);
/// How long the reference shim is given before it is recorded as hung.
pub const REF_BOUND: Duration = Duration::from_secs(8);

thread_local! {
    static CUR_NS: std::cell::Cell<&'static str> = const { std::cell::Cell::new(NS) };
}

/// The containerd namespace of the current case (see [`use_ns_of`]).
pub fn ns() -> &'static str {
    CUR_NS.with(|c| c.get())
}

/// Makes the current case (thread) work in its shim's namespace: `default` for ours,
/// [`REF_NS`] (with the test image imported into it) for the reference.
pub fn use_ns_of(shim: Shim) -> &'static str {
    let n = match shim {
        Shim::Robust => NS,
        Shim::Reference => {
            ensure_ref_ns();
            REF_NS
        }
    };
    CUR_NS.with(|c| c.set(n));
    n
}

fn ensure_ref_ns() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let image = env().image.clone();
        let ls = ctr(REF_NS, &["images", "ls", "-q"]).run();
        if ls.succeeded() && ls.stdout.lines().any(|l| l.trim() == image) {
            return;
        }
        let dir = std::env::var("ROBUST_IT_IMAGES_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_dir().join(".work/images"));
        let tar = dir.join("busybox.tar");
        ctr(
            REF_NS,
            &[
                "images",
                "import",
                "--snapshotter",
                "overlayfs",
                &tar.display().to_string(),
            ],
        )
        .timeout(60 * SEC)
        .run()
        .ok();
    });
}

/// The repository (for integration/fault-runtime.sh).
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Our shim binary (the one the isolated containerd runs).
pub fn our_binary() -> PathBuf {
    std::env::var_os("ROBUST_IT_SHIM_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_dir().join("target/release/containerd-shim-robust-v2"))
}

/// The end of containerd's log now: what is logged from here on is read with
/// [`log_since`].
pub fn log_offset() -> u64 {
    fs::metadata(&env().log).map(|m| m.len()).unwrap_or(0)
}

/// containerd's log from `off` on.
pub fn log_since(off: u64) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = fs::File::open(&env().log) {
        let _ = f.seek(SeekFrom::Start(off));
        let _ = f.read_to_end(&mut s);
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// A directory under the temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(id: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("rfault-{id}"));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        TempDir(d)
    }
    /// Writes a shim TOML: `[runtime] binary` (when given) and `[timeouts]`.
    pub fn toml(&self, binary: Option<&Path>, timeouts: &[(&str, &str)]) -> PathBuf {
        let mut t = String::new();
        if let Some(b) = binary {
            t.push_str(&format!("[runtime]\nbinary = \"{}\"\n", b.display()));
        }
        t.push_str("[timeouts]\n");
        for (k, v) in timeouts {
            t.push_str(&format!("{k} = \"{v}\"\n"));
        }
        let p = self.0.join("robust.toml");
        fs::write(&p, t).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Appends one outcome to `<run dir>/bounds-results.txt` and to stderr:
/// `case | shim | what`.
pub fn record(case: &str, shim: Shim, what: &str) {
    let line = format!("{case} | {} | {what}", shim.label());
    eprintln!("RESULT {line}");
    let p = env().run_dir.join("bounds-results.txt");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(p) {
        let _ = writeln!(f, "{line}");
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}
