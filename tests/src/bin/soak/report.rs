//! What a soak run found: RPC timings, faults, violations, shim daemon samples, and the
//! markdown summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// One broken promise, with everything needed to reproduce it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub kind: &'static str,
    pub cycle: u64,
    pub fault: String,
    pub container: String,
    pub what: String,
}

/// One sample of the long-lived shim daemon.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub cycle: u64,
    pub fds: usize,
    pub rss_kib: u64,
}

/// Every check kind, in the order of the summary table.
pub const CHECKS: &[(&str, &str)] = &[
    ("zombie", "zombie whose parent is a shim of this run"),
    ("mount", "mount left under the run dir (bundle rootfs, ...)"),
    (
        "bundle",
        "bundle dir left in state/io.containerd.runtime.v2.task/<ns>",
    ),
    (
        "runtime-state",
        "runc/runsc state left under /run/containerd/<runtime>/<ns>",
    ),
    (
        "cgroup",
        "cgroup of a deleted container left (or not empty)",
    ),
    (
        "stray-process",
        "runtime, fault-wrapper or container process left",
    ),
    (
        "stray-shim",
        "shim daemon still running with nothing to serve",
    ),
    (
        "containerd-record",
        "task, container or snapshot left in containerd",
    ),
    (
        "exit-missing",
        "a started process whose /tasks/exit never came",
    ),
    ("exit-duplicate", "a /tasks/exit published more than once"),
    ("exit-status", "exit status not the one the workload gave"),
    (
        "oom-event",
        "OOM kill without exactly one /tasks/oom before its exit",
    ),
    ("rpc-slow", "RPC back, but later than its bound"),
    ("rpc-hung", "RPC not back at all (abandoned)"),
    ("rpc-failed", "RPC failed where it must succeed"),
    (
        "behaviour",
        "an operation did not have the effect it must have",
    ),
    (
        "pod-disturbed",
        "the long-lived pod container died or changed",
    ),
    (
        "bystander-harmed",
        "the long-lived bystander container, or the host process next to the containers' \
         cgroups, died or changed (pid, start time, cgroups)",
    ),
    (
        "daemon-growth",
        "fd count or RSS of the long-lived shim daemon grew",
    ),
    (
        "event-stream",
        "the event subscription broke outside a containerd restart",
    ),
    (
        "harness",
        "the soak itself failed (setup or an unexpected error)",
    ),
];

#[derive(Default)]
pub struct Report {
    pub rpcs: BTreeMap<String, Vec<Duration>>,
    /// fault -> (injected, not applicable)
    pub faults: BTreeMap<String, (u64, u64)>,
    pub violations: Vec<Violation>,
    pub samples: Vec<Sample>,
    pub cycles: u64,
    /// exits of processes that never started, as published: (seen, processes)
    pub unstarted_exits: (u64, u64),
    pub notes: Vec<String>,
}

impl Report {
    pub fn rpc(&mut self, kind: &str, took: Duration) {
        self.rpcs.entry(kind.to_string()).or_default().push(took);
    }
    pub fn injected(&mut self, fault: &str) {
        self.faults.entry(fault.to_string()).or_default().0 += 1;
    }
    pub fn not_applicable(&mut self, fault: &str) {
        self.faults.entry(fault.to_string()).or_default().1 += 1;
    }
    pub fn count(&self, kind: &str) -> usize {
        self.violations.iter().filter(|v| v.kind == kind).count()
    }
}

pub fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    let i = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    s[i.min(s.len() - 1)]
}

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m >= 100.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

/// Median of the fds and RSS of `s` (None when empty).
fn median(s: &[Sample]) -> Option<(usize, u64)> {
    if s.is_empty() {
        return None;
    }
    let mut f: Vec<usize> = s.iter().map(|x| x.fds).collect();
    let mut r: Vec<u64> = s.iter().map(|x| x.rss_kib).collect();
    f.sort();
    r.sort();
    Some((f[f.len() / 2], r[r.len() / 2]))
}

/// The long-lived daemon's trend: (first window, last window, min, max) medians.
pub fn trend(s: &[Sample]) -> Option<((usize, u64), (usize, u64))> {
    if s.len() < 2 {
        return None;
    }
    // skip the first samples (warm-up: thread pool, allocator arenas)
    let skip = (s.len() / 10).min(5);
    let s = &s[skip..];
    let w = (s.len() / 5).clamp(1, 20);
    Some((median(&s[..w])?, median(&s[s.len() - w..])?))
}

pub struct Header<'a> {
    pub shim: &'a str,
    pub runtime: &'a str,
    pub seed: u64,
    pub started: &'a str,
    pub elapsed: Duration,
    pub command: &'a str,
    pub versions: &'a str,
}

pub fn markdown(r: &Report, h: &Header) -> String {
    let mut o = String::new();
    let mins = h.elapsed.as_secs_f64() / 60.0;
    let per_min = if mins > 0.0 {
        r.cycles as f64 / mins
    } else {
        0.0
    };
    let _ = writeln!(
        o,
        "## soak: shim {}, runtime {}, seed {}\n",
        h.shim, h.runtime, h.seed
    );
    let _ = writeln!(o, "- started {} ({})", h.started, h.versions);
    let _ = writeln!(o, "- command: `{}`", h.command);
    let _ = writeln!(
        o,
        "- **{} cycles** in {:.1} min ({per_min:.1} cycles/min), **{} violation(s)**",
        r.cycles,
        mins,
        r.violations.len()
    );
    if r.unstarted_exits.1 > 0 {
        let _ = writeln!(
            o,
            "- processes that never started (failed create/exec, hung start): {}; /tasks/exit published for {} of them",
            r.unstarted_exits.1, r.unstarted_exits.0
        );
    }
    for n in &r.notes {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(
        o,
        "\n| fault | injected | not applicable |\n| --- | --- | --- |"
    );
    for (f, (i, na)) in &r.faults {
        let _ = writeln!(o, "| {f} | {i} | {na} |");
    }
    let _ = writeln!(
        o,
        "\n| check | violations | what it catches |\n| --- | --- | --- |"
    );
    for (k, what) in CHECKS {
        let n = r.count(k);
        let cell = if n == 0 {
            "0".to_string()
        } else {
            format!("**{n}**")
        };
        let _ = writeln!(o, "| {k} | {cell} | {what} |");
    }
    let _ = writeln!(
        o,
        "\n| RPC | calls | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |"
    );
    for (k, v) in &r.rpcs {
        let _ = writeln!(
            o,
            "| {k} | {} | {} | {} | {} |",
            v.len(),
            ms(pct(v, 50.0)),
            ms(pct(v, 99.0)),
            ms(pct(v, 100.0))
        );
    }
    if let Some(((f0, r0), (f1, r1))) = trend(&r.samples) {
        let fmin = r.samples.iter().map(|s| s.fds).min().unwrap_or(0);
        let fmax = r.samples.iter().map(|s| s.fds).max().unwrap_or(0);
        let rmin = r.samples.iter().map(|s| s.rss_kib).min().unwrap_or(0);
        let rmax = r.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let _ = writeln!(
            o,
            "\nlong-lived pod shim daemon, {} samples: fds {f0} -> {f1} (min {fmin}, max {fmax}); \
             RSS {r0} KiB -> {r1} KiB (min {rmin}, max {rmax}) (medians of the first and last windows)",
            r.samples.len()
        );
    }
    if !r.violations.is_empty() {
        let _ = writeln!(o, "\n### Violations\n");
        for v in &r.violations {
            let _ = writeln!(
                o,
                "- cycle {} (fault {}), container `{}`: **{}**: {}",
                v.cycle,
                v.fault,
                v.container,
                v.kind,
                v.what.replace('\n', " | ")
            );
        }
        let _ = writeln!(
            o,
            "\nReplay a cycle: the same command with `--seed {} --start-cycle N --cycles 1`.",
            h.seed
        );
    }
    o
}
