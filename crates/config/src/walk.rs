//! Reading a config document key by key.
//!
//! Both the TOML file and `options.json` are turned into a `toml::Table`
//! and walked here, so that they share one set of rules: unknown keys are
//! collected (the caller warns about them), wrong types and invalid values
//! are errors naming the origin and the dotted key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use log::LevelFilter;
use toml::{Table, Value};

use crate::config::{Config, RunscValue, RuntimeConfig, RuntimeKind};
use crate::duration;
use crate::error::{normalize, quote, ConfigError};

/// A walked document: the config and the dotted paths of keys that were
/// not understood.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub config: Config,
    pub unknown: Vec<String>,
}

/// Top-level keys understood as aliases of `[runtime]` keys: runc's option
/// names as CRI writes them into `config_body` (CamelCase), and as
/// containerd's runc shim writes them into `options.json` (snake_case).
/// A key set in the `[runtime]` table wins over its alias.
const RUNTIME_ALIASES: &[(&str, &str)] = &[
    ("BinaryName", "binary"),
    ("binary_name", "binary"),
    ("Root", "root"),
    ("root", "root"),
    ("SystemdCgroup", "systemd_cgroup"),
    ("systemd_cgroup", "systemd_cgroup"),
    ("NoPivotRoot", "no_pivot_root"),
    ("no_pivot_root", "no_pivot_root"),
    ("NoNewKeyring", "no_new_keyring"),
    ("no_new_keyring", "no_new_keyring"),
    ("CriuPath", "criu_path"),
    ("criu_path", "criu_path"),
];

/// Top-level keys that CRI itself puts into `config_body` and that carry
/// nothing for the shim: accepted silently.
const CRI_OWN_KEYS: &[&str] = &["TypeUrl", "ConfigPath"];

/// Most unknown-key warnings remembered for de-duplication.
const MAX_REMEMBERED_WARNINGS: usize = 1024;

pub(crate) fn parse_toml(text: &str, origin: &Path) -> Result<Parsed, ConfigError> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: origin.to_path_buf(),
            message: toml_message(text, &e),
        })?;
    walk(&table, origin)
}

pub(crate) fn parse_json(json: &[u8], origin: &Path) -> Result<Parsed, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        path: origin.to_path_buf(),
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| syntax(format!("invalid json: {}", normalize(&e.to_string()))))?;
    let serde_json::Value::Object(map) = value else {
        return Err(syntax("invalid json: expected a json object".to_string()));
    };
    walk(&json_object_to_table(map), origin)
}

/// Walks a table built in code (e.g. from runc options).
pub(crate) fn parse_table(table: &Table, origin: &Path) -> Result<Parsed, ConfigError> {
    walk(table, origin)
}

/// Logs each unknown key at warn level, once per origin and key for the
/// life of the process (a shim loads the same file for every container).
pub(crate) fn warn_unknown(origin: &Path, unknown: &[String]) {
    if unknown.is_empty() {
        return;
    }
    static SEEN: OnceLock<Mutex<HashSet<(PathBuf, String)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashSet::new()));
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    for key in unknown {
        let entry = (origin.to_path_buf(), key.clone());
        let first = if seen.contains(&entry) {
            false
        } else {
            if seen.len() < MAX_REMEMBERED_WARNINGS {
                seen.insert(entry);
            }
            true
        };
        if first {
            log::warn!("config {}: unknown key {key}, ignored", origin.display());
        }
    }
}

/// The config's name for a level filter.
pub(crate) fn level_name(level: LevelFilter) -> &'static str {
    match level {
        LevelFilter::Off => "off",
        LevelFilter::Error => "error",
        LevelFilter::Warn => "warn",
        LevelFilter::Info => "info",
        LevelFilter::Debug => "debug",
        LevelFilter::Trace => "trace",
    }
}

/// Parses a log level name: trace, debug, info, warn (or warning), error;
/// also containerd's fatal and panic (as error) and off. Case-insensitive.
pub(crate) fn parse_level(name: &str) -> Option<LevelFilter> {
    match name.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::Trace),
        "debug" => Some(LevelFilter::Debug),
        "info" => Some(LevelFilter::Info),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "error" | "fatal" | "panic" => Some(LevelFilter::Error),
        "off" => Some(LevelFilter::Off),
        _ => None,
    }
}

struct Walker<'a> {
    origin: &'a Path,
    unknown: Vec<String>,
}

fn walk(table: &Table, origin: &Path) -> Result<Parsed, ConfigError> {
    let mut w = Walker {
        origin,
        unknown: Vec::new(),
    };
    let mut config = Config::default();

    // Aliases first, so that the [runtime] table (walked below) wins.
    for (key, value) in table {
        if let Some((_, field)) = RUNTIME_ALIASES.iter().find(|(alias, _)| alias == key) {
            w.runtime_field(&mut config.runtime, field, value, &segment(key))?;
        }
    }

    for (key, value) in table {
        let path = segment(key);
        match key.as_str() {
            "runtime" => {
                let t = w.table(value, &path)?;
                for (k, v) in t {
                    let p = join(&path, k);
                    if !w.runtime_field(&mut config.runtime, k, v, &p)? {
                        w.unknown.push(p);
                    }
                }
            }
            "timeouts" => {
                let t = w.table(value, &path)?;
                for (k, v) in t {
                    let p = join(&path, k);
                    match config.timeouts.slot_mut(k) {
                        Some(slot) => *slot = w.duration(v, &p)?,
                        None => w.unknown.push(p),
                    }
                }
            }
            "log_level" => {
                let s = w.string(value, &path)?;
                config.log_level = parse_level(s).ok_or_else(|| {
                    w.invalid(&path, s, "expected trace, debug, info, warn, error or off")
                })?;
            }
            "runsc_config" => {
                let t = w.table(value, &path)?;
                for (k, v) in t {
                    let p = join(&path, k);
                    check_flag_name(k).map_err(|reason| w.invalid(&p, k, reason))?;
                    let v = match v {
                        Value::String(s) => {
                            if s.contains('\0') {
                                return Err(w.invalid(&p, s, "contains a nul byte"));
                            }
                            RunscValue::String(s.clone())
                        }
                        Value::Boolean(b) => RunscValue::Bool(*b),
                        Value::Integer(i) => RunscValue::Integer(*i),
                        other => {
                            return Err(w.wrong_type(&p, "a string, boolean or integer", other))
                        }
                    };
                    config.runsc_config.insert(k.clone(), v);
                }
            }
            k if RUNTIME_ALIASES.iter().any(|(alias, _)| *alias == k) => {}
            k if CRI_OWN_KEYS.contains(&k) => {}
            _ => w.unknown.push(path),
        }
    }

    w.unknown.sort();
    Ok(Parsed {
        config,
        unknown: w.unknown,
    })
}

impl Walker<'_> {
    /// Sets one `[runtime]` field by its canonical name. Returns false for
    /// a name that is not a runtime field.
    fn runtime_field(
        &self,
        rt: &mut RuntimeConfig,
        field: &str,
        value: &Value,
        path: &str,
    ) -> Result<bool, ConfigError> {
        match field {
            "binary" => {
                let s = self.string(value, path)?;
                if s.trim().is_empty() {
                    return Err(self.invalid(path, s, "must not be empty"));
                }
                self.no_nul(path, s)?;
                rt.binary = s.to_string();
            }
            "root" => {
                let s = self.string(value, path)?;
                self.no_nul(path, s)?;
                rt.root = if s.is_empty() {
                    None
                } else if Path::new(s).is_absolute() {
                    Some(PathBuf::from(s))
                } else {
                    return Err(self.invalid(path, s, "must be an absolute path"));
                };
            }
            "criu_path" => {
                let s = self.string(value, path)?;
                self.no_nul(path, s)?;
                rt.criu_path = (!s.is_empty()).then(|| PathBuf::from(s));
            }
            "kind" => {
                let s = self.string(value, path)?;
                rt.kind = Some(
                    RuntimeKind::from_name(s)
                        .ok_or_else(|| self.invalid(path, s, "expected \"runc\" or \"runsc\""))?,
                );
            }
            "systemd_cgroup" => rt.systemd_cgroup = self.boolean(value, path)?,
            "no_pivot_root" => rt.no_pivot_root = self.boolean(value, path)?,
            "no_new_keyring" => rt.no_new_keyring = self.boolean(value, path)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn duration(&self, value: &Value, path: &str) -> Result<std::time::Duration, ConfigError> {
        let (result, shown) = match value {
            Value::String(s) => (duration::parse_str(s), quote(s)),
            Value::Integer(ms) => (duration::from_millis(*ms), ms.to_string()),
            other => {
                return Err(self.wrong_type(
                    path,
                    "a duration string (e.g. \"10s\") or integer milliseconds",
                    other,
                ))
            }
        };
        result.map_err(|reason| ConfigError::InvalidDuration {
            path: self.origin.to_path_buf(),
            key: path.to_string(),
            value: shown,
            reason,
        })
    }

    fn table<'v>(&self, value: &'v Value, path: &str) -> Result<&'v Table, ConfigError> {
        match value {
            Value::Table(t) => Ok(t),
            other => Err(self.wrong_type(path, "a table", other)),
        }
    }

    fn string<'v>(&self, value: &'v Value, path: &str) -> Result<&'v str, ConfigError> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(path, "a string", other)),
        }
    }

    fn boolean(&self, value: &Value, path: &str) -> Result<bool, ConfigError> {
        match value {
            Value::Boolean(b) => Ok(*b),
            other => Err(self.wrong_type(path, "a boolean", other)),
        }
    }

    fn no_nul(&self, path: &str, s: &str) -> Result<(), ConfigError> {
        if s.contains('\0') {
            Err(self.invalid(path, s, "contains a nul byte"))
        } else {
            Ok(())
        }
    }

    fn wrong_type(&self, path: &str, expected: &'static str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            path: self.origin.to_path_buf(),
            key: path.to_string(),
            expected,
            found: found.type_str(),
        }
    }

    fn invalid(&self, path: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.origin.to_path_buf(),
            key: path.to_string(),
            value: quote(value),
            reason: reason.into(),
        }
    }
}

/// A runsc flag name: letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit (so no leading dashes, no `=`, no spaces).
fn check_flag_name(name: &str) -> Result<(), &'static str> {
    let Some(first) = name.bytes().next() else {
        return Err("flag name must not be empty");
    };
    if first == b'-' {
        return Err("write the flag name without leading dashes");
    }
    if !first.is_ascii_alphanumeric() {
        return Err("flag name must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("flag name may contain only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// A key as written in a dotted path: bare when TOML allows it, quoted
/// (escaped and shortened) otherwise.
fn segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if bare {
        key.to_string()
    } else {
        quote(key)
    }
}

fn join(parent: &str, key: &str) -> String {
    format!("{parent}.{}", segment(key))
}

/// The TOML parser's message with a line and column instead of its
/// multi-line snippet.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = normalize(e.message());
    let position = e.span().and_then(|span| {
        let before = text.get(..span.start)?;
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, column))
    });
    match position {
        Some((line, column)) => format!("invalid toml at line {line}, column {column}: {message}"),
        None => format!("invalid toml: {message}"),
    }
}

/// JSON to TOML values: `null` means absent (the key is dropped), numbers
/// become integers when they fit an i64 and floats otherwise.
fn json_object_to_table(map: serde_json::Map<String, serde_json::Value>) -> Table {
    map.into_iter()
        .filter_map(|(k, v)| json_to_toml(v).map(|v| (k, v)))
        .collect()
}

fn json_to_toml(value: serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match value {
        J::Null => return None,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(s),
        J::Array(a) => Value::Array(a.into_iter().filter_map(json_to_toml).collect()),
        J::Object(o) => Value::Table(json_object_to_table(o)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_quoted_when_not_bare() {
        assert_eq!(segment("kill"), "kill");
        assert_eq!(segment("stop_grace"), "stop_grace");
        assert_eq!(segment("a b"), "\"a b\"");
        assert_eq!(segment(""), "\"\"");
        assert_eq!(segment("a.b"), "\"a.b\"");
        assert_eq!(join("runsc_config", "--x"), "runsc_config.--x");
        assert_eq!(join("runsc_config", "a=b"), "runsc_config.\"a=b\"");
    }

    #[test]
    fn flag_names() {
        for ok in [
            "platform",
            "network",
            "num-network-channels",
            "debug_log",
            "a.b",
            "9p",
        ] {
            check_flag_name(ok).unwrap();
        }
        for bad in ["", "-x", "--platform", "a=b", "a b", "_x", "é"] {
            assert!(check_flag_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn warn_unknown_never_panics() {
        let keys: Vec<String> = (0..MAX_REMEMBERED_WARNINGS + 10)
            .map(|i| format!("k{i}"))
            .collect();
        warn_unknown(Path::new("/t"), &keys);
        warn_unknown(Path::new("/t"), &keys);
        warn_unknown(Path::new("/t"), &[]);
    }

    #[test]
    fn level_names_round_trip() {
        for level in [
            LevelFilter::Off,
            LevelFilter::Error,
            LevelFilter::Warn,
            LevelFilter::Info,
            LevelFilter::Debug,
            LevelFilter::Trace,
        ] {
            assert_eq!(parse_level(level_name(level)), Some(level));
        }
        assert_eq!(parse_level("verbose"), None);
    }
}
