//! Runtime options as containerd sends them: a protobuf `Any` on the
//! `start` stdin (containerd 1.6 to 2.2), inside a 2.3 bootstrap, or in the
//! `Create` request.
//!
//! Two shapes reach the shim (README.md, "Install into containerd"):
//! - `containerd.runc.v1.Options`, when the runtime is configured as
//!   `io.containerd.runc.v2` with our binary as its path: runc's own
//!   options (BinaryName, Root, SystemdCgroup, ...).
//! - `runtimeoptions.v1.Options` (`cri.runtimeoptions.v1.Options` in
//!   containerd 1.x), for any other runtime type: a path to our TOML file,
//!   or the TOML itself.
//!
//! Anything else is not an error: containerd may send options the shim
//! does not know, and the shim then runs with its defaults.

use std::path::{Path, PathBuf};

use containerd_shim_protos::shim::oci::Options as RuncOptions;
use protobuf::rt::WireType;
use protobuf::{CodedInputStream, Message, UnknownValueRef};

use crate::config::Config;
use crate::error::{quote, ConfigError};
use crate::walk;

/// Full name of runc's options message.
pub const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
/// Full name of CRI's generic runtime options message (containerd 2.x).
pub const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";

/// Pseudo path naming the `config_body` of runtime options in errors.
pub const CONFIG_BODY_ORIGIN: &str = "(runtimeoptions config_body)";
/// Pseudo path naming runc options in errors.
pub const RUNC_OPTIONS_ORIGIN: &str = "(runc options)";

/// Field 8 of runc's options: `criu_path`, removed from the proto in
/// containerd 2.0 but still sent by 1.6 and 1.7.
const RUNC_CRIU_PATH_FIELD: u32 = 8;

/// Which options message a type url names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsType {
    /// `containerd.runc.v1.Options`.
    Runc,
    /// `runtimeoptions.v1.Options` or `cri.runtimeoptions.v1.Options`.
    RuntimeOptions,
    /// Anything else.
    Unknown,
}

/// Classifies a type url. The url may carry a prefix ending in `/`
/// (`type.googleapis.com/containerd.runc.v1.Options`); runtime options may
/// also carry a package prefix (`cri.runtimeoptions.v1.Options`).
pub fn options_type(type_url: &str) -> OptionsType {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    if name == RUNC_OPTIONS {
        OptionsType::Runc
    } else if name == RUNTIME_OPTIONS
        || name
            .strip_suffix(RUNTIME_OPTIONS)
            .is_some_and(|prefix| prefix.ends_with('.'))
    {
        OptionsType::RuntimeOptions
    } else {
        OptionsType::Unknown
    }
}

/// The shim's config from runtime options.
///
/// - runc options: BinaryName, Root, SystemdCgroup, NoPivotRoot,
///   NoNewKeyring and CriuPath are taken, everything else is default.
/// - runtime options: the TOML file at `config_path` if set, else the TOML
///   in `config_body` if set, else defaults.
/// - an empty type url and value: defaults.
/// - an unknown type url: defaults, and a warning naming it.
///
/// Undecodable bytes, an unreadable config file or an invalid config are
/// errors.
pub fn config_from_any(type_url: &str, value: &[u8]) -> Result<Config, ConfigError> {
    if type_url.is_empty() && value.is_empty() {
        return Ok(Config::default());
    }
    match options_type(type_url) {
        OptionsType::Runc => config_from_runc_options(value),
        OptionsType::RuntimeOptions => {
            let opts = RuntimeOptions::decode(value)?;
            if !opts.config_path.is_empty() {
                if opts.config_path.contains('\0') {
                    return Err(ConfigError::decode(
                        "runtime options",
                        format!(
                            "config_path {} contains a nul byte",
                            quote(&opts.config_path)
                        ),
                    ));
                }
                Config::load(&opts.config_path)
            } else if !opts.config_body.is_empty() {
                let origin = Path::new(CONFIG_BODY_ORIGIN);
                let text =
                    String::from_utf8(opts.config_body).map_err(|e| ConfigError::Syntax {
                        path: origin.to_path_buf(),
                        message: format!("not utf-8 (at byte {})", e.utf8_error().valid_up_to()),
                    })?;
                Config::parse(&text, origin)
            } else {
                Ok(Config::default())
            }
        }
        OptionsType::Unknown => {
            log::warn!(
                "runtime options: unknown type url {}, using the default config",
                quote(type_url)
            );
            Ok(Config::default())
        }
    }
}

fn config_from_runc_options(value: &[u8]) -> Result<Config, ConfigError> {
    let decode_err = |message: String| ConfigError::decode("runc options", message);
    let opts = RuncOptions::parse_from_bytes(value).map_err(|e| decode_err(e.to_string()))?;

    // containerd 1.6/1.7 still send criu_path as field 8; the current
    // proto has it reserved, so it lands among the unknown fields.
    let criu_path = match opts
        .special_fields
        .unknown_fields()
        .get(RUNC_CRIU_PATH_FIELD)
    {
        Some(UnknownValueRef::LengthDelimited(bytes)) => String::from_utf8(bytes.to_vec())
            .map_err(|_| decode_err("criu_path is not utf-8".to_string()))?,
        Some(_) => return Err(decode_err("criu_path has the wrong wire type".to_string())),
        None => String::new(),
    };

    for (name, set) in [
        ("shim_cgroup", !opts.shim_cgroup.is_empty()),
        ("io_uid", opts.io_uid != 0),
        ("io_gid", opts.io_gid != 0),
        ("criu_image_path", !opts.criu_image_path.is_empty()),
        ("criu_work_path", !opts.criu_work_path.is_empty()),
        ("task_api_address", !opts.task_api_address.is_empty()),
    ] {
        if set {
            log::warn!("runc options: {name} is not supported, ignored");
        }
    }

    // Build the equivalent TOML table and walk it, so that runc options go
    // through exactly the validation of the config file.
    let mut table = toml::Table::new();
    let mut put_str = |k: &str, v: &str| {
        if !v.is_empty() {
            table.insert(k.to_string(), toml::Value::String(v.to_string()));
        }
    };
    put_str("BinaryName", &opts.binary_name);
    put_str("Root", &opts.root);
    put_str("CriuPath", &criu_path);
    for (k, v) in [
        ("SystemdCgroup", opts.systemd_cgroup),
        ("NoPivotRoot", opts.no_pivot_root),
        ("NoNewKeyring", opts.no_new_keyring),
    ] {
        table.insert(k.to_string(), toml::Value::Boolean(v));
    }
    let origin = Path::new(RUNC_OPTIONS_ORIGIN);
    let parsed = walk::parse_table(&table, origin)?;
    walk::warn_unknown(origin, &parsed.unknown);
    Ok(parsed.config)
}

/// `runtimeoptions.v1.Options`, decoded by hand (the message is not part
/// of `containerd-shim-protos`).
///
/// ```text
/// message Options {
///   string type_url = 1;
///   string config_path = 2;
///   bytes config_body = 3;   // string in some versions: same wire format
/// }
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// The type of the content of the config file (informational).
    pub type_url: String,
    /// Path of the TOML config file.
    pub config_path: String,
    /// The TOML itself, when no path is given.
    pub config_body: Vec<u8>,
}

impl RuntimeOptions {
    /// Decodes the message, skipping unknown fields.
    pub fn decode(bytes: &[u8]) -> Result<RuntimeOptions, ConfigError> {
        decode_runtime_options(bytes).map_err(|m| ConfigError::decode("runtime options", m))
    }

    /// The config file path, if set.
    pub fn config_path(&self) -> Option<PathBuf> {
        (!self.config_path.is_empty()).then(|| PathBuf::from(&self.config_path))
    }
}

fn decode_runtime_options(bytes: &[u8]) -> Result<RuntimeOptions, String> {
    let mut out = RuntimeOptions::default();
    let mut is = CodedInputStream::from_bytes(bytes);
    let e = |e: protobuf::Error| e.to_string();
    while let Some(tag) = is.read_raw_tag_or_eof().map_err(e)? {
        let (field, wire_type) = split_tag(tag)?;
        match (field, wire_type) {
            (1, WireType::LengthDelimited) => out.type_url = is.read_string().map_err(e)?,
            (2, WireType::LengthDelimited) => out.config_path = is.read_string().map_err(e)?,
            (3, WireType::LengthDelimited) => out.config_body = is.read_bytes().map_err(e)?,
            (1..=3, _) => return Err(format!("field {field} has the wrong wire type")),
            _ => is.skip_field(wire_type).map_err(e)?,
        }
    }
    Ok(out)
}

/// Splits a raw protobuf tag into a field number and a wire type,
/// rejecting field 0 and unknown wire types.
pub(crate) fn split_tag(tag: u32) -> Result<(u32, WireType), String> {
    let field = tag >> 3;
    let wire_type = WireType::new(tag & 7).ok_or_else(|| format!("invalid tag {tag}"))?;
    if field == 0 {
        return Err(format!("invalid tag {tag}"));
    }
    if wire_type == WireType::EndGroup {
        return Err(format!("unexpected end of group in field {field}"));
    }
    Ok((field, wire_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeKind;
    use protobuf::CodedOutputStream;
    use std::time::Duration;

    fn runtime_options_bytes(type_url: &str, path: &str, body: &[u8], extra: bool) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut buf);
            if extra {
                // Unknown fields of every wire type, to be skipped.
                os.write_uint64(15, 7).unwrap();
                os.write_fixed32(16, 7).unwrap();
                os.write_fixed64(17, 7).unwrap();
                os.write_bytes(18, b"future").unwrap();
            }
            if !type_url.is_empty() {
                os.write_string(1, type_url).unwrap();
            }
            if !path.is_empty() {
                os.write_string(2, path).unwrap();
            }
            if !body.is_empty() {
                os.write_bytes(3, body).unwrap();
            }
            os.flush().unwrap();
        }
        buf
    }

    #[test]
    fn type_urls_are_classified() {
        use OptionsType::*;
        for (url, t) in [
            ("containerd.runc.v1.Options", Runc),
            ("type.googleapis.com/containerd.runc.v1.Options", Runc),
            ("example.com/a/b/containerd.runc.v1.Options", Runc),
            ("runtimeoptions.v1.Options", RuntimeOptions),
            ("cri.runtimeoptions.v1.Options", RuntimeOptions),
            (
                "type.googleapis.com/runtimeoptions.v1.Options",
                RuntimeOptions,
            ),
            ("xruntimeoptions.v1.Options", Unknown),
            ("containerd.runc.v1.Optionsx", Unknown),
            ("io.containerd.runhcs.v1.Options", Unknown),
            ("", Unknown),
            ("/", Unknown),
        ] {
            assert_eq!(options_type(url), t, "{url}");
        }
    }

    #[test]
    fn runc_options_are_mapped() {
        let mut o = RuncOptions::new();
        o.binary_name = "/usr/bin/runsc".into();
        o.root = "/run/custom".into();
        o.systemd_cgroup = true;
        o.no_pivot_root = true;
        o.no_new_keyring = true;
        o.io_uid = 1000; // not supported: ignored
        let mut bytes = o.write_to_bytes().unwrap();
        // criu_path, as containerd 1.6 sends it (field 8).
        {
            let mut os = CodedOutputStream::vec(&mut bytes);
            os.write_string(8, "/usr/sbin/criu").unwrap();
            os.flush().unwrap();
        }
        let c = config_from_any("containerd.runc.v1.Options", &bytes).unwrap();
        assert_eq!(c.runtime.binary, "/usr/bin/runsc");
        assert_eq!(c.runtime.root.as_deref(), Some(Path::new("/run/custom")));
        assert!(c.runtime.systemd_cgroup);
        assert!(c.runtime.no_pivot_root);
        assert!(c.runtime.no_new_keyring);
        assert_eq!(
            c.runtime.criu_path.as_deref(),
            Some(Path::new("/usr/sbin/criu"))
        );
        assert_eq!(c.runtime_kind(), RuntimeKind::Runsc);
        assert_eq!(c.timeouts, Config::default().timeouts);

        let c = config_from_any(
            "type.googleapis.com/containerd.runc.v1.Options",
            &RuncOptions::new().write_to_bytes().unwrap(),
        )
        .unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn runc_options_errors() {
        let e = config_from_any(RUNC_OPTIONS, &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            e.to_string().starts_with("runc options: cannot decode"),
            "{e}"
        );

        let mut o = RuncOptions::new();
        o.root = "relative".into();
        let e = config_from_any(RUNC_OPTIONS, &o.write_to_bytes().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config (runc options): key Root: invalid value \"relative\": must be an absolute path"
        );

        let mut bytes = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut bytes);
            os.write_uint64(8, 1).unwrap();
            os.flush().unwrap();
        }
        assert!(config_from_any(RUNC_OPTIONS, &bytes).is_err());
    }

    #[test]
    fn runtime_options_point_at_a_toml_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("robust.toml");
        std::fs::write(
            &path,
            "[runtime]\nbinary = \"runsc\"\n[timeouts]\nkill = \"3s\"\n[runsc_config]\nplatform = \"ptrace\"\n",
        )
        .unwrap();
        let bytes = runtime_options_bytes(
            "io.containerd.robust.v1.Config",
            path.to_str().unwrap(),
            b"[runtime]\nbinary = \"ignored\"\n",
            true,
        );
        let decoded = RuntimeOptions::decode(&bytes).unwrap();
        assert_eq!(decoded.type_url, "io.containerd.robust.v1.Config");
        assert_eq!(decoded.config_path(), Some(path.clone()));

        for url in [
            "runtimeoptions.v1.Options",
            "cri.runtimeoptions.v1.Options",
            "type.googleapis.com/runtimeoptions.v1.Options",
        ] {
            let c = config_from_any(url, &bytes).unwrap();
            assert_eq!(c.runtime.binary, "runsc");
            assert_eq!(c.runtime_kind(), RuntimeKind::Runsc);
            assert_eq!(c.timeouts.kill, Duration::from_secs(3));
            assert_eq!(c.runsc_flags(), vec!["--platform=ptrace"]);
        }

        // A bad file is an error naming the file.
        std::fs::write(&path, "[timeouts]\nkill = \"ten seconds\"\n").unwrap();
        let e = config_from_any(RUNTIME_OPTIONS, &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("config {}: key timeouts.kill", path.display())),
            "{e}"
        );

        // A missing file too.
        let missing = dir.path().join("missing.toml");
        let bytes = runtime_options_bytes("", missing.to_str().unwrap(), b"", false);
        let e = config_from_any(RUNTIME_OPTIONS, &bytes).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
    }

    #[test]
    fn runtime_options_body_and_empty() {
        let bytes = runtime_options_bytes("", "", b"log_level = \"debug\"\n", false);
        let c = config_from_any(RUNTIME_OPTIONS, &bytes).unwrap();
        assert_eq!(c.log_level, log::LevelFilter::Debug);

        let bytes = runtime_options_bytes("", "", b"[timeouts]\nkill = 0\n", false);
        let e = config_from_any(RUNTIME_OPTIONS, &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config (runtimeoptions config_body): key timeouts.kill"),
            "{e}"
        );

        let bytes = runtime_options_bytes("", "", &[0xff, 0xfe], false);
        assert!(config_from_any(RUNTIME_OPTIONS, &bytes).is_err());

        // Neither path nor body: defaults.
        let bytes = runtime_options_bytes("x", "", b"", true);
        assert_eq!(
            config_from_any(RUNTIME_OPTIONS, &bytes).unwrap(),
            Config::default()
        );
        assert_eq!(
            config_from_any(RUNTIME_OPTIONS, &[]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn runtime_options_decode_errors() {
        for bad in [
            &[0xff][..],                   // truncated varint tag
            &[0x12, 0x05, b'a'][..],       // truncated string
            &[0x10, 0x01][..],             // config_path as a varint
            &[0x00][..],                   // field 0
            &[0x0f][..],                   // wire type 7
            &[0x0c][..],                   // end group without start
            &[0x12, 0x02, 0xff, 0xfe][..], // config_path not utf-8
        ] {
            let e = RuntimeOptions::decode(bad).unwrap_err().to_string();
            assert!(e.starts_with("runtime options: cannot decode"), "{e}");
            assert!(config_from_any(RUNTIME_OPTIONS, bad).is_err());
        }
        let bytes = runtime_options_bytes("", "/a\0b", b"", false);
        assert!(config_from_any(RUNTIME_OPTIONS, &bytes).is_err());
    }

    #[test]
    fn empty_and_unknown_type_urls_give_defaults() {
        assert_eq!(config_from_any("", &[]).unwrap(), Config::default());
        assert_eq!(
            config_from_any("io.containerd.runhcs.v1.Options", b"\x08\x01").unwrap(),
            Config::default()
        );
        assert_eq!(config_from_any("", b"\x08\x01").unwrap(), Config::default());
    }
}
