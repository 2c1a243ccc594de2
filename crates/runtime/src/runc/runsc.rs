//! Verbs only runsc (gVisor) has, or uses differently from runc.
//!
//! - `start` of an app container of a pod hands runsc *its own* stdio: runsc
//!   passes the stdin, stdout and stderr of the `runsc start` call to the
//!   sandbox as the container's (runsc/container/container.go,
//!   `(*Container).Start`, sub-container branch: `stdios = []*os.File{os.Stdin,
//!   os.Stdout, os.Stderr}` then `Sandbox.StartSubcontainer`, in both the
//!   2022-12-19 and 2024-07-29 releases). `runsc create` of such a container
//!   does not use its stdio at all.
//! - `kill --pid` signals one process inside the sandbox: the host
//!   `runsc exec` process of an exec is only its waiter and forwards no
//!   signal unless the exec has a terminal (runsc/cmd/exec.go, `exec`:
//!   `ForwardSignals` only when `StdioIsPty`).

use std::ffi::OsString;

use crate::runc::{Runc, Stdio};
use crate::RuntimeError;

impl Runc {
    /// `runsc start <id>` with `stdio` as the call's own stdin, stdout and
    /// stderr, which runsc gives the sub-container it starts. runsc's words
    /// on a failure come from its `--log` (it writes them to its stderr as
    /// well, that is to the container's stderr, as runc does on a failed
    /// create).
    pub fn start_with_stdio(&self, id: &str, stdio: Stdio) -> Result<(), RuntimeError> {
        let args: Vec<OsString> = vec!["start".into(), id.into()];
        self.run("start", id, args, Some(stdio), None).map(|_| ())
    }

    /// `runsc kill --pid <pid> <id> <signal>`: `signal` to the process `pid`
    /// of the sandbox's pid namespace (an exec's pid as runsc wrote it to
    /// `--internal-pid-file`), under the `kill` deadline.
    pub fn kill_process(&self, id: &str, pid: i32, signal: u32) -> Result<(), RuntimeError> {
        let args: Vec<OsString> = vec![
            "kill".into(),
            "--pid".into(),
            pid.to_string().into(),
            id.into(),
            signal.to_string().into(),
        ];
        self.run("kill", id, args, None, None).map(|_| ())
    }
}
