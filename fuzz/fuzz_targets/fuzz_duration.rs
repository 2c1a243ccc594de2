//! Durations of the `[timeouts]` table: strings such as `"1m30s"`,
//! `"1.5s"`, `"250us"`, or integer milliseconds (`duration::parse_str`,
//! `duration::from_millis`), reached the way a config reaches them.
//!
//! Input: the text of one duration. It is sent both as a string and, when
//! it is an integer, as a number of milliseconds.
//!
//! Properties: an accepted duration is greater than zero and at most
//! `MAX_DURATION`; `duration::format` of it parses back to the same
//! duration; a rejection names the key and quotes the value, in one line.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use robust_config::{duration, Config};
use robust_fuzz::{check_message, MAX_CONFIG_ERROR};

const ORIGIN: &str = "/fuzz/options.json";

fn parse(value: serde_json::Value) -> Result<Duration, String> {
    let json = serde_json::json!({ "timeouts": { "kill": value } }).to_string();
    Config::from_options_json(json.as_bytes(), Path::new(ORIGIN))
        .map(|c| c.timeouts.kill)
        .map_err(|e| e.to_string())
}

fn check(value: serde_json::Value) {
    match parse(value.clone()) {
        Ok(d) => {
            assert!(!d.is_zero(), "{value}: zero accepted");
            assert!(d <= duration::MAX_DURATION, "{value}: {d:?} accepted");
            let text = duration::format(d);
            assert_eq!(
                parse(serde_json::Value::from(text.clone())),
                Ok(d),
                "{value}: format gave {text:?}"
            );
        }
        Err(msg) => {
            check_message("duration", &msg, MAX_CONFIG_ERROR);
            assert!(
                msg.starts_with(&format!("config {ORIGIN}: key timeouts.kill: ")),
                "duration: {msg:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(serde_json::Value::from(text));
    if let Ok(ms) = text.trim().parse::<i64>() {
        check(serde_json::Value::from(ms));
        if let Ok(d) = parse(serde_json::Value::from(ms)) {
            assert_eq!(d, Duration::from_millis(ms as u64));
        }
    }
});
