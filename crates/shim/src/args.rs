//! The command line containerd uses, parsed the way Go's `flag` package
//! does: `-name value`, `-name=value`, `--name`, boolean flags alone.
//!
//! Arguments are read as the OS gives them (`args_os`): one that is not
//! UTF-8 is refused with an error naming it, never a panic.
//!
//! Unknown flags. containerd may pass flags this shim does not know (a
//! newer containerd, or one meant for the Go shim): for `start`, `delete`
//! and the daemon they are kept in [`Args::unknown`] and ignored (the daemon
//! logs them), never an error. An unknown flag without `=value` takes the
//! next argument as its value, as Go's `flag` does for a string flag, except
//! when that argument is another flag or the action that ends the line
//! (`start`, `delete`): then it is a boolean. Only an operator runs
//! `sweep`, and a line with none of containerd's flags is not containerd's:
//! there an unknown flag is a usage error ([`Args::refused_unknown`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Parsed arguments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    pub namespace: String,
    pub id: String,
    pub address: String,
    pub publish_binary: String,
    pub bundle: String,
    pub socket: String,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    /// `-h`, `-help`, `--help` (or the action `help`): print the usage.
    pub help: bool,
    /// `sweep`: list what would be done, change nothing.
    pub dry_run: bool,
    /// `sweep`: containerd's task state dir.
    pub state_dir: String,
    /// `sweep`: leave bundles changed more recently than this alone.
    pub min_age: String,
    /// `start`, `delete`, `sweep`, or empty (the daemon itself).
    pub action: String,
    /// Flags we do not know, kept for the log.
    pub unknown: BTreeMap<String, String>,
}

const BOOL_FLAGS: &[&str] = &["debug", "v", "version", "info", "dry-run", "h", "help"];

/// The actions containerd runs; an unknown flag right before one of them,
/// as the last argument, is a boolean.
const CONTAINERD_ACTIONS: &[&str] = &["start", "delete"];

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// Malformed: a missing value, a bad boolean, an extra argument.
    Usage(String),
    /// An argument that is not UTF-8 (ids, namespaces and paths are text).
    NotUtf8(String),
}

impl ArgsError {
    /// The exit status: 2 for usage errors (as Go's `flag` package), 1 for
    /// an argument whose value is refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            ArgsError::Usage(_) => 2,
            ArgsError::NotUtf8(_) => 1,
        }
    }
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgsError::Usage(m) | ArgsError::NotUtf8(m) => f.write_str(m),
        }
    }
}

/// The bytes of `s`, non-ASCII escaped (`\xff`), for an error message.
fn escaped(s: &std::ffi::OsStr) -> String {
    s.as_bytes().escape_ascii().to_string()
}

/// `arg` (the `n`th argument, 1-based) as text, or an error naming it.
fn token(arg: OsString, n: usize) -> Result<String, ArgsError> {
    arg.into_string().map_err(|raw| {
        let bytes = raw.as_bytes();
        let flag = bytes
            .strip_prefix(b"--")
            .or_else(|| bytes.strip_prefix(b"-"));
        ArgsError::NotUtf8(match flag {
            Some(f) => match f.iter().position(|&b| b == b'=') {
                Some(eq) if std::str::from_utf8(&f[..eq]).is_ok() => format!(
                    "flag -{}: value \"{}\" is not valid UTF-8",
                    String::from_utf8_lossy(&f[..eq]),
                    f[eq + 1..].escape_ascii()
                ),
                _ => format!("flag \"{}\" is not valid UTF-8", escaped(&raw)),
            },
            None => format!("argument {n} \"{}\" is not valid UTF-8", escaped(&raw)),
        })
    })
}

pub fn parse<I, T>(argv: I) -> Result<Args, ArgsError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut a = Args::default();
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let total = argv.len();
    let it = argv.into_iter().enumerate();
    let mut it = it.peekable();
    while let Some((i, arg)) = it.next() {
        let arg = token(arg, i + 1)?;
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if a.action.is_empty() {
                a.action = arg;
                if a.action == "help" {
                    // `help` and whatever follows it: the usage.
                    a.help = true;
                    return Ok(a);
                }
                continue;
            }
            return Err(ArgsError::Usage(format!(
                "unexpected argument {arg:?} after action {:?}",
                a.action
            )));
        };
        if flag.is_empty() {
            return Err(ArgsError::Usage("empty flag".into()));
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if BOOL_FLAGS.contains(&name.as_str()) {
            let on = match inline.as_deref() {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(v) => {
                    return Err(ArgsError::Usage(format!(
                        "flag -{name}: invalid boolean {v:?}"
                    )))
                }
            };
            match name.as_str() {
                "debug" => a.debug = on,
                "v" | "version" => a.version = on,
                "dry-run" => a.dry_run = on,
                "h" | "help" => {
                    // As Go's `flag`: the rest of the line is not parsed.
                    a.help = on;
                    if on {
                        return Ok(a);
                    }
                }
                _ => a.info = on,
            }
            continue;
        }
        const KNOWN: &[&str] = &[
            "namespace",
            "id",
            "address",
            "publish-binary",
            "bundle",
            "socket",
            "state-dir",
            "min-age",
        ];
        if inline.is_none() && !KNOWN.contains(&name.as_str()) {
            let boolean = match it.peek() {
                None => true,
                Some((j, next)) => {
                    let b = next.as_bytes();
                    b.starts_with(b"-")
                        || (*j == total - 1
                            && CONTAINERD_ACTIONS.iter().any(|act| act.as_bytes() == b))
                }
            };
            if boolean {
                a.unknown.insert(name, "true".into());
                continue;
            }
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let (_, v) = it
                    .next()
                    .ok_or_else(|| ArgsError::Usage(format!("flag -{name} needs a value")))?;
                v.into_string().map_err(|raw| {
                    ArgsError::NotUtf8(format!(
                        "flag -{name}: value \"{}\" is not valid UTF-8",
                        escaped(&raw)
                    ))
                })?
            }
        };
        match name.as_str() {
            "namespace" => a.namespace = value,
            "id" => a.id = value,
            "address" => a.address = value,
            "publish-binary" => a.publish_binary = value,
            "bundle" => a.bundle = value,
            "socket" => a.socket = value,
            "state-dir" => a.state_dir = value,
            "min-age" => a.min_age = value,
            _ => {
                a.unknown.insert(name, value);
            }
        }
    }
    Ok(a)
}

impl Args {
    /// Whether the line carries any of the flags containerd passes its
    /// shims: a line without them is an operator's.
    pub fn has_containerd_flags(&self) -> bool {
        !(self.namespace.is_empty()
            && self.id.is_empty()
            && self.address.is_empty()
            && self.publish_binary.is_empty()
            && self.bundle.is_empty()
            && self.socket.is_empty())
            || self.debug
    }

    /// The usage error for an unknown flag, where one is an error: always
    /// for `sweep` (only an operator runs it), and for a line that carries
    /// none of containerd's flags. For `start` and `delete`, and for the
    /// daemon started with containerd's flags, unknown flags are ignored:
    /// a flag a newer containerd adds must never break the shim.
    pub fn refused_unknown(&self) -> Option<String> {
        let (name, _) = self.unknown.iter().next()?;
        let tolerated = match self.action.as_str() {
            "sweep" => false,
            "start" | "delete" => true,
            _ => self.has_containerd_flags(),
        };
        (!tolerated).then(|| format!("flag provided but not defined: -{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::ffi::OsStringExt;

    fn p(s: &[&str]) -> Args {
        parse(s.iter().map(|s| s.to_string())).unwrap()
    }

    fn raw(b: &[u8]) -> OsString {
        OsString::from_vec(b.to_vec())
    }

    #[test]
    fn containerd_16_start_line() {
        let a = p(&[
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ]);
        assert_eq!(a.namespace, "k8s.io");
        assert_eq!(a.id, "abc");
        assert!(a.debug);
        assert_eq!(a.action, "start");
    }

    #[test]
    fn equals_form_and_unknown_flags() {
        let a = p(&[
            "--namespace=default",
            "-id=x",
            "-bundle",
            "/b",
            "-future",
            "1",
            "delete",
        ]);
        assert_eq!(a.namespace, "default");
        assert_eq!(a.bundle, "/b");
        assert_eq!(a.unknown.get("future").map(String::as_str), Some("1"));
        assert_eq!(a.action, "delete");
    }

    #[test]
    fn sweep_line() {
        let a = p(&[
            "sweep",
            "--namespace",
            "k8s.io",
            "--dry-run",
            "--state-dir=/run/x",
            "--min-age",
            "0",
        ]);
        assert_eq!(a.action, "sweep");
        assert_eq!(a.namespace, "k8s.io");
        assert!(a.dry_run);
        assert_eq!(a.state_dir, "/run/x");
        assert_eq!(a.min_age, "0");
        assert!(!p(&["sweep"]).dry_run);
    }

    #[test]
    fn version_and_errors() {
        assert!(p(&["-v"]).version);
        assert!(p(&["--version"]).version);
        assert!(p(&["-info"]).info);
        assert!(parse(["-id".to_string()]).is_err());
        assert!(parse(["start".to_string(), "extra".to_string()]).is_err());
        assert!(parse(["-debug=maybe".to_string()]).is_err());
    }

    #[test]
    fn help_in_every_form() {
        for line in [
            &["--help"][..],
            &["-h"],
            &["-help"],
            &["--h"],
            &["help"],
            &["help", "sweep"],
            &["sweep", "--help"],
            &["delete", "-h"],
            &["start", "--help"],
            // as Go's flag: parsing stops at -help, a malformed rest is not seen
            &["--help", "-id"],
            &["-namespace", "default", "--help", "extra", "args"],
        ] {
            assert!(p(line).help, "{line:?}");
        }
        assert_eq!(p(&["sweep", "--help"]).action, "sweep");
        assert!(!p(&["-help=false", "sweep"]).help);
        assert!(!p(&["sweep"]).help);
    }

    #[test]
    fn unknown_flags_from_containerd_are_tolerated() {
        // A string flag: takes its value, as Go's flag does.
        let a = p(&["-namespace", "k8s.io", "-future", "x", "-id", "c1", "start"]);
        assert_eq!(a.unknown.get("future").map(String::as_str), Some("x"));
        assert_eq!((a.id.as_str(), a.action.as_str()), ("c1", "start"));
        // A new boolean flag before another flag, or right before the final
        // action, or last of all, does not swallow what follows.
        let a = p(&["-newbool", "-namespace", "default", "-id", "c1", "delete"]);
        assert_eq!(a.unknown.get("newbool").map(String::as_str), Some("true"));
        assert_eq!(
            (a.namespace.as_str(), a.action.as_str()),
            ("default", "delete")
        );
        let a = p(&["-namespace", "default", "-id", "c1", "-newbool", "start"]);
        assert_eq!(a.action, "start");
        assert_eq!(a.unknown.get("newbool").map(String::as_str), Some("true"));
        let a = p(&["-namespace", "default", "-id", "c1", "-newbool"]);
        assert_eq!(a.action, "");
        assert_eq!(a.unknown.get("newbool").map(String::as_str), Some("true"));
        // A known string flag still takes whatever follows (Go's rule).
        assert_eq!(p(&["-id", "-x", "delete"]).id, "-x");
        // Tolerated for containerd's actions and a daemon line with its flags.
        for line in [
            &["-namespace", "default", "-future", "1", "start"][..],
            &["-future", "1", "delete"],
            &["-namespace", "default", "-id", "c1", "-future", "1"],
            &["-debug", "-future"],
        ] {
            let a = p(line);
            assert!(!a.unknown.is_empty(), "{line:?}");
            assert_eq!(a.refused_unknown(), None, "{line:?}");
        }
    }

    #[test]
    fn unknown_flags_of_an_operator_are_usage_errors() {
        for (line, flag) in [
            (&["sweep", "--force"][..], "force"),
            (
                &["sweep", "--namespace", "default", "--all", "--dry-run"],
                "all",
            ),
            (
                &[
                    "-namespace",
                    "default",
                    "sweep",
                    "--min-age=1m",
                    "--older",
                    "1h",
                ],
                "older",
            ),
            (&["--frobnicate"], "frobnicate"),
            (&["-x", "1"], "x"),
        ] {
            assert_eq!(
                p(line).refused_unknown(),
                Some(format!("flag provided but not defined: -{flag}")),
                "{line:?}"
            );
        }
        assert_eq!(p(&["sweep", "--dry-run"]).refused_unknown(), None);
    }

    #[test]
    fn non_utf8_arguments_are_refused_by_name() {
        let err = |argv: Vec<OsString>| parse(argv).unwrap_err();
        let e = err(vec![raw(b"-id"), raw(b"ab\xffc"), raw(b"delete")]);
        assert_eq!(
            e,
            ArgsError::NotUtf8("flag -id: value \"ab\\xffc\" is not valid UTF-8".into())
        );
        assert_eq!(e.exit_code(), 1);
        let e = err(vec![raw(b"-namespace=k8s\xfe"), raw(b"start")]);
        assert_eq!(
            e.to_string(),
            "flag -namespace: value \"k8s\\xfe\" is not valid UTF-8"
        );
        let e = err(vec![raw(b"--address"), raw(b"/run/\xc3(")]);
        assert!(e.to_string().starts_with("flag -address: "), "{e}");
        let e = err(vec![raw(b"-i\xffd"), raw(b"x")]);
        assert_eq!(e.to_string(), "flag \"-i\\xffd\" is not valid UTF-8");
        let e = err(vec![raw(b"-id"), raw(b"x"), raw(b"del\xffete")]);
        assert_eq!(
            e.to_string(),
            "argument 3 \"del\\xffete\" is not valid UTF-8"
        );
        // Valid UTF-8 that is not ASCII is text: the id rules judge it later.
        assert_eq!(p(&["-id", "é", "delete"]).id, "é");
        // Usage errors keep Go's exit status.
        assert_eq!(parse(["-id"]).unwrap_err().exit_code(), 2);
    }
}
