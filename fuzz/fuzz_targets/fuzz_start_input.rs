//! The `start` stdin (`start_input::parse`): the runtime options `Any` of
//! containerd 1.6 to 2.2, or the `BootstrapParams` of containerd 2.3 with
//! the options among its extensions; then the options, as `start` does.
//!
//! Properties: a bootstrap's id and namespace are valid ids; the options
//! of a bootstrap name a known options type; a rejection is one clear
//! lower-case line naming the input. A `config_path` in runtime options
//! is not opened (it could name any file of the machine).
#![no_main]

use libfuzzer_sys::fuzz_target;
use robust_config::options::{self, OptionsType, RuntimeOptions};
use robust_config::{ids, start_input};
use robust_fuzz::{check_config, check_message, MAX_CONFIG_ERROR};

fuzz_target!(|data: &[u8]| {
    let input = match start_input::parse(data) {
        Ok(input) => input,
        Err(e) => {
            let msg = e.to_string();
            check_message("start input", &msg, MAX_CONFIG_ERROR);
            assert!(
                msg.starts_with("start input: cannot decode: ")
                    || msg.starts_with("start input (runtime options): cannot decode: ")
                    || msg.starts_with("bootstrap params: cannot decode: ")
                    || msg.starts_with("invalid container id \"")
                    || msg.starts_with("invalid namespace \""),
                "start input: error does not name the input: {msg:?}"
            );
            return;
        }
    };
    if data.is_empty() {
        assert_eq!(input, start_input::StartInput::default());
    }
    if let Some(b) = &input.bootstrap {
        ids::validate_container_id(&b.id).expect("bootstrap id accepted but invalid");
        ids::validate_namespace(&b.namespace).expect("bootstrap namespace accepted but invalid");
        if let Some(dir) = &b.socket_dir {
            assert!(!dir.as_os_str().is_empty());
        }
        if let Some((url, _)) = &input.options {
            assert_ne!(options::options_type(url), OptionsType::Unknown, "{url:?}");
        }
    } else if let Some((url, _)) = &input.options {
        assert!(!url.is_empty(), "options without a type url");
    }

    let Some((url, value)) = &input.options else {
        return;
    };
    if options::options_type(url) == OptionsType::RuntimeOptions {
        match RuntimeOptions::decode(value) {
            Ok(o) if !o.config_path.is_empty() => return,
            _ => {}
        }
    }
    match options::config_from_any(url, value) {
        Ok(c) => check_config("start input options", &c),
        Err(e) => check_message("start input options", &e.to_string(), MAX_CONFIG_ERROR),
    }
});
