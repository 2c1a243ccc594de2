//! The shim's TOML config (`Config::parse`, what `Config::load` and the
//! `config_body` of CRI's runtime options go through).
//!
//! Properties: an accepted config keeps every documented bound and
//! survives `options.json` unchanged; a rejection is one clear lower-case
//! line that names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use robust_config::Config;
use robust_fuzz::{check_config, check_message, MAX_CONFIG_ERROR};

const ORIGIN: &str = "/fuzz/robust.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new(ORIGIN)) {
        Ok(c) => check_config("toml", &c),
        Err(e) => {
            let msg = e.to_string();
            check_message("toml", &msg, MAX_CONFIG_ERROR);
            assert!(
                msg.starts_with(&format!("config {ORIGIN}: ")),
                "toml: error does not name the file: {msg:?}"
            );
        }
    }
});
