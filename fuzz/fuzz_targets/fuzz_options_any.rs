//! Runtime options as containerd sends them, in a protobuf `Any`
//! (`options::config_from_any`): runc's `Options` (with the `criu_path`
//! field 8 of containerd 1.6/1.7) and CRI's `runtimeoptions` (hand decoded
//! by `RuntimeOptions::decode`), pointing at a TOML file or carrying it.
//!
//! Input: one selector byte (which type url), then the message bytes; a
//! selector of 6 or more takes the type url from the input, up to the
//! first 0xff byte.
//!
//! Properties: an accepted config is valid and survives `options.json`;
//! runc's `BinaryName` and `Root` are taken as sent; a rejection is one
//! clear lower-case line naming the input. A `config_path` is never opened
//! as sent (it could name any file of the machine): the target writes the
//! decoded `config_body` to a file of its own and sends that path instead.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use containerd_shim_protos::shim::oci::Options as RuncOptions;
use libfuzzer_sys::fuzz_target;
use protobuf::{CodedOutputStream, Message};
use robust_config::options::{self, OptionsType, RuntimeOptions};
use robust_fuzz::{check_config, check_message, split, MAX_CONFIG_ERROR};

const TYPE_URLS: [&str; 6] = [
    "containerd.runc.v1.Options",
    "type.googleapis.com/containerd.runc.v1.Options",
    "runtimeoptions.v1.Options",
    "cri.runtimeoptions.v1.Options",
    "type.googleapis.com/runtimeoptions.v1.Options",
    "",
];

fn config_file() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("robust-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("robust.toml")
    })
}

fn encode(type_url: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut os = CodedOutputStream::vec(&mut buf);
    os.write_string(1, type_url).unwrap();
    os.write_string(2, path).unwrap();
    os.write_bytes(3, body).unwrap();
    os.flush().unwrap();
    drop(os);
    buf
}

fn check_any(type_url: &str, value: &[u8], extra_origin: Option<&Path>) {
    match options::config_from_any(type_url, value) {
        Ok(c) => {
            check_config("options any", &c);
            if options::options_type(type_url) == OptionsType::Runc {
                let o = RuncOptions::parse_from_bytes(value).expect("accepted but undecodable");
                if !o.binary_name.is_empty() {
                    assert_eq!(c.runtime.binary, o.binary_name);
                }
                if !o.root.is_empty() {
                    assert_eq!(c.runtime.root.as_deref(), Some(Path::new(&o.root)));
                }
                assert_eq!(c.runtime.systemd_cgroup, o.systemd_cgroup);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            check_message("options any", &msg, MAX_CONFIG_ERROR);
            let file = extra_origin.map(|p| format!("config {}: ", p.display()));
            assert!(
                msg.starts_with("runc options: cannot decode: ")
                    || msg.starts_with("runtime options: cannot decode: ")
                    || msg.starts_with("config (runc options): ")
                    || msg.starts_with("config (runtimeoptions config_body): ")
                    || file.is_some_and(|f| msg.starts_with(&f)),
                "options any: error does not name the input: {msg:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (type_url, value): (String, &[u8]) = match TYPE_URLS.get(usize::from(selector)) {
        Some(url) => (url.to_string(), rest),
        None => {
            let parts = split(rest, 2);
            let url = String::from_utf8_lossy(parts[0].unwrap_or_default()).into_owned();
            (url, parts[1].unwrap_or_default())
        }
    };

    if options::options_type(&type_url) != OptionsType::RuntimeOptions {
        check_any(&type_url, value, None);
        return;
    }
    let decoded = match RuntimeOptions::decode(value) {
        Ok(d) => d,
        Err(e) => {
            let msg = e.to_string();
            check_message("runtime options", &msg, MAX_CONFIG_ERROR);
            assert!(
                msg.starts_with("runtime options: cannot decode: "),
                "{msg:?}"
            );
            // And config_from_any refuses it the same way.
            let again = options::config_from_any(&type_url, value).unwrap_err();
            assert_eq!(again.to_string(), msg);
            return;
        }
    };
    if decoded.config_path.is_empty() || decoded.config_path.contains('\0') {
        // Nothing to open (a nul byte is refused before any open).
        check_any(&type_url, value, None);
    } else {
        // The path as sent is not opened; the body goes to our own file.
        let file = config_file();
        std::fs::write(file, &decoded.config_body).unwrap();
        let value = encode(&decoded.type_url, file.to_str().unwrap(), b"ignored");
        check_any(&type_url, &value, Some(file));
    }
});
