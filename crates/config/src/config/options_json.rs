//! The effective config persisted in the bundle as `options.json`, so that
//! a cleanup after the shim died drives the same runtime the same way.

use std::path::Path;

use super::{read_bounded, Config, RunscValue};
use crate::error::ConfigError;
use crate::{duration, walk};

impl Config {
    /// Serializes the effective config as JSON, for the bundle's
    /// `options.json`.
    ///
    /// The layout mirrors the TOML file (`runtime`, `timeouts`,
    /// `log_level`, `runsc_config`), durations are written in the TOML
    /// syntax, and `runtime.kind` is always written resolved, so that a
    /// later cleanup does not depend on inferring it again. Paths that are
    /// not UTF-8 are written lossily.
    pub fn to_options_json(&self) -> String {
        use serde_json::{Map, Value};
        let rt = &self.runtime;
        let mut runtime = Map::new();
        runtime.insert("binary".into(), Value::from(rt.binary.clone()));
        if let Some(root) = &rt.root {
            runtime.insert("root".into(), Value::from(root.to_string_lossy()));
        }
        runtime.insert("systemd_cgroup".into(), Value::from(rt.systemd_cgroup));
        runtime.insert("no_pivot_root".into(), Value::from(rt.no_pivot_root));
        runtime.insert("no_new_keyring".into(), Value::from(rt.no_new_keyring));
        if let Some(criu) = &rt.criu_path {
            runtime.insert("criu_path".into(), Value::from(criu.to_string_lossy()));
        }
        runtime.insert("kind".into(), Value::from(self.runtime_kind().as_str()));

        let timeouts: Map<String, Value> = self
            .timeouts
            .iter()
            .map(|(k, d)| (k.to_string(), Value::from(duration::format(d))))
            .collect();

        let runsc: Map<String, Value> = self
            .runsc_config
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    RunscValue::String(s) => Value::from(s.clone()),
                    RunscValue::Bool(b) => Value::from(*b),
                    RunscValue::Integer(i) => Value::from(*i),
                };
                (k.clone(), v)
            })
            .collect();

        let mut top = Map::new();
        top.insert("runtime".into(), Value::Object(runtime));
        top.insert("timeouts".into(), Value::Object(timeouts));
        top.insert(
            "log_level".into(),
            Value::from(walk::level_name(self.log_level)),
        );
        top.insert("runsc_config".into(), Value::Object(runsc));
        Value::Object(top).to_string()
    }

    /// Reads a config written by [`Config::to_options_json`]. `origin`
    /// names the file in errors.
    ///
    /// Unknown fields are tolerated (logged at warn level), `null` means
    /// unset, and the snake_case runc options of containerd's own shim
    /// (`binary_name`, `root`, `systemd_cgroup`, ...) are understood at the
    /// top level.
    pub fn from_options_json(json: &[u8], origin: &Path) -> Result<Config, ConfigError> {
        let parsed = walk::parse_json(json, origin)?;
        walk::warn_unknown(origin, &parsed.unknown);
        Ok(parsed.config)
    }

    /// Reads `options.json` from a file: [`Config::from_options_json`] on
    /// its contents.
    pub fn load_options_json(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let bytes = read_bounded(path)?;
        Config::from_options_json(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeKind;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x.toml"))
    }

    #[test]
    fn options_json_round_trips() {
        let mut c = parse(
            r#"
            log_level = "trace"
            [runtime]
            binary = "/usr/bin/runsc"
            root = "/run/r"
            criu_path = "/c"
            systemd_cgroup = true
            [timeouts]
            kill = "1500us"
            stop_grace = "2m"
            [runsc_config]
            platform = "ptrace"
            debug = false
            n = -3
            "#,
        )
        .unwrap();
        let json = c.to_options_json();
        let back = Config::from_options_json(json.as_bytes(), Path::new("options.json")).unwrap();
        // The kind is recorded resolved.
        assert_eq!(back.runtime.kind, Some(RuntimeKind::Runsc));
        c.runtime.kind = Some(RuntimeKind::Runsc);
        assert_eq!(back, c);

        let d = Config::default();
        let back =
            Config::from_options_json(d.to_options_json().as_bytes(), Path::new("o")).unwrap();
        assert_eq!(back.runtime_kind(), RuntimeKind::Runc);
        assert_eq!(back.timeouts, d.timeouts);
        assert_eq!(back.runtime.root, None);
    }

    #[test]
    fn options_json_tolerates_unknown_fields_and_nulls() {
        let json = br#"{"version": 7, "runtime": {"binary": "runc", "root": null, "future": [1, {"a": null}]},
            "timeouts": {"kill": 2500, "later": "1s"}, "extra": {"x": 1.5}}"#;
        let c = Config::from_options_json(json, Path::new("/b/options.json")).unwrap();
        assert_eq!(c.timeouts.kill, Duration::from_millis(2500));
        assert_eq!(c.runtime.root, None);
        let parsed = walk::parse_json(json, Path::new("/b/options.json")).unwrap();
        assert_eq!(
            parsed.unknown,
            vec!["extra", "runtime.future", "timeouts.later", "version"]
        );
    }

    #[test]
    fn options_json_of_containerds_runc_shim_is_understood() {
        let json = br#"{"binary_name":"/usr/local/bin/runc","root":"/run/custom","systemd_cgroup":true,"io_uid":0}"#;
        let c = Config::from_options_json(json, Path::new("options.json")).unwrap();
        assert_eq!(c.runtime.binary, "/usr/local/bin/runc");
        assert_eq!(c.runtime.root.as_deref(), Some(Path::new("/run/custom")));
        assert!(c.runtime.systemd_cgroup);
    }

    #[test]
    fn options_json_errors() {
        let o = Path::new("/b/options.json");
        let e = Config::from_options_json(b"{not json", o)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config /b/options.json: invalid json"), "{e}");
        let e = Config::from_options_json(b"[1,2]", o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a json object"), "{e}");
        let e = Config::from_options_json(br#"{"timeouts":{"kill":"soon"}}"#, o)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config /b/options.json: key timeouts.kill: invalid duration \"soon\"")
        );
        let e = Config::from_options_json(br#"{"timeouts":{"kill":18446744073709551615}}"#, o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("key timeouts.kill"), "{e}");
        assert!(Config::from_options_json(b"", o).is_err());
        assert!(Config::from_options_json(&[0xff, 0x00], o).is_err());
        // Deep nesting is refused by the JSON parser, not a stack overflow.
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Config::from_options_json(deep.as_bytes(), o).is_err());
    }

    #[test]
    fn load_options_json_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("options.json");
        let mut c = Config::default();
        c.runtime.binary = "/usr/bin/runsc".into();
        std::fs::write(&path, c.to_options_json()).unwrap();
        let back = Config::load_options_json(&path).unwrap();
        assert_eq!(back.runtime.binary, "/usr/bin/runsc");
        assert_eq!(back.runtime_kind(), RuntimeKind::Runsc);
        assert!(Config::load_options_json(dir.path().join("nope")).is_err());
    }
}
