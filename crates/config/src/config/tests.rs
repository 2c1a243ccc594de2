//! The TOML config: defaults, every key, errors naming file and key, the
//! sample config, hostile input.

use super::*;
use std::io::Write;
use std::time::Duration;

fn origin() -> &'static Path {
    Path::new("/etc/x.toml")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, origin())
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = Config::default();
    assert_eq!(c.runtime.binary, "runc");
    assert_eq!(c.runtime.root, None);
    assert!(!c.runtime.systemd_cgroup);
    assert!(!c.runtime.no_pivot_root);
    assert!(!c.runtime.no_new_keyring);
    assert_eq!(c.runtime.criu_path, None);
    assert_eq!(c.runtime.kind, None);
    assert_eq!(c.runtime_kind(), RuntimeKind::Runc);
    assert_eq!(c.log_level, LevelFilter::Info);
    assert!(c.runsc_flags().is_empty());
    let t = c.timeouts;
    let s = Duration::from_secs;
    assert_eq!(
        t.iter().collect::<Vec<_>>(),
        vec![
            ("create", s(30)),
            ("start", s(30)),
            ("exec", s(30)),
            ("kill", s(10)),
            ("delete", s(10)),
            ("state", s(5)),
            ("pause", s(10)),
            ("resume", s(10)),
            ("update", s(10)),
            ("ps", s(5)),
            ("default", s(10)),
            ("stop_grace", s(10)),
            ("kill_grace", s(2)),
            ("shutdown", s(5)),
            ("unmount", s(2)),
            ("publish", s(30)),
            ("io_drain", s(2)),
        ]
    );
    // An empty file is the defaults.
    assert_eq!(parse("").unwrap(), c);
    assert_eq!(parse("# only a comment\n").unwrap(), c);
}

#[test]
fn full_file_is_read() {
    let c = parse(
        r#"
        log_level = "debug"

        [runtime]
        binary = "/usr/bin/runsc"
        root = "/run/robust/runsc"
        systemd_cgroup = true
        no_pivot_root = true
        no_new_keyring = true
        criu_path = "/usr/sbin/criu"

        [timeouts]
        create = "1m"
        start = "1500ms"
        exec = 20000
        kill = "3s"
        delete = "4s"
        state = "1s"
        pause = "2s"
        resume = "2s"
        update = "2s"
        ps = "2s"
        default = "7s"
        stop_grace = "1m30s"
        kill_grace = "500ms"
        shutdown = "3s"
        unmount = "1s"
        publish = "2s"
        io_drain = "750ms"

        [runsc_config]
        platform = "ptrace"
        network = "none"
        debug = true
        num-network-channels = 2
        "#,
    )
    .unwrap();
    assert_eq!(c.log_level, LevelFilter::Debug);
    assert_eq!(c.runtime.binary, "/usr/bin/runsc");
    assert_eq!(
        c.runtime.root.as_deref(),
        Some(Path::new("/run/robust/runsc"))
    );
    assert!(c.runtime.systemd_cgroup && c.runtime.no_pivot_root && c.runtime.no_new_keyring);
    assert_eq!(
        c.runtime.criu_path.as_deref(),
        Some(Path::new("/usr/sbin/criu"))
    );
    assert_eq!(c.runtime_kind(), RuntimeKind::Runsc);
    let t = &c.timeouts;
    assert_eq!(t.create, Duration::from_secs(60));
    assert_eq!(t.start, Duration::from_millis(1500));
    assert_eq!(t.exec, Duration::from_secs(20));
    assert_eq!(t.stop_grace, Duration::from_secs(90));
    assert_eq!(t.kill_grace, Duration::from_millis(500));
    assert_eq!(t.default, Duration::from_secs(7));
    assert_eq!(t.io_drain, Duration::from_millis(750));
    assert_eq!(
        c.runsc_flags(),
        vec![
            "--debug=true",
            "--network=none",
            "--num-network-channels=2",
            "--platform=ptrace",
        ]
    );
}

#[test]
fn kind_is_inferred_from_the_binary_file_name() {
    for (binary, kind) in [
        ("runc", RuntimeKind::Runc),
        ("/usr/sbin/runc", RuntimeKind::Runc),
        ("crun", RuntimeKind::Runc),
        ("runsc", RuntimeKind::Runsc),
        ("/usr/bin/runsc", RuntimeKind::Runsc),
        ("runsc-debug", RuntimeKind::Runsc),
        ("/opt/runsc/bin/runc", RuntimeKind::Runc),
        ("my-runsc", RuntimeKind::Runc),
        ("/", RuntimeKind::Runc),
    ] {
        assert_eq!(RuntimeKind::from_binary(binary), kind, "{binary}");
    }
    // An explicit kind wins.
    let c = parse("[runtime]\nbinary = \"/opt/gvisor/sandbox\"\nkind = \"runsc\"\n").unwrap();
    assert_eq!(c.runtime_kind(), RuntimeKind::Runsc);
    let c = parse("[runtime]\nbinary = \"runsc\"\nkind = \"runc\"\n").unwrap();
    assert_eq!(c.runtime_kind(), RuntimeKind::Runc);
    assert!(err("[runtime]\nkind = \"crun\"\n")
        .starts_with("config /etc/x.toml: key runtime.kind: invalid value \"crun\""));
}

#[test]
fn runtime_root_appends_the_namespace() {
    let c = Config::default();
    assert_eq!(
        c.runtime_root("k8s.io").unwrap(),
        PathBuf::from("/run/containerd/runc/k8s.io")
    );
    let c = parse("[runtime]\nroot = \"/run/custom\"\n").unwrap();
    assert_eq!(
        c.runtime_root("default").unwrap(),
        PathBuf::from("/run/custom/default")
    );
    assert!(c.runtime_root("../etc").is_err());
    assert!(c.runtime_root("").is_err());
}

#[test]
fn unknown_keys_are_not_errors() {
    let c = parse(
        r#"
        surprise = 1
        [runtime]
        binary = "runc"
        shiny = true
        [timeouts]
        forever = "1h"
        [future_table]
        x = 1
        "#,
    )
    .unwrap();
    assert_eq!(c, Config::default());
    let parsed = walk::parse_toml(
        "surprise = 1\n[runtime]\nshiny = true\n[timeouts]\nforever = \"1h\"\n[\"odd key\"]\n",
        origin(),
    )
    .unwrap();
    assert_eq!(
        parsed.unknown,
        vec![
            "\"odd key\"",
            "runtime.shiny",
            "surprise",
            "timeouts.forever"
        ]
    );
}

#[test]
fn wrong_types_name_file_and_key() {
    assert_eq!(
        err("[runtime]\nsystemd_cgroup = \"yes\"\n"),
        "config /etc/x.toml: key runtime.systemd_cgroup: expected a boolean, found string"
    );
    assert_eq!(
        err("runtime = 3\n"),
        "config /etc/x.toml: key runtime: expected a table, found integer"
    );
    assert_eq!(
        err("[runtime]\nbinary = 5\n"),
        "config /etc/x.toml: key runtime.binary: expected a string, found integer"
    );
    assert_eq!(
        err("log_level = true\n"),
        "config /etc/x.toml: key log_level: expected a string, found boolean"
    );
    assert!(err("[timeouts]\nkill = 1.5\n")
        .starts_with("config /etc/x.toml: key timeouts.kill: expected a duration string"));
    assert!(err("[timeouts]\nkill = [1]\n").contains("found array"));
    assert!(err("timeouts = \"10s\"\n").contains("key timeouts: expected a table"));
    assert!(err("[runsc_config]\nplatform = 1.5\n").contains("key runsc_config.platform"));
    assert!(err("[runsc_config]\nplatform = [\"a\"]\n").contains("found array"));
    assert!(err("runsc_config = 1\n").contains("key runsc_config: expected a table"));
    assert!(err("[runtime]\ncriu_path = false\n").contains("key runtime.criu_path"));
    assert!(err("[runtime]\nroot = 1979-05-27\n").contains("found datetime"));
}

#[test]
fn bad_durations_are_errors() {
    assert_eq!(
        err("[timeouts]\nkill = \"ten seconds\"\n")
            .split(": ")
            .take(3)
            .collect::<Vec<_>>(),
        vec![
            "config /etc/x.toml",
            "key timeouts.kill",
            "invalid duration \"ten seconds\""
        ]
    );
    assert!(err("[timeouts]\nstop_grace = \"0s\"\n")
        .contains("key timeouts.stop_grace: invalid duration \"0s\": must be greater than zero"));
    assert!(err("[timeouts]\ncreate = 0\n").contains("key timeouts.create: invalid duration 0"));
    assert!(err("[timeouts]\ncreate = -5\n").contains("negative"));
    assert!(err("[timeouts]\ncreate = \"-5s\"\n").contains("negative"));
    assert!(err("[timeouts]\ncreate = \"10\"\n").contains("missing unit"));
    assert!(err("[timeouts]\ncreate = \"1000h\"\n").contains("too large"));
    assert!(err("[timeouts]\ncreate = 9223372036854775807\n").contains("too large"));
    assert!(err("[timeouts]\nunmount = \"\"\n").contains("key timeouts.unmount"));
}

#[test]
fn invalid_values_are_errors() {
    assert!(err("log_level = \"loud\"\n")
        .starts_with("config /etc/x.toml: key log_level: invalid value \"loud\""));
    assert!(err("[runtime]\nbinary = \"\"\n").contains("key runtime.binary"));
    assert!(err("[runtime]\nbinary = \"ru\\u0000nc\"\n").contains("nul"));
    assert!(err("[runtime]\nroot = \"relative/dir\"\n").contains("absolute"));
    assert_eq!(
        err("[runsc_config]\n\"--platform\" = \"ptrace\"\n"),
        "config /etc/x.toml: key runsc_config.--platform: invalid value \"--platform\": \
         write the flag name without leading dashes"
    );
    assert!(err("[runsc_config]\n\"a=b\" = \"c\"\n").contains("invalid value"));
    assert!(err("[runsc_config]\n\"\" = \"c\"\n").contains("invalid value"));
    assert!(err("[runsc_config]\nx = \"a\\u0000\"\n").contains("nul"));
}

#[test]
fn empty_optional_strings_mean_unset() {
    let c = parse("[runtime]\nroot = \"\"\ncriu_path = \"\"\n").unwrap();
    assert_eq!(c.runtime.root, None);
    assert_eq!(c.runtime.criu_path, None);
}

#[test]
fn log_levels() {
    for (text, level) in [
        ("trace", LevelFilter::Trace),
        ("debug", LevelFilter::Debug),
        ("info", LevelFilter::Info),
        ("warn", LevelFilter::Warn),
        ("warning", LevelFilter::Warn),
        ("error", LevelFilter::Error),
        ("fatal", LevelFilter::Error),
        ("panic", LevelFilter::Error),
        ("off", LevelFilter::Off),
        ("DEBUG", LevelFilter::Debug),
    ] {
        let c = parse(&format!("log_level = \"{text}\"\n")).unwrap();
        assert_eq!(c.log_level, level, "{text}");
    }
}

#[test]
fn runc_style_aliases_are_understood() {
    // What CRI puts into config_body when a user keeps runc's option
    // names under our runtime.
    let c = parse(
        "TypeUrl = \"x\"\nBinaryName = \"/usr/bin/runsc\"\nRoot = \"/r\"\nSystemdCgroup = true\n\
         NoPivotRoot = true\nNoNewKeyring = true\nCriuPath = \"/c\"\n",
    )
    .unwrap();
    assert_eq!(c.runtime.binary, "/usr/bin/runsc");
    assert_eq!(c.runtime.root.as_deref(), Some(Path::new("/r")));
    assert!(c.runtime.systemd_cgroup && c.runtime.no_pivot_root && c.runtime.no_new_keyring);
    assert_eq!(c.runtime.criu_path.as_deref(), Some(Path::new("/c")));
    // The [runtime] table wins over an alias, whatever the order.
    let c = parse("[runtime]\nbinary = \"runc\"\n[x]\n").unwrap();
    assert_eq!(c.runtime.binary, "runc");
    let c = parse("BinaryName = \"crun\"\n[runtime]\nbinary = \"runc\"\n").unwrap();
    assert_eq!(c.runtime.binary, "runc");
    assert!(err("SystemdCgroup = \"true\"\n").contains("key SystemdCgroup: expected a boolean"));
}

#[test]
fn syntax_errors_name_the_file_and_position() {
    let e = err("[runtime]\nbinary = \n");
    assert!(
        e.starts_with("config /etc/x.toml: invalid toml at line 2, column"),
        "{e}"
    );
    let e = err("a = 1\na = 2\n");
    assert!(e.starts_with("config /etc/x.toml: invalid toml"), "{e}");
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("robust.toml");
    std::fs::write(&path, "[timeouts]\nkill = \"ten seconds\"\n").unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        e.split(": ").take(3).collect::<Vec<_>>().join(": "),
        format!(
            "config {}: key timeouts.kill: invalid duration \"ten seconds\"",
            path.display()
        )
    );

    std::fs::write(&path, "[runtime]\nbinary = \"crun\"\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().runtime.binary, "crun");

    let missing = dir.path().join("missing.toml");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with(&format!("config {}: cannot read", missing.display())));

    let mut f = File::create(&path).unwrap();
    f.write_all(&[0xff, 0xfe, b'a']).unwrap();
    drop(f);
    assert!(Config::load(&path)
        .unwrap_err()
        .to_string()
        .contains("not utf-8"));

    let big = vec![b'#'; MAX_FILE_LEN as usize + 1];
    std::fs::write(&path, big).unwrap();
    assert!(matches!(
        Config::load(&path).unwrap_err(),
        ConfigError::TooLarge { .. }
    ));
}

/// Found while writing fuzz/fuzz_targets/fuzz_options_any.rs (a
/// runtime options `config_path` is opened as sent): a FIFO blocked
/// `Config::load` forever; a directory or a device is refused too.
#[test]
fn load_refuses_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Config::load(&f).map_err(|e| e.to_string()));
    });
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("Config::load of a fifo hangs")
        .unwrap_err();
    assert_eq!(
        e,
        format!("config {}: cannot read: not a regular file", fifo.display())
    );
    for p in [dir.path(), Path::new("/dev/null")] {
        let e = Config::load(p).unwrap_err().to_string();
        assert!(e.ends_with("cannot read: not a regular file"), "{e}");
        assert!(Config::load_options_json(p).is_err());
    }
    // A symlink to a regular file is fine.
    let real = dir.path().join("real.toml");
    std::fs::write(&real, "[runtime]\nbinary = \"crun\"\n").unwrap();
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(Config::load(&link).unwrap().runtime.binary, "crun");
}

#[test]
fn the_sample_config_documents_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime-config/robust.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // As shipped, the sample sets every key to its default.
    let parsed = walk::parse_toml(&text, &path).unwrap();
    assert!(parsed.unknown.is_empty(), "{:?}", parsed.unknown);
    assert_eq!(parsed.config, Config::default());
    // Every key is there (set, or commented out when it has no default).
    for key in Timeouts::KEYS.iter().chain(&[
        "log_level",
        "binary",
        "kind",
        "root",
        "systemd_cgroup",
        "no_pivot_root",
        "no_new_keyring",
        "criu_path",
        "[runsc_config]",
    ]) {
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches("# ").starts_with(key)),
            "{key} is not documented"
        );
    }
    // The commented-out examples are valid when uncommented.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let parsed = walk::parse_toml(&uncommented, &path).unwrap();
    assert!(parsed.unknown.is_empty(), "{:?}", parsed.unknown);
    assert_eq!(
        parsed.config.runtime.criu_path.as_deref(),
        Some(Path::new("/usr/sbin/criu"))
    );
    assert!(parsed
        .config
        .runsc_flags()
        .contains(&"--platform=ptrace".to_string()));
}

#[test]
fn no_panic_on_hostile_toml() {
    let inputs = [
        "[".repeat(100_000),
        "a = ".to_string() + &"[".repeat(100_000),
        "a = {".repeat(10_000),
        "\u{0}".to_string(),
        "[runtime]\nbinary = '''".to_string(),
        "x.y.z.w = 1\n".repeat(1000),
        "[[runtime]]\nbinary = \"runc\"\n".to_string(),
        "[runsc_config]\na = { b = 1 }\n".to_string(),
    ];
    for input in inputs {
        let _ = parse(&input);
    }
}
