//! Every file a shim leaves in its bundle, read tolerantly: what a dead
//! shim's bundle still tells its cleanup. Each file is `Ok`, `Missing` or
//! `Unusable` (with why); reading never fails.

use std::path::Path;

use robust_config::Config;

use crate::files::{parse_pid, read_file, FileRead, Input};
use crate::spec::{read_spec, SpecInfo};

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
    r.decode(|b| match String::from_utf8(b) {
        Ok(s) if s.trim().is_empty() => Err("empty".into()),
        Ok(s) => Ok(s.trim().to_string()),
        Err(_) => Err(format!("{what} is not utf-8")),
    })
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
    let options = read_file(bundle, "options.json").decode(|b| {
        Config::from_options_json(&b, &bundle.join("options.json")).map_err(|e| e.to_string())
    });
    let init_pid = match text(read_file(bundle, "init.pid"), "init.pid") {
        // Beyond the kernel's pid_max is no pid either: unknown, as missing.
        Input::Ok(s) => match parse_pid(&s) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn every_file_is_read() {
        let d = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.runtime.binary = "/usr/bin/runsc".into();
        for (name, text) in [
            ("runtime", "/usr/bin/runsc\n".to_string()),
            ("options.json", c.to_options_json()),
            ("init.pid", "4242".into()),
            (
                "config.json",
                r#"{"linux":{"cgroupsPath":"/default/c1"}}"#.into(),
            ),
            ("address", "unix:///run/containerd/s/abc".into()),
        ] {
            fs::write(d.path().join(name), text).unwrap();
        }
        let inp = read_inputs(d.path());
        assert_eq!(inp.runtime, Input::Ok("/usr/bin/runsc".to_string()));
        assert_eq!(
            inp.options.ok().map(|c| c.runtime.binary.as_str()),
            Some("/usr/bin/runsc")
        );
        assert_eq!(inp.init_pid, Input::Ok(4242));
        assert_eq!(
            inp.spec.ok().and_then(|s| s.cgroups_path.as_deref()),
            Some("/default/c1")
        );
        assert_eq!(
            inp.address,
            Input::Ok("unix:///run/containerd/s/abc".to_string())
        );
        let empty = tempfile::tempdir().unwrap();
        let none = read_inputs(empty.path());
        assert_eq!(none.runtime, Input::Missing);
        assert!(matches!(none.options, Input::Missing));
        assert_eq!(none.init_pid, Input::Missing);
        assert_eq!(none.spec, Input::Missing);
        assert_eq!(none.address, Input::Missing);
    }

    #[test]
    fn truncated_and_corrupt_files() {
        let d = tempfile::tempdir().unwrap();
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
        let max = crate::pid_max();
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
        assert_eq!(read_inputs(d.path()).spec, Input::Ok(SpecInfo::default()));
    }
}
