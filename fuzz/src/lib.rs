//! Helpers shared by the fuzz targets: the properties every rejection and
//! every accepted config must have, and the splitting of one fuzz input
//! into several files.

use std::path::Path;

use robust_config::Config;

/// The byte that separates the parts of a multi-part input (the files of
/// a bundle, the texts of a cgroup lookup). It is never valid UTF-8, so a
/// text part cannot contain it by accident; seed files use it literally.
pub const SEP: u8 = 0xff;

/// Splits `data` at [`SEP`] into exactly `n` parts (missing parts are
/// `None`, a part past the `n`th is appended to the last).
pub fn split(data: &[u8], n: usize) -> Vec<Option<&[u8]>> {
    let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(n);
    let mut rest = Some(data);
    for i in 0..n {
        let Some(r) = rest else {
            out.push(None);
            continue;
        };
        if i + 1 == n {
            out.push(Some(r));
            rest = None;
        } else if let Some(pos) = r.iter().position(|b| *b == SEP) {
            out.push(Some(&r[..pos]));
            rest = Some(&r[pos + 1..]);
        } else {
            out.push(Some(r));
            rest = None;
        }
    }
    out
}

/// The properties of an error message meant for a log line or an RPC
/// status: not empty, one line, starting lower case, without a trailing
/// period, bounded in length whatever the input's size.
pub fn check_message(what: &str, msg: &str, max_len: usize) {
    assert!(!msg.trim().is_empty(), "{what}: empty error message");
    assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "{what}: error message spans lines: {msg:?}"
    );
    let first = msg.chars().next().unwrap();
    assert!(
        !first.is_uppercase(),
        "{what}: error message starts upper case: {msg:?}"
    );
    assert!(
        !msg.ends_with('.'),
        "{what}: error message ends with a period: {msg:?}"
    );
    assert!(
        msg.len() <= max_len,
        "{what}: error message of {} bytes (at most {max_len}): {:?}...",
        msg.len(),
        msg.chars().take(200).collect::<String>()
    );
}

/// Longest config error message: the origin, a dotted key (each segment
/// quoted and shortened to 80 characters; escapes can make one character
/// six bytes), a quoted value, a reason.
pub const MAX_CONFIG_ERROR: usize = 4096;

/// The properties of an accepted config: every bound documented by
/// robust-config holds, and it survives the trip through the bundle's
/// `options.json` unchanged (the kind is written resolved).
pub fn check_config(what: &str, c: &Config) {
    let max = robust_config::duration::MAX_DURATION;
    for (key, d) in c.timeouts.iter() {
        assert!(!d.is_zero(), "{what}: timeouts.{key} is zero");
        assert!(d <= max, "{what}: timeouts.{key} = {d:?} > {max:?}");
    }
    let rt = &c.runtime;
    assert!(!rt.binary.trim().is_empty(), "{what}: empty binary");
    assert!(!rt.binary.contains('\0'), "{what}: binary with a nul byte");
    if let Some(root) = &rt.root {
        assert!(root.is_absolute(), "{what}: relative root {root:?}");
    }
    for flag in c.runsc_flags() {
        assert!(flag.starts_with("--"), "{what}: runsc flag {flag:?}");
        assert!(!flag.starts_with("---"), "{what}: runsc flag {flag:?}");
        assert!(!flag.contains('\0'), "{what}: runsc flag {flag:?}");
    }
    let root = c
        .runtime_root("default")
        .unwrap_or_else(|e| panic!("{what}: runtime_root(default): {e}"));
    assert!(root.ends_with("default"), "{what}: root {root:?}");

    let json = c.to_options_json();
    let back = Config::from_options_json(json.as_bytes(), Path::new("/fuzz/options.json"))
        .unwrap_or_else(|e| panic!("{what}: options.json of an accepted config: {e}\n{json}"));
    let mut expected = c.clone();
    expected.runtime.kind = Some(c.runtime_kind());
    assert_eq!(back, expected, "{what}: options.json round trip\n{json}");
    assert_eq!(back.runtime_kind(), c.runtime_kind());
    // And once more: the written form is a fixed point.
    assert_eq!(
        back.to_options_json(),
        json,
        "{what}: options.json not stable"
    );
}
