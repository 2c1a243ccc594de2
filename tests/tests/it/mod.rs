//! The cases, by the interface they drive. Each module's one doc line below is also its
//! row in integration/README.md ([`readme_lists_every_module`] checks that).

pub use robust_integration::*;
pub use std::time::Duration;

/// Parity through containerd's gRPC API: kill, wait, delete, events in order, update.
pub mod api_cases;
/// Bystanders of cleanup: host processes and containers in sibling, parent, child and
/// shared cgroups survive every delete path; a host-pid-namespace init's leftovers die
/// with it (issue 12).
pub mod bystander;
/// Parity through CRI: pods with host and CNI networking, the `runtime_path` handler.
pub mod cri_cases;
/// Parity through `ctr`: run --rm exit codes, exec, tty, stdin, pause, metrics, ps.
pub mod ctr_cases;
/// Dead shims (F4, F5): every missing bundle file, busy rootfs, bad input, sweep; a
/// healthy `ctr run --rm` logs no warning (issues 4, 16).
pub mod dead_shim;
/// Events and state across restarts, OOMs, load and shared pid namespaces (issue 5).
pub mod events;
/// A process that leaves a background child holding its output: bounded drain (issue 12 A).
pub mod exec_io;
/// gVisor: runsc through the same shim: ctr, CRI handler `gvisor`, F2, dead shims (issue 6).
pub mod gvisor;
/// gVisor pods as Kubernetes users see them: CRI logs, ExecSync timeout, OOMKilled (issue 17).
pub mod gvisor_pods;
/// A runtime that hangs on one verb (integration/fault-runtime.sh): deadlines (issue 3).
pub mod hangs;
/// Input edges: non-UTF-8 arguments, over-long ids, resize after the exit (issue 12 B).
pub mod input_edges;
/// Reaping on every path and bounded stops with escalation (issue 3).
pub mod reaping;

/// integration/README.md lists every module of this directory with its doc line here:
/// the table between its `it-modules` markers is this file's, word for word. Needs no
/// containerd.
#[test]
fn readme_lists_every_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mod_rs = std::fs::read_to_string(dir.join("tests/it/mod.rs")).expect("mod.rs");
    let mut rows = vec![
        "| module | what it proves |".to_string(),
        "| --- | --- |".to_string(),
    ];
    let mut doc: Vec<&str> = Vec::new();
    for line in mod_rs.lines() {
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim());
        } else if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|r| r.strip_suffix(';'))
        {
            assert!(!doc.is_empty(), "module {name} has no doc line in mod.rs");
            rows.push(format!("| `{name}` | {} |", doc.join(" ")));
            doc.clear();
        } else {
            doc.clear();
        }
    }
    let want = rows.join("\n");
    let readme = std::fs::read_to_string(dir.join("../integration/README.md")).expect("README.md");
    let start = "<!-- it-modules: from tests/tests/it/mod.rs -->\n";
    let got = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("\n<!-- /it-modules -->"))
        .map(|(t, _)| t)
        .unwrap_or_default();
    assert_eq!(
        got, want,
        "integration/README.md's module table is stale; between its markers put:\n{want}"
    );
}
