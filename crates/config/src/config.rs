//! The shim's configuration: types, defaults and the TOML / JSON entry
//! points. The key-by-key reading lives in the private `walk` module.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;

use crate::error::ConfigError;
use crate::{duration, ids, walk};

/// Largest config file (or `options.json`) the crate reads, in bytes.
///
/// A real config is a few hundred bytes; the bound keeps a wrong path such
/// as `/dev/zero` from eating the shim's memory.
pub const MAX_FILE_LEN: u64 = 1 << 20;

/// Parent of the runtime root when none is configured: the effective root
/// is `/run/containerd/runc/<namespace>`, as with containerd's runc shim.
pub const DEFAULT_ROOT_PARENT: &str = "/run/containerd/runc";

/// Default parent of runsc's state root (`--root <parent>/<namespace>`).
pub const DEFAULT_RUNSC_ROOT_PARENT: &str = "/run/containerd/runsc";

/// Default runtime binary.
pub const DEFAULT_BINARY: &str = "runc";

/// The shim's configuration, with safe defaults.
///
/// Build it with [`Config::default`], [`Config::load`], [`Config::parse`],
/// [`crate::options::config_from_any`] or [`Config::from_options_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The OCI runtime and how to call it (`[runtime]`).
    pub runtime: RuntimeConfig,
    /// Every deadline and grace period (`[timeouts]`).
    pub timeouts: Timeouts,
    /// The shim's log level (`log_level`).
    pub log_level: LevelFilter,
    /// Extra runsc flags (`[runsc_config]`), sorted by name. See
    /// [`Config::runsc_flags`].
    pub runsc_config: BTreeMap<String, RunscValue>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            runtime: RuntimeConfig::default(),
            timeouts: Timeouts::default(),
            log_level: LevelFilter::Info,
            runsc_config: BTreeMap::new(),
        }
    }
}

/// The `[runtime]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The runtime binary: a name looked up in `PATH`, or a path.
    pub binary: String,
    /// The runtime's state root parent; `None` means
    /// [`DEFAULT_ROOT_PARENT`]. See [`Config::runtime_root`].
    pub root: Option<PathBuf>,
    /// Use the systemd cgroup driver (`--systemd-cgroup`).
    pub systemd_cgroup: bool,
    /// Pass `--no-pivot` to `create`.
    pub no_pivot_root: bool,
    /// Pass `--no-new-keyring` to `create`.
    pub no_new_keyring: bool,
    /// The criu binary for checkpoint / restore.
    pub criu_path: Option<PathBuf>,
    /// The runtime family, when set explicitly. `None` means inferred from
    /// the binary's file name: see [`Config::runtime_kind`].
    pub kind: Option<RuntimeKind>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            binary: DEFAULT_BINARY.to_string(),
            root: None,
            systemd_cgroup: false,
            no_pivot_root: false,
            no_new_keyring: false,
            criu_path: None,
            kind: None,
        }
    }
}

/// The runtime family: it decides how the shim drives the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// runc and runtimes with runc's CLI.
    Runc,
    /// gVisor's runsc.
    Runsc,
}

impl RuntimeKind {
    /// The name as written in the config: `"runc"` or `"runsc"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Runsc => "runsc",
        }
    }

    /// Parses `"runc"` or `"runsc"`.
    pub fn from_name(name: &str) -> Option<RuntimeKind> {
        match name {
            "runc" => Some(RuntimeKind::Runc),
            "runsc" => Some(RuntimeKind::Runsc),
            _ => None,
        }
    }

    /// Infers the family from a binary name or path: runsc when the file
    /// name is `runsc` or starts with `runsc` (e.g. `runsc-debug`), runc
    /// otherwise.
    pub fn from_binary(binary: &str) -> RuntimeKind {
        let file_name = Path::new(binary)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        if file_name.starts_with("runsc") {
            RuntimeKind::Runsc
        } else {
            RuntimeKind::Runc
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value of the `[runsc_config]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunscValue {
    /// A string flag value.
    String(String),
    /// A boolean flag, written `--key=true` or `--key=false`.
    Bool(bool),
    /// An integer flag value.
    Integer(i64),
}

impl std::fmt::Display for RunscValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunscValue::String(s) => f.write_str(s),
            RunscValue::Bool(b) => write!(f, "{b}"),
            RunscValue::Integer(i) => write!(f, "{i}"),
        }
    }
}

/// Every deadline and grace period of the shim (`[timeouts]`).
///
/// Each is non-zero and at most [`duration::MAX_DURATION`] when it comes
/// from a parsed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Runtime `create`.
    pub create: Duration,
    /// Runtime `start`.
    pub start: Duration,
    /// Runtime `exec`.
    pub exec: Duration,
    /// Runtime `kill`.
    pub kill: Duration,
    /// Runtime `delete`.
    pub delete: Duration,
    /// Runtime `state`.
    pub state: Duration,
    /// Runtime `pause`.
    pub pause: Duration,
    /// Runtime `resume`.
    pub resume: Duration,
    /// Runtime `update`.
    pub update: Duration,
    /// Runtime `ps`.
    pub ps: Duration,
    /// Any other runtime verb.
    pub default: Duration,
    /// SIGTERM to SIGKILL, in the shim's own escalations.
    pub stop_grace: Duration,
    /// After SIGKILL, before a forced delete.
    pub kill_grace: Duration,
    /// After the daemon has stopped its containers on SIGTERM/SIGINT: how
    /// long it may spend delivering the events still queued.
    pub shutdown: Duration,
    /// EBUSY retries of an unmount before a lazy detach.
    pub unmount: Duration,
    /// Retries of publishing one ordinary event (exits and OOMs are retried
    /// until delivered).
    pub publish: Duration,
    /// After a process exited: how long its output is still copied while a
    /// background process keeps the pipe or terminal open.
    pub io_drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            create: s(30),
            start: s(30),
            exec: s(30),
            kill: s(10),
            delete: s(10),
            state: s(5),
            pause: s(10),
            resume: s(10),
            update: s(10),
            ps: s(5),
            default: s(10),
            stop_grace: s(10),
            kill_grace: s(2),
            shutdown: s(5),
            unmount: s(2),
            publish: s(30),
            io_drain: s(2),
        }
    }
}

impl Timeouts {
    /// The keys of the `[timeouts]` table, in documentation order.
    pub const KEYS: [&'static str; 17] = [
        "create",
        "start",
        "exec",
        "kill",
        "delete",
        "state",
        "pause",
        "resume",
        "update",
        "ps",
        "default",
        "stop_grace",
        "kill_grace",
        "shutdown",
        "unmount",
        "publish",
        "io_drain",
    ];

    /// The deadline of one runtime call: `"create"`, `"start"`, `"exec"`,
    /// `"kill"`, `"delete"`, `"state"`, `"pause"`, `"resume"`, `"update"`,
    /// `"ps"`; any other verb gets [`Timeouts::default`](field@Timeouts::default).
    pub fn for_verb(&self, verb: &str) -> Duration {
        match verb {
            "create" => self.create,
            "start" => self.start,
            "exec" => self.exec,
            "kill" => self.kill,
            "delete" => self.delete,
            "state" => self.state,
            "pause" => self.pause,
            "resume" => self.resume,
            "update" => self.update,
            "ps" => self.ps,
            _ => self.default,
        }
    }

    /// The value of a `[timeouts]` key, `None` for an unknown key.
    pub fn get(&self, key: &str) -> Option<Duration> {
        let mut copy = *self;
        copy.slot_mut(key).map(|d| *d)
    }

    /// `(key, value)` for every key, in [`Timeouts::KEYS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        Self::KEYS
            .iter()
            .filter_map(move |k| self.get(k).map(|d| (*k, d)))
    }

    pub(crate) fn slot_mut(&mut self, key: &str) -> Option<&mut Duration> {
        Some(match key {
            "create" => &mut self.create,
            "start" => &mut self.start,
            "exec" => &mut self.exec,
            "kill" => &mut self.kill,
            "delete" => &mut self.delete,
            "state" => &mut self.state,
            "pause" => &mut self.pause,
            "resume" => &mut self.resume,
            "update" => &mut self.update,
            "ps" => &mut self.ps,
            "default" => &mut self.default,
            "stop_grace" => &mut self.stop_grace,
            "kill_grace" => &mut self.kill_grace,
            "shutdown" => &mut self.shutdown,
            "unmount" => &mut self.unmount,
            "publish" => &mut self.publish,
            "io_drain" => &mut self.io_drain,
            _ => return None,
        })
    }
}

impl Config {
    /// Reads and parses the TOML file at `path`.
    ///
    /// Errors name the file: it cannot be read, is larger than
    /// [`MAX_FILE_LEN`], is not UTF-8 or not TOML, or a key is wrong.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Config::parse(&text, path)
    }

    /// Parses TOML text. `origin` names the text in errors and warnings
    /// (the file it came from, or a pseudo path).
    ///
    /// Unknown keys are logged at warn level (once per origin and key) and
    /// otherwise ignored; a key of the wrong type or an invalid value is an
    /// error.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let parsed = walk::parse_toml(text, origin)?;
        walk::warn_unknown(origin, &parsed.unknown);
        Ok(parsed.config)
    }

    /// The runtime family: `[runtime] kind` when set, else inferred from
    /// the binary's file name ([`RuntimeKind::from_binary`]).
    pub fn runtime_kind(&self) -> RuntimeKind {
        self.runtime
            .kind
            .unwrap_or_else(|| RuntimeKind::from_binary(&self.runtime.binary))
    }

    /// The runtime's `--root` for a namespace: the configured root (or
    /// [`DEFAULT_ROOT_PARENT`], [`DEFAULT_RUNSC_ROOT_PARENT`] for runsc)
    /// joined with the namespace, as containerd's runc shim does. The
    /// namespace is validated first, since it becomes a path component.
    pub fn runtime_root(&self, namespace: &str) -> Result<PathBuf, ConfigError> {
        ids::validate(ids::NAMESPACE, namespace)?;
        let default = match self.runtime_kind() {
            RuntimeKind::Runc => DEFAULT_ROOT_PARENT,
            RuntimeKind::Runsc => DEFAULT_RUNSC_ROOT_PARENT,
        };
        let parent = self.runtime.root.as_deref().unwrap_or(Path::new(default));
        Ok(parent.join(namespace))
    }

    /// The `[runsc_config]` table as runsc flags, `--key=value`, sorted by
    /// key; booleans are written `--key=true` / `--key=false`.
    pub fn runsc_flags(&self) -> Vec<String> {
        self.runsc_config
            .iter()
            .map(|(k, v)| format!("--{k}={v}"))
            .collect()
    }

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

fn read_bounded(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    // A FIFO (or a terminal) would block the open or the read forever, and
    // `start` with it: only a regular file (or a symlink to one) is read.
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::other("not a regular file")));
    }
    let file = File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() as u64 > MAX_FILE_LEN {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_LEN,
        });
    }
    Ok(buf)
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = read_bounded(path)?;
    String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: format!("not utf-8 (at byte {})", e.utf8_error().valid_up_to()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn origin() -> &'static Path {
        Path::new("/etc/x.toml")
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, origin())
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.runtime.binary, "runc");
        assert_eq!(c.runtime.root, None);
        assert!(!c.runtime.systemd_cgroup);
        assert!(!c.runtime.no_pivot_root);
        assert!(!c.runtime.no_new_keyring);
        assert_eq!(c.runtime.criu_path, None);
        assert_eq!(c.runtime.kind, None);
        assert_eq!(c.runtime_kind(), RuntimeKind::Runc);
        assert_eq!(c.log_level, LevelFilter::Info);
        assert!(c.runsc_flags().is_empty());
        let t = c.timeouts;
        let s = Duration::from_secs;
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![
                ("create", s(30)),
                ("start", s(30)),
                ("exec", s(30)),
                ("kill", s(10)),
                ("delete", s(10)),
                ("state", s(5)),
                ("pause", s(10)),
                ("resume", s(10)),
                ("update", s(10)),
                ("ps", s(5)),
                ("default", s(10)),
                ("stop_grace", s(10)),
                ("kill_grace", s(2)),
                ("shutdown", s(5)),
                ("unmount", s(2)),
                ("publish", s(30)),
                ("io_drain", s(2)),
            ]
        );
        // An empty file is the defaults.
        assert_eq!(parse("").unwrap(), c);
        assert_eq!(parse("# only a comment\n").unwrap(), c);
    }

    #[test]
    fn full_file_is_read() {
        let c = parse(
            r#"
            log_level = "debug"

            [runtime]
            binary = "/usr/bin/runsc"
            root = "/run/robust/runsc"
            systemd_cgroup = true
            no_pivot_root = true
            no_new_keyring = true
            criu_path = "/usr/sbin/criu"

            [timeouts]
            create = "1m"
            start = "1500ms"
            exec = 20000
            kill = "3s"
            delete = "4s"
            state = "1s"
            pause = "2s"
            resume = "2s"
            update = "2s"
            ps = "2s"
            default = "7s"
            stop_grace = "1m30s"
            kill_grace = "500ms"
            shutdown = "3s"
            unmount = "1s"
            publish = "2s"
            io_drain = "750ms"

            [runsc_config]
            platform = "ptrace"
            network = "none"
            debug = true
            num-network-channels = 2
            "#,
        )
        .unwrap();
        assert_eq!(c.log_level, LevelFilter::Debug);
        assert_eq!(c.runtime.binary, "/usr/bin/runsc");
        assert_eq!(
            c.runtime.root.as_deref(),
            Some(Path::new("/run/robust/runsc"))
        );
        assert!(c.runtime.systemd_cgroup && c.runtime.no_pivot_root && c.runtime.no_new_keyring);
        assert_eq!(
            c.runtime.criu_path.as_deref(),
            Some(Path::new("/usr/sbin/criu"))
        );
        assert_eq!(c.runtime_kind(), RuntimeKind::Runsc);
        let t = &c.timeouts;
        assert_eq!(t.create, Duration::from_secs(60));
        assert_eq!(t.start, Duration::from_millis(1500));
        assert_eq!(t.exec, Duration::from_secs(20));
        assert_eq!(t.stop_grace, Duration::from_secs(90));
        assert_eq!(t.kill_grace, Duration::from_millis(500));
        assert_eq!(t.default, Duration::from_secs(7));
        assert_eq!(t.io_drain, Duration::from_millis(750));
        assert_eq!(
            c.runsc_flags(),
            vec![
                "--debug=true",
                "--network=none",
                "--num-network-channels=2",
                "--platform=ptrace",
            ]
        );
    }

    #[test]
    fn for_verb_maps_every_verb() {
        let mut t = Timeouts::default();
        for (i, k) in Timeouts::KEYS.iter().enumerate() {
            *t.slot_mut(k).unwrap() = Duration::from_millis(100 + i as u64);
        }
        for (i, verb) in [
            "create", "start", "exec", "kill", "delete", "state", "pause", "resume", "update", "ps",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(t.for_verb(verb), Duration::from_millis(100 + i as u64));
        }
        assert_eq!(t.for_verb("checkpoint"), t.default);
        assert_eq!(t.for_verb(""), t.default);
        assert_eq!(t.for_verb("CREATE"), t.default);
        assert_eq!(t.get("publish"), Some(t.publish));
        assert_eq!(t.get("nope"), None);
    }

    #[test]
    fn kind_is_inferred_from_the_binary_file_name() {
        for (binary, kind) in [
            ("runc", RuntimeKind::Runc),
            ("/usr/sbin/runc", RuntimeKind::Runc),
            ("crun", RuntimeKind::Runc),
            ("runsc", RuntimeKind::Runsc),
            ("/usr/bin/runsc", RuntimeKind::Runsc),
            ("runsc-debug", RuntimeKind::Runsc),
            ("/opt/runsc/bin/runc", RuntimeKind::Runc),
            ("my-runsc", RuntimeKind::Runc),
            ("/", RuntimeKind::Runc),
        ] {
            assert_eq!(RuntimeKind::from_binary(binary), kind, "{binary}");
        }
        // An explicit kind wins.
        let c = parse("[runtime]\nbinary = \"/opt/gvisor/sandbox\"\nkind = \"runsc\"\n").unwrap();
        assert_eq!(c.runtime_kind(), RuntimeKind::Runsc);
        let c = parse("[runtime]\nbinary = \"runsc\"\nkind = \"runc\"\n").unwrap();
        assert_eq!(c.runtime_kind(), RuntimeKind::Runc);
        assert!(err("[runtime]\nkind = \"crun\"\n")
            .starts_with("config /etc/x.toml: key runtime.kind: invalid value \"crun\""));
    }

    #[test]
    fn runtime_root_appends_the_namespace() {
        let c = Config::default();
        assert_eq!(
            c.runtime_root("k8s.io").unwrap(),
            PathBuf::from("/run/containerd/runc/k8s.io")
        );
        let c = parse("[runtime]\nroot = \"/run/custom\"\n").unwrap();
        assert_eq!(
            c.runtime_root("default").unwrap(),
            PathBuf::from("/run/custom/default")
        );
        assert!(c.runtime_root("../etc").is_err());
        assert!(c.runtime_root("").is_err());
    }

    #[test]
    fn unknown_keys_are_not_errors() {
        let c = parse(
            r#"
            surprise = 1
            [runtime]
            binary = "runc"
            shiny = true
            [timeouts]
            forever = "1h"
            [future_table]
            x = 1
            "#,
        )
        .unwrap();
        assert_eq!(c, Config::default());
        let parsed = walk::parse_toml(
            "surprise = 1\n[runtime]\nshiny = true\n[timeouts]\nforever = \"1h\"\n[\"odd key\"]\n",
            origin(),
        )
        .unwrap();
        assert_eq!(
            parsed.unknown,
            vec![
                "\"odd key\"",
                "runtime.shiny",
                "surprise",
                "timeouts.forever"
            ]
        );
    }

    #[test]
    fn wrong_types_name_file_and_key() {
        assert_eq!(
            err("[runtime]\nsystemd_cgroup = \"yes\"\n"),
            "config /etc/x.toml: key runtime.systemd_cgroup: expected a boolean, found string"
        );
        assert_eq!(
            err("runtime = 3\n"),
            "config /etc/x.toml: key runtime: expected a table, found integer"
        );
        assert_eq!(
            err("[runtime]\nbinary = 5\n"),
            "config /etc/x.toml: key runtime.binary: expected a string, found integer"
        );
        assert_eq!(
            err("log_level = true\n"),
            "config /etc/x.toml: key log_level: expected a string, found boolean"
        );
        assert!(err("[timeouts]\nkill = 1.5\n")
            .starts_with("config /etc/x.toml: key timeouts.kill: expected a duration string"));
        assert!(err("[timeouts]\nkill = [1]\n").contains("found array"));
        assert!(err("timeouts = \"10s\"\n").contains("key timeouts: expected a table"));
        assert!(err("[runsc_config]\nplatform = 1.5\n").contains("key runsc_config.platform"));
        assert!(err("[runsc_config]\nplatform = [\"a\"]\n").contains("found array"));
        assert!(err("runsc_config = 1\n").contains("key runsc_config: expected a table"));
        assert!(err("[runtime]\ncriu_path = false\n").contains("key runtime.criu_path"));
        assert!(err("[runtime]\nroot = 1979-05-27\n").contains("found datetime"));
    }

    #[test]
    fn bad_durations_are_errors() {
        assert_eq!(
            err("[timeouts]\nkill = \"ten seconds\"\n")
                .split(": ")
                .take(3)
                .collect::<Vec<_>>(),
            vec![
                "config /etc/x.toml",
                "key timeouts.kill",
                "invalid duration \"ten seconds\""
            ]
        );
        assert!(err("[timeouts]\nstop_grace = \"0s\"\n").contains(
            "key timeouts.stop_grace: invalid duration \"0s\": must be greater than zero"
        ));
        assert!(err("[timeouts]\ncreate = 0\n").contains("key timeouts.create: invalid duration 0"));
        assert!(err("[timeouts]\ncreate = -5\n").contains("negative"));
        assert!(err("[timeouts]\ncreate = \"-5s\"\n").contains("negative"));
        assert!(err("[timeouts]\ncreate = \"10\"\n").contains("missing unit"));
        assert!(err("[timeouts]\ncreate = \"1000h\"\n").contains("too large"));
        assert!(err("[timeouts]\ncreate = 9223372036854775807\n").contains("too large"));
        assert!(err("[timeouts]\nunmount = \"\"\n").contains("key timeouts.unmount"));
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(err("log_level = \"loud\"\n")
            .starts_with("config /etc/x.toml: key log_level: invalid value \"loud\""));
        assert!(err("[runtime]\nbinary = \"\"\n").contains("key runtime.binary"));
        assert!(err("[runtime]\nbinary = \"ru\\u0000nc\"\n").contains("nul"));
        assert!(err("[runtime]\nroot = \"relative/dir\"\n").contains("absolute"));
        assert_eq!(
            err("[runsc_config]\n\"--platform\" = \"ptrace\"\n"),
            "config /etc/x.toml: key runsc_config.--platform: invalid value \"--platform\": \
             write the flag name without leading dashes"
        );
        assert!(err("[runsc_config]\n\"a=b\" = \"c\"\n").contains("invalid value"));
        assert!(err("[runsc_config]\n\"\" = \"c\"\n").contains("invalid value"));
        assert!(err("[runsc_config]\nx = \"a\\u0000\"\n").contains("nul"));
    }

    #[test]
    fn empty_optional_strings_mean_unset() {
        let c = parse("[runtime]\nroot = \"\"\ncriu_path = \"\"\n").unwrap();
        assert_eq!(c.runtime.root, None);
        assert_eq!(c.runtime.criu_path, None);
    }

    #[test]
    fn log_levels() {
        for (text, level) in [
            ("trace", LevelFilter::Trace),
            ("debug", LevelFilter::Debug),
            ("info", LevelFilter::Info),
            ("warn", LevelFilter::Warn),
            ("warning", LevelFilter::Warn),
            ("error", LevelFilter::Error),
            ("fatal", LevelFilter::Error),
            ("panic", LevelFilter::Error),
            ("off", LevelFilter::Off),
            ("DEBUG", LevelFilter::Debug),
        ] {
            let c = parse(&format!("log_level = \"{text}\"\n")).unwrap();
            assert_eq!(c.log_level, level, "{text}");
        }
    }

    #[test]
    fn runc_style_aliases_are_understood() {
        // What CRI puts into config_body when a user keeps runc's option
        // names under our runtime.
        let c = parse(
            "TypeUrl = \"x\"\nBinaryName = \"/usr/bin/runsc\"\nRoot = \"/r\"\nSystemdCgroup = true\n\
             NoPivotRoot = true\nNoNewKeyring = true\nCriuPath = \"/c\"\n",
        )
        .unwrap();
        assert_eq!(c.runtime.binary, "/usr/bin/runsc");
        assert_eq!(c.runtime.root.as_deref(), Some(Path::new("/r")));
        assert!(c.runtime.systemd_cgroup && c.runtime.no_pivot_root && c.runtime.no_new_keyring);
        assert_eq!(c.runtime.criu_path.as_deref(), Some(Path::new("/c")));
        // The [runtime] table wins over an alias, whatever the order.
        let c = parse("[runtime]\nbinary = \"runc\"\n[x]\n").unwrap();
        assert_eq!(c.runtime.binary, "runc");
        let c = parse("BinaryName = \"crun\"\n[runtime]\nbinary = \"runc\"\n").unwrap();
        assert_eq!(c.runtime.binary, "runc");
        assert!(err("SystemdCgroup = \"true\"\n").contains("key SystemdCgroup: expected a boolean"));
    }

    #[test]
    fn syntax_errors_name_the_file_and_position() {
        let e = err("[runtime]\nbinary = \n");
        assert!(
            e.starts_with("config /etc/x.toml: invalid toml at line 2, column"),
            "{e}"
        );
        let e = err("a = 1\na = 2\n");
        assert!(e.starts_with("config /etc/x.toml: invalid toml"), "{e}");
    }

    #[test]
    fn load_reads_a_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("robust.toml");
        std::fs::write(&path, "[timeouts]\nkill = \"ten seconds\"\n").unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert_eq!(
            e.split(": ").take(3).collect::<Vec<_>>().join(": "),
            format!(
                "config {}: key timeouts.kill: invalid duration \"ten seconds\"",
                path.display()
            )
        );

        std::fs::write(&path, "[runtime]\nbinary = \"crun\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().runtime.binary, "crun");

        let missing = dir.path().join("missing.toml");
        let e = Config::load(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e
            .to_string()
            .starts_with(&format!("config {}: cannot read", missing.display())));

        let mut f = File::create(&path).unwrap();
        f.write_all(&[0xff, 0xfe, b'a']).unwrap();
        drop(f);
        assert!(Config::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not utf-8"));

        let big = vec![b'#'; MAX_FILE_LEN as usize + 1];
        std::fs::write(&path, big).unwrap();
        assert!(matches!(
            Config::load(&path).unwrap_err(),
            ConfigError::TooLarge { .. }
        ));
    }

    /// Found while writing fuzz/fuzz_targets/fuzz_options_any.rs (a
    /// runtime options `config_path` is opened as sent): a FIFO blocked
    /// `Config::load` forever; a directory or a device is refused too.
    #[test]
    fn load_refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Config::load(&f).map_err(|e| e.to_string()));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("Config::load of a fifo hangs")
            .unwrap_err();
        assert_eq!(
            e,
            format!("config {}: cannot read: not a regular file", fifo.display())
        );
        for p in [dir.path(), Path::new("/dev/null")] {
            let e = Config::load(p).unwrap_err().to_string();
            assert!(e.ends_with("cannot read: not a regular file"), "{e}");
            assert!(Config::load_options_json(p).is_err());
        }
        // A symlink to a regular file is fine.
        let real = dir.path().join("real.toml");
        std::fs::write(&real, "[runtime]\nbinary = \"crun\"\n").unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(Config::load(&link).unwrap().runtime.binary, "crun");
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

    #[test]
    fn the_sample_config_documents_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime-config/robust.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // As shipped, the sample sets every key to its default.
        let parsed = walk::parse_toml(&text, &path).unwrap();
        assert!(parsed.unknown.is_empty(), "{:?}", parsed.unknown);
        assert_eq!(parsed.config, Config::default());
        // Every key is there (set, or commented out when it has no default).
        for key in Timeouts::KEYS.iter().chain(&[
            "log_level",
            "binary",
            "kind",
            "root",
            "systemd_cgroup",
            "no_pivot_root",
            "no_new_keyring",
            "criu_path",
            "[runsc_config]",
        ]) {
            assert!(
                text.lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(key)),
                "{key} is not documented"
            );
        }
        // The commented-out examples are valid when uncommented.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty()
                            && k.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    }) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = walk::parse_toml(&uncommented, &path).unwrap();
        assert!(parsed.unknown.is_empty(), "{:?}", parsed.unknown);
        assert_eq!(
            parsed.config.runtime.criu_path.as_deref(),
            Some(Path::new("/usr/sbin/criu"))
        );
        assert!(parsed
            .config
            .runsc_flags()
            .contains(&"--platform=ptrace".to_string()));
    }

    #[test]
    fn no_panic_on_hostile_toml() {
        let inputs = [
            "[".repeat(100_000),
            "a = ".to_string() + &"[".repeat(100_000),
            "a = {".repeat(10_000),
            "\u{0}".to_string(),
            "[runtime]\nbinary = '''".to_string(),
            "x.y.z.w = 1\n".repeat(1000),
            "[[runtime]]\nbinary = \"runc\"\n".to_string(),
            "[runsc_config]\na = { b = 1 }\n".to_string(),
        ];
        for input in inputs {
            let _ = parse(&input);
        }
    }
}
