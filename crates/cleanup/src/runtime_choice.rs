//! Which runtime and root a dead shim's cleanup drives, decided from what
//! the shim recorded in its bundle ([`robust_bundle::read_inputs`]) and,
//! when that is gone, from the runtime state found under the default
//! roots; each fallback written down once.
//!
//! Everything here reads files only; no process is started, so it is
//! tested without root.

use std::path::{Path, PathBuf};

use robust_bundle::{BundleInputs, Input};
use robust_config::{Config, RuntimeKind};

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
    /// The runtime family.
    pub fn kind(&self) -> RuntimeKind {
        self.config.runtime_kind()
    }

    /// runc's state directory of this container (`<root>/<id>`).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

/// Default runtime root parents probed when nothing recorded one: each
/// family's default, and runc's own.
pub const PROBE_ROOTS: &[&str] = &[
    robust_config::config::DEFAULT_ROOT_PARENT,
    robust_config::config::DEFAULT_RUNSC_ROOT_PARENT,
    "/run/runc",
];

/// What a probe of a runtime root found for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The root parent (without the namespace).
    pub parent: PathBuf,
    /// The family, from the state files' layout.
    pub kind: RuntimeKind,
}

/// Look for the container's runtime state under `<parent>/<ns>`, in each
/// family's layout (`robust_runtime::probe`).
pub fn probe_root(parent: &Path, ns: &str, id: &str, bundle: &Path) -> Option<Probe> {
    robust_runtime::probe(&parent.join(ns), id, bundle).map(|kind| Probe {
        parent: parent.to_path_buf(),
        kind,
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
///   holds state of this container in its family's layout
///   (`robust_runtime::probe`); else the default root.
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

#[cfg(test)]
mod tests {
    use super::*;
    use robust_bundle::read_inputs;
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
}
