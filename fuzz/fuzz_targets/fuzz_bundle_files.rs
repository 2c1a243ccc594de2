//! The bundle files a cleanup reads after the shim died
//! (`robust_bundle::read_inputs`): `runtime`, `init.pid`, `options.json`,
//! `config.json` and `address`, then the runtime choice made from them
//! (`runtime_choice::choose_runtime`) and the address's socket (`sweep::socket_of`).
//!
//! Input: the five files' contents separated by 0xff bytes, in that order.
//! A part that is the single byte 0xfe is no file at all, 0xfd a symlink
//! (never followed), 0xfc a directory; a part left out is no file.
//!
//! Properties: reading never fails; each file reads as `Ok` exactly when
//! its content is usable, with the value as written (trimmed); every
//! `Unusable` says why in one line; the choice always names a runtime and
//! an absolute root, and each fallback note says what was assumed.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use robust_bundle::{self as bundle, Input};
use robust_cleanup::{runtime_choice, sweep};
use robust_config::Config;
use robust_fuzz::{check_config, check_message, split};

const FILES: [&str; 5] = [
    "runtime",
    "init.pid",
    "options.json",
    "config.json",
    "address",
];
const MAX_NOTE: usize = 64 * 1024;

fn bundle_dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir()
            .join(format!("robust-fuzz-{}", std::process::id()))
            .join("default")
            .join("c1");
        fs::create_dir_all(&d).unwrap();
        d
    })
}

fn place(dir: &Path, name: &str, part: Option<&[u8]>) {
    let p = dir.join(name);
    let _ = fs::remove_file(&p);
    let _ = fs::remove_dir(&p);
    match part {
        None | Some(b"\xfe") => {}
        Some(b"\xfd") => std::os::unix::fs::symlink("/etc/hostname", &p).unwrap(),
        Some(b"\xfc") => fs::create_dir(&p).unwrap(),
        Some(bytes) => fs::write(&p, bytes).unwrap(),
    }
}

fn is_file(part: Option<&[u8]>) -> bool {
    !matches!(part, None | Some(b"\xfe") | Some(b"\xfd") | Some(b"\xfc"))
}

fn check_unusable<T>(name: &str, input: &Input<T>, part: Option<&[u8]>) {
    match input {
        Input::Missing => assert!(
            matches!(part, None | Some(b"\xfe")),
            "{name}: missing but there"
        ),
        Input::Unusable(why) => check_message(name, why, MAX_NOTE),
        Input::Ok(_) => assert!(is_file(part), "{name}: ok but not a file"),
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = bundle_dir();
    let parts = split(data, FILES.len());
    for (name, part) in FILES.iter().zip(&parts) {
        place(dir, name, *part);
    }
    let [runtime, init_pid, options_json, config_json, address] =
        [parts[0], parts[1], parts[2], parts[3], parts[4]];
    let text = |p: Option<&[u8]>| -> Option<String> {
        std::str::from_utf8(p?).ok().map(|s| s.trim().to_string())
    };

    let got = bundle::read_inputs(dir);

    check_unusable("runtime", &got.runtime, runtime);
    if let Input::Ok(bin) = &got.runtime {
        assert_eq!(Some(bin.clone()), text(runtime));
        assert!(!bin.is_empty() && bin.len() <= 4096);
        assert!(!bin.contains(['\n', '\0']), "runtime {bin:?}");
    }

    check_unusable("init.pid", &got.init_pid, init_pid);
    if let Input::Ok(pid) = got.init_pid {
        assert!(pid > 0);
        assert_eq!(text(init_pid).and_then(|t| t.parse().ok()), Some(pid));
    }
    assert_eq!(
        bundle::read_pid(dir, "init.pid"),
        got.init_pid.ok().copied(),
        "read_pid and read_inputs disagree"
    );

    check_unusable("options.json", &got.options, options_json);
    let origin = dir.join("options.json");
    match &got.options {
        Input::Ok(c) => {
            check_config("options.json", c);
            let direct = Config::from_options_json(options_json.unwrap(), &origin).unwrap();
            assert_eq!(&direct, c);
        }
        Input::Unusable(why) if is_file(options_json) => {
            assert!(
                why.starts_with(&format!("config {}: ", origin.display()))
                    || why.starts_with("is larger than"),
                "options.json: {why:?}"
            );
        }
        _ => {}
    }

    check_unusable("config.json", &got.spec, config_json);
    if let Input::Ok(spec) = &got.spec {
        if let Some(p) = &spec.cgroups_path {
            assert!(!p.is_empty());
        }
    }

    check_unusable("address", &got.address, address);
    if let Input::Ok(a) = &got.address {
        assert!(!a.is_empty());
        if let Some((abstract_, path)) = sweep::socket_of(a) {
            assert!(abstract_ || path.starts_with('/'), "socket {path:?}");
        }
    }

    // The choice, with no runtime root probed (nothing outside the bundle
    // is looked at but the runtime binary's existence).
    let mut notes = Vec::new();
    let choice = runtime_choice::choose_runtime(&got, "default", "c1", dir, &[], &mut |what, assumed| {
        notes.push((what, assumed))
    });
    assert!(!choice.config.runtime.binary.is_empty());
    assert!(choice.root.is_absolute(), "root {:?}", choice.root);
    assert!(choice.root.ends_with("default"), "root {:?}", choice.root);
    assert!(
        ["runtime", "options.json", "probe", "default"].contains(&choice.source),
        "{}",
        choice.source
    );
    if let Some(root) = got.options.ok().and_then(|c| c.runtime.root.as_ref()) {
        assert_eq!(choice.root, root.join("default"));
    }
    for (what, assumed) in &notes {
        check_message("note", what, MAX_NOTE);
        check_message("note", assumed, MAX_NOTE);
    }
});
