//! The usage text: `--help`, `-h`, `help`, `<action> --help` print it on
//! stdout (exit 0); a usage error prints it on stderr (exit 2).

use robust_cleanup::sweep::{SweepOptions, DEFAULT_STATE_DIR};

/// The whole usage: every action, its flags, one example each.
pub fn text() -> String {
    let min_age = SweepOptions::default().min_age;
    format!(
        "\
containerd-shim-robust-v2: the containerd runtime v2 shim io.containerd.robust.v2,
a drop-in replacement for containerd-shim-runc-v2. containerd runs start, delete
and (through start) the daemon; an operator runs sweep.

Usage:
  containerd-shim-robust-v2 [containerd flags] start    start or reuse the daemon of the container's
                                                        group, print its address (run in the bundle)
  containerd-shim-robust-v2 [containerd flags] delete   clean up after a dead shim, print a DeleteResponse
  containerd-shim-robust-v2 [containerd flags]          the daemon: serves the Task API (started by start)
  containerd-shim-robust-v2 sweep [sweep flags]         clean the task bundles no live shim owns
  containerd-shim-robust-v2 -v | -info | --help

containerd flags (unknown ones are ignored, so a newer containerd never breaks the shim):
  -namespace NS          the containerd namespace
  -id ID                 the container id
  -address ADDR          containerd's gRPC socket
  -publish-binary BIN    the containerd binary (events)
  -bundle DIR            the task bundle (default: the current directory)
  -socket PATH           accepted for compatibility with the Go shim, unused
  -debug                 log at debug level

sweep flags:
  --namespace NS         only this namespace (default: every namespace)
  --id ID                only this container
  --dry-run              list what would be done, change nothing
  --state-dir DIR        containerd's state dir (/run/containerd) or its io.containerd.runtime.v2.task
                         subdirectory (default {DEFAULT_STATE_DIR})
  --min-age DURATION     leave bundles changed more recently alone: 0, 30, 30s, 1500ms, 2m, 1h (default {min_age:?})

other flags:
  -v, --version          print the version
  -info                  print the runtime info (protobuf, asked for by containerd 2.x)
  -h, --help             print this help

Flags take one or two dashes; values as -name value or -name=value.

Examples:
  start (cwd: the bundle):
    containerd-shim-robust-v2 -namespace default -address /run/containerd/containerd.sock \\
        -publish-binary /usr/bin/containerd -id c1 start
  delete:
    containerd-shim-robust-v2 -namespace default -address /run/containerd/containerd.sock \\
        -id c1 -bundle /run/containerd/io.containerd.runtime.v2.task/default/c1 delete
  the daemon (start runs it with the listening socket; not run by hand):
    containerd-shim-robust-v2 -namespace default -id c1 -address /run/containerd/containerd.sock
  sweep:
    containerd-shim-robust-v2 sweep --dry-run
    containerd-shim-robust-v2 sweep --namespace k8s.io --state-dir /run/containerd --min-age 1m
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_every_action_flag_and_default() {
        let t = super::text();
        for want in [
            " start ",
            " delete",
            "the daemon",
            " sweep ",
            "-namespace NS",
            "-id ID",
            "-address ADDR",
            "-publish-binary BIN",
            "-bundle DIR",
            "-socket PATH",
            "-debug",
            "--namespace NS",
            "--id ID",
            "--dry-run",
            "--state-dir DIR",
            "--min-age DURATION",
            "(default 10s)",
            "(default /run/containerd/io.containerd.runtime.v2.task)",
            "-v, --version",
            "-info",
            "-h, --help",
        ] {
            assert!(t.contains(want), "usage lacks {want:?}:\n{t}");
        }
        // one example each
        for action in [" start\n", " delete\n", "sweep --dry-run\n"] {
            assert!(t.contains(action), "no example of {action:?}");
        }
        // fits a terminal
        for l in t.lines() {
            assert!(l.chars().count() <= 110, "line too long: {l:?}");
        }
    }
}
