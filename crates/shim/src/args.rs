//! The command line containerd uses, parsed the way Go's `flag` package
//! does: `-name value`, `-name=value`, `--name`, boolean flags alone.

use std::collections::BTreeMap;

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

const BOOL_FLAGS: &[&str] = &["debug", "v", "version", "info", "dry-run"];

pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if a.action.is_empty() {
                a.action = arg;
                continue;
            }
            return Err(format!(
                "unexpected argument {arg:?} after action {:?}",
                a.action
            ));
        };
        if flag.is_empty() {
            return Err("empty flag".into());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if BOOL_FLAGS.contains(&name.as_str()) {
            let on = match inline.as_deref() {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(v) => return Err(format!("flag -{name}: invalid boolean {v:?}")),
            };
            match name.as_str() {
                "debug" => a.debug = on,
                "v" | "version" => a.version = on,
                "dry-run" => a.dry_run = on,
                _ => a.info = on,
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("flag -{name} needs a value"))?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Args {
        parse(s.iter().map(|s| s.to_string())).unwrap()
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
}
