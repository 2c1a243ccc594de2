//! The bundle's `options.json` (`Config::from_options_json`), written by
//! the shim and read back by a later cleanup, also in the snake_case
//! layout of containerd's own runc shim.
//!
//! Properties: as for the TOML config; a rejection names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use robust_config::Config;
use robust_fuzz::{check_config, check_message, MAX_CONFIG_ERROR};

const ORIGIN: &str = "/fuzz/bundle/options.json";

fuzz_target!(|data: &[u8]| {
    match Config::from_options_json(data, Path::new(ORIGIN)) {
        Ok(c) => check_config("options.json", &c),
        Err(e) => {
            let msg = e.to_string();
            check_message("options.json", &msg, MAX_CONFIG_ERROR);
            assert!(
                msg.starts_with(&format!("config {ORIGIN}: ")),
                "options.json: error does not name the file: {msg:?}"
            );
        }
    }
});
