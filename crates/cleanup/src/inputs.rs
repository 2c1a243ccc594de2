//! What a dead shim's bundle still tells the cleanup: each file read
//! tolerantly, and the decisions taken from them (which runtime, which
//! root), each fallback written down once.
//!
//! Everything here reads files only; no process is started, so it is
//! tested without root.

use std::path::{Path, PathBuf};

use robust_config::{Config, RuntimeKind};

use crate::bundle::{read_file, FileRead};

/// A bundle file, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<T> {
    /// Present and usable.
    Ok(T),
    /// Not there.
    Missing,
    /// There but truncated, corrupt, a symlink, ...: why.
    Unusable(String),
}

impl<T> Input<T> {
    /// The value, if usable.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Input::Ok(v) => Some(v),
            _ => None,
        }
    }

    /// `"missing"` or `"unusable (why)"`, for logs; `"ok"` when usable.
    pub fn describe(&self) -> String {
        match self {
            Input::Ok(_) => "ok".into(),
            Input::Missing => "missing".into(),
            Input::Unusable(why) => format!("unusable ({why})"),
        }
    }
}

/// What `config.json` gives the cleanup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecInfo {
    /// `linux.cgroupsPath`, if set.
    pub cgroups_path: Option<String>,
    /// An app container of a CRI pod (annotation
    /// `io.kubernetes.cri.container-type` set and not `sandbox`). With runsc its
    /// host pid is the pod's sandbox, shared by every container of the pod.
    pub pod_app: bool,
}

/// Every bundle file the cleanup reads.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInputs {
    /// `runtime`: the runtime binary the shim used.
    pub runtime: Input<String>,
    /// `options.json`: the shim's effective config.
    pub options: Input<Config>,
    /// `init.pid`: the container's init.
    pub init_pid: Input<i32>,
    /// `config.json`: the OCI spec (for the cgroups path).
    pub spec: Input<SpecInfo>,
    /// `address`: the shim's socket.
    pub address: Input<String>,
}

fn text(r: FileRead, what: &str) -> Input<String> {
    match r {
        FileRead::Missing => Input::Missing,
        FileRead::Unusable(why) => Input::Unusable(why),
        FileRead::Bytes(b) => match String::from_utf8(b) {
            Ok(s) if s.trim().is_empty() => Input::Unusable("empty".into()),
            Ok(s) => Input::Ok(s.trim().to_string()),
            Err(_) => Input::Unusable(format!("{what} is not utf-8")),
        },
    }
}

/// Read every input of the cleanup from `bundle`. Never fails: each file
/// is `Ok`, `Missing` or `Unusable`.
pub fn read_inputs(bundle: &Path) -> BundleInputs {
    let runtime = match text(read_file(bundle, "runtime"), "runtime") {
        Input::Ok(s) if s.contains(['\n', '\0']) || s.len() > 4096 => {
            Input::Unusable("not a single binary name or path".into())
        }
        other => other,
    };
    let options = match read_file(bundle, "options.json") {
        FileRead::Missing => Input::Missing,
        FileRead::Unusable(why) => Input::Unusable(why),
        FileRead::Bytes(b) => match Config::from_options_json(&b, &bundle.join("options.json")) {
            Ok(c) => Input::Ok(c),
            Err(e) => Input::Unusable(e.to_string()),
        },
    };
    let init_pid = match text(read_file(bundle, "init.pid"), "init.pid") {
        // Beyond the kernel's pid_max is no pid either: unknown, as missing.
        Input::Ok(s) => match crate::bundle::parse_pid(&s) {
            Ok(p) => Input::Ok(p),
            Err(why) => Input::Unusable(why),
        },
        Input::Missing => Input::Missing,
        Input::Unusable(w) => Input::Unusable(w),
    };
    let spec = read_spec(bundle);
    let address = text(read_file(bundle, "address"), "address");
    BundleInputs {
        runtime,
        options,
        init_pid,
        spec,
        address,
    }
}

/// `config.json`'s part the cleanup uses, read tolerantly.
pub fn read_spec(bundle: &Path) -> Input<SpecInfo> {
    match read_file(bundle, "config.json") {
        FileRead::Missing => Input::Missing,
        FileRead::Unusable(why) => Input::Unusable(why),
        FileRead::Bytes(b) => match serde_json::from_slice::<serde_json::Value>(&b) {
            Ok(v) if v.is_object() => Input::Ok(SpecInfo {
                cgroups_path: v
                    .pointer("/linux/cgroupsPath")
                    .and_then(|p| p.as_str())
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                pod_app: v
                    .pointer("/annotations/io.kubernetes.cri.container-type")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| t != "sandbox"),
            }),
            Ok(_) => Input::Unusable("not a json object".into()),
            Err(e) => Input::Unusable(format!("invalid json: {e}")),
        },
    }
}

/// The runtime the cleanup drives, and where that choice came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeChoice {
    /// The config (options.json's, or defaults) with the chosen binary.
    pub config: Config,
    /// The runtime's `--root` (namespace included).
    pub root: PathBuf,
    /// Where the binary came from: `runtime`, `options.json`, `probe` or
    /// `default`.
    pub source: &'static str,
}

impl RuntimeChoice {
    /// The family (runc or runsc).
    pub fn kind(&self) -> RuntimeKind {
        self.config.runtime_kind()
    }

    /// runc's state directory of this container (`<root>/<id>`).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

/// Default runtime root parents probed when nothing recorded one.
pub const PROBE_ROOTS: &[&str] = &["/run/containerd/runc", "/run/containerd/runsc", "/run/runc"];

/// What a probe of a runtime root found for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The root parent (without the namespace).
    pub parent: PathBuf,
    /// runc or runsc, from the state files' layout.
    pub kind: RuntimeKind,
}

/// Look for the container's runtime state under `<parent>/<ns>`: a runc
/// state dir `<id>/` (whose `state.json`, when readable, must name
/// `bundle` in its `bundle=` label), or a runsc state file
/// `<id>_sandbox:*.state`.
pub fn probe_root(parent: &Path, ns: &str, id: &str, bundle: &Path) -> Option<Probe> {
    let root = parent.join(ns);
    let st = root.join(id);
    if std::fs::symlink_metadata(&st).is_ok_and(|m| m.is_dir()) {
        let other_bundle = read_runc_state(&st)
            .and_then(|s| s.bundle)
            .is_some_and(|b| b != bundle);
        if other_bundle {
            return None;
        }
        return Some(Probe {
            parent: parent.to_path_buf(),
            kind: RuntimeKind::Runc,
        });
    }
    let prefix = format!("{id}_sandbox:");
    let runsc = std::fs::read_dir(&root).ok()?.flatten().any(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".state"))
    });
    runsc.then(|| Probe {
        parent: parent.to_path_buf(),
        kind: RuntimeKind::Runsc,
    })
}

/// Resolve a binary name on `PATH` (a path is taken as is).
pub fn binary_exists(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Decide which runtime to drive, from what the shim recorded.
///
/// - The binary: the `runtime` file; else `options.json`'s
///   `runtime.binary`; else the family whose state a probe finds; else
///   runc.
/// - The root: `options.json`'s (or the default when it records none);
///   when `options.json` is unusable, the first of `probe_parents` that
///   holds state of this container (runc `<ns>/<id>/`, runsc
///   `<ns>/<id>_sandbox:*.state`); else the default root.
///
/// `note(what, assumed)` is called once for each unusable file, saying
/// what was assumed instead.
pub fn choose_runtime(
    inputs: &BundleInputs,
    ns: &str,
    id: &str,
    bundle: &Path,
    probe_parents: &[PathBuf],
    note: &mut dyn FnMut(String, String),
) -> RuntimeChoice {
    let options_ok = inputs.options.ok().is_some();
    let mut config = inputs.options.ok().cloned().unwrap_or_default();
    let root_of = |c: &Config| {
        c.runtime_root(ns)
            .unwrap_or_else(|_| Path::new(robust_config::config::DEFAULT_ROOT_PARENT).join(ns))
    };

    // The root first: without options.json, probe for the state.
    let mut probed = None;
    if !options_ok {
        probed = probe_parents
            .iter()
            .find_map(|parent| probe_root(parent, ns, id, bundle));
        if let Some(p) = &probed {
            config.runtime.root = Some(p.parent.clone());
        }
    }

    // The binary.
    let mut source = "default";
    let mut runtime_note = None;
    match &inputs.runtime {
        Input::Ok(bin) if binary_exists(bin) || !options_ok => {
            if !binary_exists(bin) {
                runtime_note = Some((
                    format!("runtime file names {bin:?}, which is not found"),
                    "using it anyway (nothing else is recorded)".to_string(),
                ));
            }
            if config.runtime.binary != *bin {
                if !options_ok {
                    config.runtime.kind = None;
                }
                config.runtime.binary = bin.clone();
            }
            source = "runtime";
        }
        Input::Ok(bin) => {
            runtime_note = Some((
                format!("runtime file names {bin:?}, which is not found"),
                String::new(),
            ));
            source = "options.json";
        }
        other => {
            runtime_note = Some((format!("runtime file {}", other.describe()), String::new()));
            if options_ok {
                source = "options.json";
            } else if let Some(p) = &probed {
                config.runtime.binary = p.kind.as_str().to_string();
                config.runtime.kind = Some(p.kind);
                source = "probe";
            }
        }
    }
    if source == "default" && options_ok {
        source = "options.json";
    }
    let root = root_of(&config);
    let bin = config.runtime.binary.clone();
    if let Some((what, assumed)) = runtime_note {
        let assumed = if assumed.is_empty() {
            match source {
                "options.json" => format!("using options.json's runtime.binary {bin:?}"),
                "probe" => format!(
                    "found {} state of the container under {}; using {bin:?}",
                    config.runtime_kind(),
                    root.display()
                ),
                _ => format!("no runtime state found either; assuming {bin:?}"),
            }
        } else {
            assumed
        };
        note(what, assumed);
    }
    if !options_ok {
        let where_ = match &probed {
            Some(p) => format!("found {} state of the container there", p.kind),
            None if probe_parents.is_empty() => "nothing probed".to_string(),
            None => format!(
                "no state of the container under {}",
                probe_parents
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        note(
            format!("options.json {}", inputs.options.describe()),
            format!(
                "using default settings (cgroupfs driver, default timeouts) with runtime {bin:?} and root {} ({where_})",
                root.display()
            ),
        );
    }
    RuntimeChoice {
        config,
        root,
        source,
    }
}

/// The fields of runc's `state.json` the cleanup uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuncStateFile {
    /// `init_process_pid`.
    pub init_pid: i32,
    /// `init_process_start` (clock ticks since boot).
    pub init_start: Option<u64>,
    /// `cgroup_paths`: controller (`""` for the unified tree) -> directory.
    pub cgroup_paths: Vec<(String, PathBuf)>,
    /// The `bundle=` label: the bundle the container was created from.
    pub bundle: Option<PathBuf>,
}

/// Parse runc's `state.json`. `None` when it is not JSON or has no
/// `init_process_pid` that is a pid (an integer that fits an `i32`).
pub fn parse_runc_state(bytes: &[u8]) -> Option<RuncStateFile> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    // Not `as i32`: 4294967297 would become pid 1.
    let init_pid = i32::try_from(v.get("init_process_pid")?.as_i64()?).ok()?;
    let init_start = match v.get("init_process_start") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let cgroup_paths = v
        .get("cgroup_paths")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, p)| Some((k.clone(), PathBuf::from(p.as_str()?))))
                .collect()
        })
        .unwrap_or_default();
    let bundle = v
        .pointer("/config/labels")
        .and_then(|l| l.as_array())
        .and_then(|l| {
            l.iter()
                .filter_map(|x| x.as_str())
                .find_map(|x| x.strip_prefix("bundle="))
                .map(PathBuf::from)
        });
    Some(RuncStateFile {
        init_pid,
        init_start,
        cgroup_paths,
        bundle,
    })
}

/// Read `<state_dir>/state.json` (runc).
pub fn read_runc_state(state_dir: &Path) -> Option<RuncStateFile> {
    match read_file(state_dir, "state.json") {
        FileRead::Bytes(b) => parse_runc_state(&b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const FILES: [&str; 5] = [
        "runtime",
        "options.json",
        "init.pid",
        "config.json",
        "address",
    ];

    fn write_all(d: &Path, runtime_bin: &str) {
        let mut c = Config::default();
        c.runtime.binary = "/usr/bin/runsc".into();
        c.runtime.root = Some(PathBuf::from("/run/custom"));
        fs::write(d.join("runtime"), format!("{runtime_bin}\n")).unwrap();
        fs::write(d.join("options.json"), c.to_options_json()).unwrap();
        fs::write(d.join("init.pid"), "4242").unwrap();
        fs::write(
            d.join("config.json"),
            r#"{"ociVersion":"1.0.2","linux":{"cgroupsPath":"/default/c1"}}"#,
        )
        .unwrap();
        fs::write(d.join("address"), "unix:///run/containerd/s/abc").unwrap();
    }

    fn choose(inputs: &BundleInputs, parents: &[PathBuf]) -> (RuntimeChoice, Vec<String>) {
        let mut notes = Vec::new();
        let b = Path::new("/run/b/default/c1");
        let c = choose_runtime(inputs, "default", "c1", b, parents, &mut |w, a| {
            notes.push(format!("{w}: {a}"))
        });
        (c, notes)
    }

    /// Every combination of the five files present or missing: reading
    /// never fails, each file reads as what it is, and the runtime choice
    /// follows the documented order, each fallback noted exactly once.
    #[test]
    fn every_missing_file_combination() {
        let no_probe: Vec<PathBuf> = Vec::new();
        for mask in 0u32..32 {
            let d = tempfile::tempdir().unwrap();
            // /bin/sh exists everywhere: a runtime binary that is found.
            write_all(d.path(), "/bin/sh");
            for (i, f) in FILES.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    fs::remove_file(d.path().join(f)).unwrap();
                }
            }
            let gone = |f: &str| mask & (1 << FILES.iter().position(|x| *x == f).unwrap()) != 0;
            let inp = read_inputs(d.path());
            assert_eq!(inp.runtime.ok().is_none(), gone("runtime"), "{mask}");
            assert_eq!(inp.options.ok().is_none(), gone("options.json"), "{mask}");
            assert_eq!(
                inp.init_pid.ok().copied(),
                (!gone("init.pid")).then_some(4242),
                "{mask}"
            );
            assert_eq!(
                inp.spec.ok().and_then(|s| s.cgroups_path.clone()),
                (!gone("config.json")).then(|| "/default/c1".to_string()),
                "{mask}"
            );
            assert_eq!(inp.address.ok().is_none(), gone("address"), "{mask}");

            let (c, notes) = choose(&inp, &no_probe);
            match (gone("runtime"), gone("options.json")) {
                (false, _) => {
                    assert_eq!(c.config.runtime.binary, "/bin/sh", "{mask}");
                    assert_eq!(c.source, "runtime");
                }
                (true, false) => {
                    assert_eq!(c.config.runtime.binary, "/usr/bin/runsc", "{mask}");
                    assert_eq!(c.kind(), RuntimeKind::Runsc);
                    assert_eq!(c.source, "options.json");
                }
                (true, true) => {
                    assert_eq!(c.config.runtime.binary, "runc", "{mask}");
                    assert_eq!(c.source, "default");
                }
            }
            if gone("options.json") {
                assert_eq!(c.root, Path::new("/run/containerd/runc/default"));
            } else {
                assert_eq!(c.root, Path::new("/run/custom/default"), "{mask}");
            }
            // One note per fallback, none twice.
            let mut dedup = notes.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), notes.len(), "{mask}: {notes:?}");
            let expected = usize::from(gone("options.json")) + usize::from(gone("runtime"));
            assert_eq!(notes.len(), expected, "{mask}: {notes:?}");
        }
    }

    #[test]
    fn truncated_and_corrupt_files() {
        let d = tempfile::tempdir().unwrap();
        write_all(d.path(), "runc");
        fs::write(d.path().join("runtime"), "").unwrap();
        fs::write(d.path().join("options.json"), r#"{"runtime":{"bin"#).unwrap();
        fs::write(d.path().join("init.pid"), "42\0\0").unwrap();
        fs::write(d.path().join("config.json"), "{\"linux\":").unwrap();
        fs::write(d.path().join("address"), [0xff, 0xfe]).unwrap();
        let inp = read_inputs(d.path());
        assert!(matches!(inp.runtime, Input::Unusable(ref w) if w == "empty"));
        assert!(matches!(inp.options, Input::Unusable(ref w) if w.contains("invalid json")));
        assert!(matches!(inp.init_pid, Input::Unusable(_)));
        assert!(matches!(inp.spec, Input::Unusable(ref w) if w.contains("invalid json")));
        assert!(matches!(inp.address, Input::Unusable(_)));
        fs::write(d.path().join("init.pid"), "-1").unwrap();
        fs::write(d.path().join("runtime"), "runc\nrunsc").unwrap();
        fs::write(d.path().join("config.json"), "[]").unwrap();
        let inp = read_inputs(d.path());
        assert!(matches!(inp.init_pid, Input::Unusable(_)));
        assert!(matches!(inp.runtime, Input::Unusable(_)));
        // A pid at or beyond the kernel's pid_max is unknown, as promised
        // in docs/cleanup.md (the pid then comes from the runtime, or is 0).
        let max = crate::bundle::pid_max();
        fs::write(d.path().join("init.pid"), max.to_string()).unwrap();
        let inp = read_inputs(d.path());
        assert!(
            matches!(inp.init_pid, Input::Unusable(ref w) if w.contains("pid_max")),
            "{:?}",
            inp.init_pid
        );
        assert!(matches!(inp.spec, Input::Unusable(_)));
        // A config.json without cgroupsPath is fine.
        fs::write(d.path().join("config.json"), "{}").unwrap();
        assert_eq!(
            read_inputs(d.path()).spec,
            Input::Ok(SpecInfo {
                cgroups_path: None,
                pod_app: false
            })
        );
    }

    #[test]
    fn the_spec_says_whether_it_is_an_app_container_of_a_pod() {
        let d = tempfile::tempdir().unwrap();
        let kind = |t: &str| {
            let json = format!(
                r#"{{"annotations":{{"io.kubernetes.cri.container-type":"{t}","io.kubernetes.cri.sandbox-id":"p1"}}}}"#
            );
            fs::write(d.path().join("config.json"), json).unwrap();
            read_spec(d.path())
        };
        assert!(matches!(kind("container"), Input::Ok(s) if s.pod_app));
        assert!(matches!(kind("sandbox"), Input::Ok(s) if !s.pod_app));
        // ctr's containers carry no annotation: not an app container
        fs::write(d.path().join("config.json"), r#"{"annotations":{}}"#).unwrap();
        assert!(matches!(read_spec(d.path()), Input::Ok(s) if !s.pod_app));
    }

    #[test]
    fn a_runtime_that_is_not_found_falls_back_to_options_json() {
        let d = tempfile::tempdir().unwrap();
        write_all(d.path(), "/nonexistent/runc");
        let (c, notes) = choose(&read_inputs(d.path()), &[]);
        assert_eq!(c.config.runtime.binary, "/usr/bin/runsc");
        assert_eq!(notes.len(), 1, "{notes:?}");
        // Without options.json it is used anyway.
        fs::remove_file(d.path().join("options.json")).unwrap();
        let (c, _) = choose(&read_inputs(d.path()), &[]);
        assert_eq!(c.config.runtime.binary, "/nonexistent/runc");
    }

    #[test]
    fn probing_the_runtime_roots() {
        let roots = tempfile::tempdir().unwrap();
        let runc_parent = roots.path().join("runc");
        let runsc_parent = roots.path().join("runsc");
        fs::create_dir_all(runc_parent.join("default/other")).unwrap();
        fs::create_dir_all(runsc_parent.join("default")).unwrap();
        let parents = vec![runc_parent.clone(), runsc_parent.clone()];
        let d = tempfile::tempdir().unwrap();
        let inp = read_inputs(d.path()); // nothing at all
        let (c, notes) = choose(&inp, &parents);
        assert_eq!(c.source, "default");
        assert_eq!(c.config.runtime.binary, "runc");
        assert_eq!(c.root, Path::new("/run/containerd/runc/default"));
        assert_eq!(notes.len(), 2, "{notes:?}");
        // A runsc state file for c1.
        fs::write(runsc_parent.join("default/c1_sandbox:c1.state"), "{}").unwrap();
        let (c, _) = choose(&inp, &parents);
        assert_eq!(c.source, "probe");
        assert_eq!(c.kind(), RuntimeKind::Runsc);
        assert_eq!(c.root, runsc_parent.join("default"));
        // A runc state dir wins when it comes first.
        fs::create_dir_all(runc_parent.join("default/c1")).unwrap();
        let (c, notes) = choose(&inp, &parents);
        assert_eq!(c.kind(), RuntimeKind::Runc);
        assert_eq!(c.config.runtime.binary, "runc");
        assert_eq!(c.root, runc_parent.join("default"));
        assert_eq!(c.state_dir("c1"), runc_parent.join("default/c1"));
        assert!(
            notes.iter().any(|n| n.contains("found runc state")),
            "{notes:?}"
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        // A custom root with options.json gone but the runtime file there:
        // the binary from the file, the root from the probe.
        let d2 = tempfile::tempdir().unwrap();
        fs::write(d2.path().join("runtime"), "/bin/sh").unwrap();
        let (c, notes) = choose(&read_inputs(d2.path()), &parents);
        assert_eq!(c.config.runtime.binary, "/bin/sh");
        assert_eq!(c.source, "runtime");
        assert_eq!(c.root, runc_parent.join("default"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        // State of a same-named container of another bundle is not ours.
        fs::write(
            runc_parent.join("default/c1/state.json"),
            r#"{"init_process_pid":1,"config":{"labels":["bundle=/elsewhere/c1"]}}"#,
        )
        .unwrap();
        let (c, _) = choose(&inp, &parents);
        assert_eq!(c.kind(), RuntimeKind::Runsc);
        fs::write(
            runc_parent.join("default/c1/state.json"),
            r#"{"init_process_pid":1,"config":{"labels":["bundle=/run/b/default/c1"]}}"#,
        )
        .unwrap();
        let (c, _) = choose(&inp, &parents);
        assert_eq!(c.kind(), RuntimeKind::Runc);
    }

    #[test]
    fn runc_state_file() {
        let s = br#"{"id":"c1","init_process_pid":7688,"init_process_start":135209,
            "cgroup_paths":{"":"/sys/fs/cgroup/unified/default/c1","pids":"/sys/fs/cgroup/pids/default/c1"},
            "config":{"labels":["bundle=/run/b/default/c1"]}}"#;
        let st = parse_runc_state(s).unwrap();
        assert_eq!(st.init_pid, 7688);
        assert_eq!(st.init_start, Some(135209));
        assert_eq!(st.bundle.as_deref(), Some(Path::new("/run/b/default/c1")));
        assert_eq!(st.cgroup_paths.len(), 2);
        assert!(parse_runc_state(b"{}").is_none());
        assert!(parse_runc_state(b"nope").is_none());
        let st = parse_runc_state(br#"{"init_process_pid":1,"init_process_start":"99"}"#).unwrap();
        assert_eq!(st.init_start, Some(99));
        assert_eq!(st.bundle, None);
    }

    /// Caught by the property of fuzz/fuzz_targets/fuzz_runtime_output.rs
    /// (seed state_file_big_pid.json): a pid that does
    /// not fit an i32 was truncated (`4294967297 as i32` is 1, init).
    #[test]
    fn runc_state_pid_out_of_range_is_not_truncated() {
        for big in [
            "4294967297",
            "2147483648",
            "-4294967295",
            "9223372036854775807",
        ] {
            let s = format!(r#"{{"init_process_pid":{big},"init_process_start":"99"}}"#);
            assert_eq!(parse_runc_state(s.as_bytes()), None, "{big}");
        }
        let s = br#"{"init_process_pid":2147483647}"#;
        assert_eq!(parse_runc_state(s).unwrap().init_pid, i32::MAX);
    }
}
