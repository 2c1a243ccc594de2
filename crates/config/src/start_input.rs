//! What containerd writes to the shim's stdin on `start`.
//!
//! - containerd 1.6 to 2.2 write the marshalled runtime options `Any`
//!   (`type_url` = 1, `value` = 2), or nothing.
//! - containerd 2.3 writes a `BootstrapParams` (`instance_id` = 1,
//!   `namespace` = 2, then `log_level` = 3 up to `socket_dir` = 9), with the
//!   runtime options, if any, among its `extensions`.
//!
//! Both begin with length-delimited fields 1 and 2, so the bytes alone
//! tell them apart only by the other fields: the input is a bootstrap when
//! any field numbered 3 to 9 is present, and an `Any` otherwise. An `Any`
//! never has those fields. (A bootstrap carrying nothing but an id and a
//! namespace would read as an `Any` whose type url is the id; containerd
//! 2.3 always sends its addresses, and such an `Any` names no known options
//! type, so it only yields the default config.)

use std::path::PathBuf;

use containerd_shim_protos::bootstrap_api::BootstrapParams;
use log::LevelFilter;
use protobuf::well_known_types::any::Any;
use protobuf::{CodedInputStream, Message};

use crate::error::ConfigError;
use crate::ids;
use crate::options::{options_type, split_tag, OptionsType};

/// Largest stdin accepted, in bytes. Options are a few hundred bytes; a
/// bootstrap with CRI extensions a few kilobytes. The caller should read at
/// most this much (plus one byte, to notice an overlong input).
pub const MAX_INPUT_LEN: usize = 4 << 20;

/// The parsed `start` stdin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartInput {
    /// The containerd 2.3 bootstrap, when that is what was sent.
    pub bootstrap: Option<Bootstrap>,
    /// The runtime options as `(type_url, value)`: the `Any` sent by
    /// containerd 1.6 to 2.2, or the first bootstrap extension whose type
    /// url names runc options or runtime options. Feed it to
    /// [`crate::options::config_from_any`].
    pub options: Option<(String, Vec<u8>)>,
}

/// The containerd 2.3 bootstrap parameters the shim uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The container (or sandbox) id; validated.
    pub id: String,
    /// The namespace; validated.
    pub namespace: String,
    /// The log level containerd asks for.
    pub log_level: LevelFilter,
    /// containerd's version (may be empty).
    pub containerd_version: String,
    /// containerd's ttrpc address (may be empty).
    pub ttrpc_address: String,
    /// containerd's grpc address (may be empty).
    pub grpc_address: String,
    /// containerd's binary, for publishing events (may be empty).
    pub containerd_binary: String,
    /// Where to put the shim's socket, when containerd says so.
    pub socket_dir: Option<PathBuf>,
}

/// Parses the `start` stdin. Empty input gives neither a bootstrap nor
/// options; undecodable input is an error.
pub fn parse(bytes: &[u8]) -> Result<StartInput, ConfigError> {
    if bytes.is_empty() {
        return Ok(StartInput::default());
    }
    if bytes.len() > MAX_INPUT_LEN {
        return Err(decode_error(
            "start input",
            format!("larger than {MAX_INPUT_LEN} bytes"),
        ));
    }
    let has_bootstrap_fields =
        scan_for_bootstrap_fields(bytes).map_err(|m| decode_error("start input", m))?;
    if has_bootstrap_fields {
        parse_bootstrap(bytes)
    } else {
        parse_any(bytes)
    }
}

/// Maps containerd's open log level enum (INFO = 0, more verbose is
/// negative: DEBUG = -4, TRACE = -8; more critical is positive: WARN = 4,
/// ERROR = 8, FATAL = 10, PANIC = 12) to the nearest level filter.
pub fn level_from_bootstrap(value: i32) -> LevelFilter {
    match value {
        i32::MIN..=-6 => LevelFilter::Trace,
        -5..=-2 => LevelFilter::Debug,
        -1..=1 => LevelFilter::Info,
        2..=5 => LevelFilter::Warn,
        _ => LevelFilter::Error,
    }
}

/// Walks the top-level fields, checking the wire structure, and reports
/// whether any field numbered 3 to 9 is present.
fn scan_for_bootstrap_fields(bytes: &[u8]) -> Result<bool, String> {
    let mut is = CodedInputStream::from_bytes(bytes);
    let mut found = false;
    while let Some(tag) = is.read_raw_tag_or_eof().map_err(|e| e.to_string())? {
        let (field, wire_type) = split_tag(tag)?;
        if (3..=9).contains(&field) {
            found = true;
        }
        is.skip_field(wire_type).map_err(|e| e.to_string())?;
    }
    Ok(found)
}

fn parse_bootstrap(bytes: &[u8]) -> Result<StartInput, ConfigError> {
    let params = BootstrapParams::parse_from_bytes(bytes)
        .map_err(|e| decode_error("bootstrap params", e.to_string()))?;
    ids::validate(ids::CONTAINER_ID, &params.instance_id)?;
    ids::validate(ids::NAMESPACE, &params.namespace)?;

    let options = params
        .extensions
        .iter()
        .filter_map(|ext| ext.value.as_ref())
        .find(|any| options_type(&any.type_url) != OptionsType::Unknown)
        .map(|any| (any.type_url.clone(), any.value.clone()));

    let socket_dir = params
        .socket_dir
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);

    let bootstrap = Bootstrap {
        log_level: level_from_bootstrap(params.log_level.value()),
        id: params.instance_id,
        namespace: params.namespace,
        containerd_version: params.containerd_version,
        ttrpc_address: params.containerd_ttrpc_address,
        grpc_address: params.containerd_grpc_address,
        containerd_binary: params.containerd_binary,
        socket_dir,
    };
    Ok(StartInput {
        bootstrap: Some(bootstrap),
        options,
    })
}

fn parse_any(bytes: &[u8]) -> Result<StartInput, ConfigError> {
    let what = "start input (runtime options)";
    let any = Any::parse_from_bytes(bytes).map_err(|e| decode_error(what, e.to_string()))?;
    // A real Any has fields 1 and 2 only; anything else means the bytes
    // are not what containerd writes.
    if let Some((field, _)) = any.special_fields.unknown_fields().iter().next() {
        return Err(decode_error(
            what,
            format!("unexpected field {field}: not a protobuf any"),
        ));
    }
    if any.type_url.is_empty() {
        if any.value.is_empty() {
            return Ok(StartInput::default());
        }
        return Err(decode_error(what, "a value without a type url".to_string()));
    }
    Ok(StartInput {
        bootstrap: None,
        options: Some((any.type_url, any.value)),
    })
}

fn decode_error(what: &str, message: String) -> ConfigError {
    ConfigError::decode(what, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeKind;
    use crate::options::config_from_any;
    use containerd_shim_protos::bootstrap_api::{Extension, LogLevel};
    use containerd_shim_protos::shim::oci::Options as RuncOptions;
    use protobuf::CodedOutputStream;

    fn any(type_url: &str, value: Vec<u8>) -> Any {
        let mut a = Any::new();
        a.type_url = type_url.to_string();
        a.value = value;
        a
    }

    fn runc_options_any() -> Any {
        let mut o = RuncOptions::new();
        o.binary_name = "/usr/bin/runsc".into();
        o.systemd_cgroup = true;
        any("containerd.runc.v1.Options", o.write_to_bytes().unwrap())
    }

    fn bootstrap_params() -> BootstrapParams {
        let mut p = BootstrapParams::new();
        p.instance_id = "c1".into();
        p.namespace = "k8s.io".into();
        p.set_log_level(LogLevel::LOG_LEVEL_DEBUG);
        p.containerd_version = "2.3.0".into();
        p.containerd_ttrpc_address = "/run/containerd/containerd.sock.ttrpc".into();
        p.containerd_grpc_address = "/run/containerd/containerd.sock".into();
        p.containerd_binary = "/usr/bin/containerd".into();
        p.socket_dir = Some("/run/containerd/s".into());
        p
    }

    #[test]
    fn empty_stdin_gives_nothing() {
        assert_eq!(parse(&[]).unwrap(), StartInput::default());
        let input = parse(&[]).unwrap();
        assert!(input.bootstrap.is_none() && input.options.is_none());
    }

    #[test]
    fn containerd_2_3_bootstrap_is_parsed() {
        let mut p = bootstrap_params();
        let mut unrelated = Extension::new();
        unrelated.value = protobuf::MessageField::some(any(
            "containerd.io/cri.v1.PodSandboxConfig",
            b"\x0a\x01x".to_vec(),
        ));
        let mut options = Extension::new();
        options.value = protobuf::MessageField::some(runc_options_any());
        p.extensions = vec![unrelated, options];
        let bytes = p.write_to_bytes().unwrap();

        let input = parse(&bytes).unwrap();
        let b = input.bootstrap.unwrap();
        assert_eq!(b.id, "c1");
        assert_eq!(b.namespace, "k8s.io");
        assert_eq!(b.log_level, LevelFilter::Debug);
        assert_eq!(b.containerd_version, "2.3.0");
        assert_eq!(b.ttrpc_address, "/run/containerd/containerd.sock.ttrpc");
        assert_eq!(b.grpc_address, "/run/containerd/containerd.sock");
        assert_eq!(b.containerd_binary, "/usr/bin/containerd");
        assert_eq!(b.socket_dir, Some(PathBuf::from("/run/containerd/s")));

        let (type_url, value) = input.options.unwrap();
        assert_eq!(type_url, "containerd.runc.v1.Options");
        let c = config_from_any(&type_url, &value).unwrap();
        assert_eq!(c.runtime.binary, "/usr/bin/runsc");
        assert!(c.runtime.systemd_cgroup);
        assert_eq!(c.runtime_kind(), RuntimeKind::Runsc);
    }

    #[test]
    fn bootstrap_with_runtime_options_extension() {
        let mut p = bootstrap_params();
        p.socket_dir = None;
        let mut body = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut body);
            os.write_string(2, "/etc/robust.toml").unwrap();
            os.flush().unwrap();
        }
        let mut ext = Extension::new();
        ext.value = protobuf::MessageField::some(any(
            "type.googleapis.com/runtimeoptions.v1.Options",
            body.clone(),
        ));
        p.extensions = vec![Extension::new(), ext];
        let input = parse(&p.write_to_bytes().unwrap()).unwrap();
        let b = input.bootstrap.unwrap();
        assert_eq!(b.socket_dir, None);
        assert_eq!(
            input.options,
            Some((
                "type.googleapis.com/runtimeoptions.v1.Options".to_string(),
                body
            ))
        );
    }

    #[test]
    fn bootstrap_without_options_and_minimal_fields() {
        // Only the address besides the identity: still a bootstrap.
        let mut p = BootstrapParams::new();
        p.instance_id = "c1".into();
        p.namespace = "default".into();
        p.containerd_ttrpc_address = "/a".into();
        let input = parse(&p.write_to_bytes().unwrap()).unwrap();
        let b = input.bootstrap.unwrap();
        assert_eq!(b.log_level, LevelFilter::Info);
        assert_eq!(b.containerd_version, "");
        assert!(input.options.is_none());

        // An explicitly encoded INFO log level (field 3 = 0) counts too.
        let mut bytes = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut bytes);
            os.write_string(1, "c1").unwrap();
            os.write_string(2, "default").unwrap();
            os.write_int32(3, 0).unwrap();
            os.flush().unwrap();
        }
        assert!(parse(&bytes).unwrap().bootstrap.is_some());
    }

    #[test]
    fn bootstrap_ids_are_validated() {
        let mut p = bootstrap_params();
        p.namespace = "../etc".into();
        let e = parse(&p.write_to_bytes().unwrap()).unwrap_err().to_string();
        assert!(e.starts_with("invalid namespace \"../etc\""), "{e}");

        let mut p = bootstrap_params();
        p.instance_id = String::new();
        let e = parse(&p.write_to_bytes().unwrap()).unwrap_err().to_string();
        assert!(e.starts_with("invalid container id \"\""), "{e}");
    }

    #[test]
    fn bootstrap_with_bad_field_is_an_error() {
        // Field 4 present but instance_id is not utf-8.
        let bytes = [0x0a, 0x02, 0xff, 0xfe, 0x22, 0x01, b'x'];
        let e = parse(&bytes).unwrap_err().to_string();
        assert!(e.starts_with("bootstrap params: cannot decode"), "{e}");
    }

    #[test]
    fn log_levels_map_to_the_nearest() {
        for (v, l) in [
            (LogLevel::LOG_LEVEL_TRACE as i32, LevelFilter::Trace),
            (LogLevel::LOG_LEVEL_DEBUG as i32, LevelFilter::Debug),
            (LogLevel::LOG_LEVEL_INFO as i32, LevelFilter::Info),
            (LogLevel::LOG_LEVEL_WARN as i32, LevelFilter::Warn),
            (LogLevel::LOG_LEVEL_ERROR as i32, LevelFilter::Error),
            (LogLevel::LOG_LEVEL_FATAL as i32, LevelFilter::Error),
            (LogLevel::LOG_LEVEL_PANIC as i32, LevelFilter::Error),
            (-100, LevelFilter::Trace),
            (-3, LevelFilter::Debug),
            (1, LevelFilter::Info),
            (3, LevelFilter::Warn),
            (i32::MAX, LevelFilter::Error),
            (i32::MIN, LevelFilter::Trace),
        ] {
            assert_eq!(level_from_bootstrap(v), l, "{v}");
        }
        // An unknown enum value on the wire is kept and mapped.
        let mut bytes = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut bytes);
            os.write_string(1, "c1").unwrap();
            os.write_string(2, "default").unwrap();
            os.write_int32(3, -7).unwrap();
            os.flush().unwrap();
        }
        let b = parse(&bytes).unwrap().bootstrap.unwrap();
        assert_eq!(b.log_level, LevelFilter::Trace);
    }

    #[test]
    fn containerd_1_6_options_any_is_parsed() {
        let a = runc_options_any();
        let bytes = a.write_to_bytes().unwrap();
        let input = parse(&bytes).unwrap();
        assert!(input.bootstrap.is_none());
        let (type_url, value) = input.options.unwrap();
        assert_eq!(type_url, "containerd.runc.v1.Options");
        assert_eq!(value, a.value);
        let c = config_from_any(&type_url, &value).unwrap();
        assert_eq!(c.runtime.binary, "/usr/bin/runsc");

        // An Any with a type url and no value (all-default options).
        let bytes = any("containerd.runc.v1.Options", Vec::new())
            .write_to_bytes()
            .unwrap();
        let input = parse(&bytes).unwrap();
        assert_eq!(
            input.options,
            Some(("containerd.runc.v1.Options".to_string(), Vec::new()))
        );
        // An all-empty Any is no options at all (it encodes as nothing, but
        // an explicitly empty type url can be on the wire).
        assert_eq!(parse(&[0x0a, 0x00]).unwrap(), StartInput::default());
    }

    #[test]
    fn garbage_is_a_clear_error() {
        for bad in [
            &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
            &b"\x00"[..],
            &b"\x0a\x10short"[..],
            &b"{\"json\": true}"[..],
            &b"hello world"[..],
            &b"\x0c"[..],
            &b"\x0f"[..],
            &b"\x12\x03abc"[..],       // a value without a type url
            &b"\x0a\x01a\x58\x01"[..], // field 11 varint: not an Any
            &b"\x0a\x02\xff\xfe"[..],  // type url not utf-8
        ] {
            let e = parse(bad).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("cannot decode"), "{bad:?}: {msg}");
            assert!(
                msg.starts_with("start input") || msg.starts_with("bootstrap params"),
                "{msg}"
            );
        }
        let big = vec![0u8; MAX_INPUT_LEN + 1];
        assert!(parse(&big).unwrap_err().to_string().contains("larger than"));
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        // A small deterministic fuzz: every input must give Ok or Err.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds = [
            bootstrap_params().write_to_bytes().unwrap(),
            runc_options_any().write_to_bytes().unwrap(),
        ];
        for round in 0..20_000 {
            let mut bytes = if round % 3 == 0 {
                Vec::new()
            } else {
                seeds[round % 2].clone()
            };
            let n = (next() % 24) as usize;
            for _ in 0..n {
                let r = next();
                let b = (r >> 8) as u8;
                if bytes.is_empty() || r % 3 == 0 {
                    bytes.push(b);
                } else {
                    let i = (r >> 16) as usize % bytes.len();
                    bytes[i] = b;
                }
            }
            if let Ok(input) = parse(&bytes) {
                if let Some((url, value)) = input.options {
                    let _ = config_from_any(&url, &value);
                }
            }
        }
        // Deeply nested groups are bounded by the decoder.
        let _ = parse(&vec![0x0b; 100_000]);
    }
}
