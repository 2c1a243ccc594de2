//! The runtime CLI driver shared by every family: runc and runsc speak the
//! same command line (`--root`, `--log`, `--log-format json`, then the
//! verb), so one [`Cli`] runs both, each call under its deadline in its own
//! process group. What a family does differently lives in its own module
//! (`crate::runc`, `crate::runsc`), on top of this one.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use robust_reaper::{ExitStatus, Reaper};
use serde::Deserialize;

use crate::RuntimeError;

/// Per-verb deadlines of runtime calls.
#[derive(Debug, Clone)]
pub struct Deadlines {
    pub per_verb: BTreeMap<String, Duration>,
    pub default: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            per_verb: BTreeMap::new(),
            default: Duration::from_secs(10),
        }
    }
}

impl Deadlines {
    pub fn for_verb(&self, verb: &str) -> Duration {
        self.per_verb.get(verb).copied().unwrap_or(self.default)
    }
}

/// How to run the runtime binary.
#[derive(Debug, Clone)]
pub struct CliConfig {
    /// The binary: a name looked up in PATH, or a path.
    pub binary: PathBuf,
    /// The runtime's state root (`--root`).
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// Extra global flags placed before the verb (a family's own flags).
    pub global_flags: Vec<String>,
    pub deadlines: Deadlines,
}

/// Container stdio handed to the runtime for `create` and `exec`.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Options of `create`.
#[derive(Debug)]
pub struct CreateOpts<'a> {
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub stdio: Stdio,
}

/// Options of `exec --detach`.
#[derive(Debug)]
pub struct ExecOpts<'a> {
    pub process_json: &'a Path,
    pub pid_file: &'a Path,
    /// Where a sandbox runtime writes the exec's pid inside its sandbox
    /// (`--internal-pid-file`, runsc), before the pid file; `None` for a
    /// runtime whose exec is its own host process.
    pub internal_pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub stdio: Stdio,
}

/// `state` output (the fields we use).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    #[serde(default)]
    pub pid: i32,
    pub status: String,
    #[serde(default)]
    pub bundle: String,
}

/// The runtime's CLI, every call bounded by its deadline.
#[derive(Clone)]
pub struct Cli {
    cfg: CliConfig,
    reaper: Reaper,
}

/// What a finished call left behind.
pub(crate) struct Output {
    pub(crate) stdout: Vec<u8>,
}

impl Cli {
    pub fn new(cfg: CliConfig, reaper: Reaper) -> Cli {
        Cli { cfg, reaper }
    }

    pub fn config(&self) -> &CliConfig {
        &self.cfg
    }

    pub fn create(&self, id: &str, opts: CreateOpts<'_>) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["create".into(), "--bundle".into()];
        args.push(opts.bundle.into());
        args.push("--pid-file".into());
        args.push(opts.pid_file.into());
        if let Some(s) = opts.console_socket {
            args.push("--console-socket".into());
            args.push(s.into());
        }
        if opts.no_pivot {
            args.push("--no-pivot".into());
        }
        if opts.no_new_keyring {
            args.push("--no-new-keyring".into());
        }
        args.push(id.into());
        self.run("create", id, args, Some(opts.stdio), None)
            .map(|_| ())
    }

    pub fn exec(&self, id: &str, opts: ExecOpts<'_>) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["exec".into(), "--detach".into(), "--process".into()];
        args.push(opts.process_json.into());
        args.push("--pid-file".into());
        args.push(opts.pid_file.into());
        if let Some(p) = opts.internal_pid_file {
            args.push("--internal-pid-file".into());
            args.push(p.into());
        }
        if let Some(s) = opts.console_socket {
            args.push("--console-socket".into());
            args.push(s.into());
        }
        args.push(id.into());
        self.run("exec", id, args, Some(opts.stdio), None)
            .map(|_| ())
    }

    /// `start <id>`; with `stdio`, as the call's own stdin, stdout and
    /// stderr (a sandbox runtime hands them to the container it starts:
    /// runsc for an app container of a pod), its words then from `--log`
    /// only.
    pub fn start(&self, id: &str, stdio: Option<Stdio>) -> Result<(), RuntimeError> {
        if stdio.is_none() {
            return self.simple("start", id, &[]);
        }
        let args: Vec<OsString> = vec!["start".into(), id.into()];
        self.run("start", id, args, stdio, None).map(|_| ())
    }

    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("pause", id, &[])
    }

    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("resume", id, &[])
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let sig = signal.to_string();
        if all {
            self.simple("kill", id, &["--all", id, &sig])
        } else {
            self.simple("kill", id, &[id, &sig])
        }
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        if force {
            self.simple("delete", id, &["--force", id])
        } else {
            self.simple("delete", id, &[id])
        }
    }

    /// `update --resources -` with the OCI LinuxResources JSON on stdin.
    pub fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), RuntimeError> {
        let args = vec!["update".into(), "--resources".into(), "-".into(), id.into()];
        self.run("update", id, args, None, Some(resources_json))
            .map(|_| ())
    }

    pub fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let out = self.run("state", id, vec!["state".into(), id.into()], None, None)?;
        parse_state(&out.stdout).map_err(|detail| bad_output("state", id, detail))
    }

    /// Pids of the container's processes (`ps --format json`).
    pub fn ps(&self, id: &str) -> Result<Vec<i32>, RuntimeError> {
        let args = vec!["ps".into(), "--format".into(), "json".into(), id.into()];
        let out = self.run("ps", id, args, None, None)?;
        parse_ps(&out.stdout).map_err(|detail| bad_output("ps", id, detail))
    }

    fn simple(&self, verb: &'static str, id: &str, rest: &[&str]) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec![verb.into()];
        if rest.is_empty() {
            args.push(id.into());
        } else {
            args.extend(rest.iter().map(OsString::from));
        }
        self.run(verb, id, args, None, None).map(|_| ())
    }

    /// Run one verb under its deadline.
    pub(crate) fn run(
        &self,
        verb: &'static str,
        id: &str,
        args: Vec<OsString>,
        stdio: Option<Stdio>,
        input: Option<&[u8]>,
    ) -> Result<Output, RuntimeError> {
        let launched = self.launch(verb, id, args, stdio, input)?;
        self.finish(verb, id, launched, self.cfg.deadlines.for_verb(verb))
    }

    /// Start one runtime call. With `stdio` the container's stdio is the
    /// runtime's (create, exec): its words come from `--log` only.
    /// Otherwise stdout and stderr go to memory files read after the exit,
    /// so a large output can never block the runtime on a full pipe.
    pub(crate) fn launch(
        &self,
        verb: &'static str,
        id: &str,
        args: Vec<OsString>,
        stdio: Option<Stdio>,
        input: Option<&[u8]>,
    ) -> Result<Launched, RuntimeError> {
        let io_err = |context: &'static str| {
            let id = id.to_string();
            move |source: std::io::Error| RuntimeError::Io {
                verb,
                id,
                context,
                source,
            }
        };
        let log = memfile("runtime-log").map_err(io_err("create log file"))?;
        // The runtime opens our memory file by its /proc path: nothing is
        // inherited, so concurrent calls never see each other's files.
        let log_path = format!("/proc/{}/fd/{}", std::process::id(), log.as_raw_fd());

        let mut cmd = Command::new(&self.cfg.binary);
        cmd.arg("--root")
            .arg(&self.cfg.root)
            .arg("--log")
            .arg(&log_path)
            .arg("--log-format")
            .arg("json");
        if self.cfg.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(&self.cfg.global_flags);
        cmd.args(&args);
        // Its own process group, so a hung runtime and its helpers die together.
        cmd.process_group(0);

        let mut stdout_file = None;
        let mut stderr_file = None;
        match stdio {
            Some(s) => {
                cmd.stdin(s.stdin.map_or_else(std::process::Stdio::null, Into::into));
                cmd.stdout(s.stdout.map_or_else(std::process::Stdio::null, Into::into));
                cmd.stderr(s.stderr.map_or_else(std::process::Stdio::null, Into::into));
            }
            None => {
                let out = memfile("runtime-stdout").map_err(io_err("create stdout file"))?;
                let err = memfile("runtime-stderr").map_err(io_err("create stderr file"))?;
                cmd.stdout(out.try_clone().map_err(io_err("dup stdout file"))?);
                cmd.stderr(err.try_clone().map_err(io_err("dup stderr file"))?);
                stdout_file = Some(out);
                stderr_file = Some(err);
                match input {
                    Some(data) => {
                        let mut f =
                            memfile("runtime-stdin").map_err(io_err("create stdin file"))?;
                        f.write_all(data).map_err(io_err("write stdin file"))?;
                        f.seek(SeekFrom::Start(0))
                            .map_err(io_err("rewind stdin file"))?;
                        cmd.stdin(f);
                    }
                    None => {
                        cmd.stdin(std::process::Stdio::null());
                    }
                }
            }
        }

        let started = Instant::now();
        let child = self.reaper.spawn(&mut cmd).map_err(|e| match e {
            robust_reaper::ReaperError::Spawn { source, .. } => RuntimeError::Spawn {
                verb,
                id: id.to_string(),
                binary: self.cfg.binary.display().to_string(),
                source,
            },
            other => RuntimeError::Io {
                verb,
                id: id.to_string(),
                context: "spawn",
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        // Drop our copies of the child's stdio now (they moved into `cmd`).
        drop(cmd);
        Ok(Launched {
            child,
            log,
            stdout: stdout_file,
            stderr: stderr_file,
            started,
        })
    }

    /// Wait for a launched call within `timeout`; on expiry its process
    /// group is killed and reaped.
    pub(crate) fn finish(
        &self,
        verb: &'static str,
        id: &str,
        l: Launched,
        timeout: Duration,
    ) -> Result<Output, RuntimeError> {
        let Launched {
            mut child,
            log,
            stdout,
            stderr,
            started,
        } = l;
        let (status, timed_out) = child.wait_or_kill(timeout);
        if timed_out {
            log::warn!(
                "msg=\"runtime call exceeded its deadline; process group killed\" verb={verb} id={id} deadline={timeout:?} pid={}",
                child.pid()
            );
            return Err(RuntimeError::Timeout {
                verb,
                id: id.to_string(),
                after: timeout,
            });
        }
        log::debug!(
            "msg=\"runtime call\" verb={verb} id={id} status=\"{status}\" took={:?}",
            started.elapsed()
        );
        let stdout = stdout.map(read_all).unwrap_or_default();
        if status != ExitStatus::Code(0) {
            let mut message = last_log_error(&read_all(log));
            if message.is_empty() {
                if let Some(f) = stderr {
                    message = String::from_utf8_lossy(&read_all(f)).trim().to_string();
                }
            }
            return Err(RuntimeError::Failed {
                verb,
                id: id.to_string(),
                status,
                message,
            });
        }
        Ok(Output { stdout })
    }
}

/// The verbs a family passes to the CLI as they are, for an
/// `impl ContainerRuntime` whose `self.$cli` is a [`Cli`].
macro_rules! cli_verbs {
    ($cli:ident) => {
        fn create(
            &self,
            id: &str,
            opts: $crate::CreateOpts<'_>,
        ) -> Result<(), $crate::RuntimeError> {
            self.$cli.create(id, opts)
        }
        fn start(
            &self,
            id: &str,
            stdio: Option<$crate::Stdio>,
        ) -> Result<(), $crate::RuntimeError> {
            self.$cli.start(id, stdio)
        }
        fn exec(&self, id: &str, opts: $crate::ExecOpts<'_>) -> Result<(), $crate::RuntimeError> {
            self.$cli.exec(id, opts)
        }
        fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), $crate::RuntimeError> {
            self.$cli.kill(id, signal, all)
        }
        fn delete(&self, id: &str, force: bool) -> Result<(), $crate::RuntimeError> {
            self.$cli.delete(id, force)
        }
        fn state(&self, id: &str) -> Result<$crate::ContainerState, $crate::RuntimeError> {
            self.$cli.state(id)
        }
        fn ps(&self, id: &str) -> Result<Vec<i32>, $crate::RuntimeError> {
            self.$cli.ps(id)
        }
        fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), $crate::RuntimeError> {
            self.$cli.update(id, resources_json)
        }
        fn pause(&self, id: &str) -> Result<(), $crate::RuntimeError> {
            self.$cli.pause(id)
        }
        fn resume(&self, id: &str) -> Result<(), $crate::RuntimeError> {
            self.$cli.resume(id)
        }
    };
}
pub(crate) use cli_verbs;

/// "No deadline": calls that last as long as a container (`wait`).
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub(crate) struct Launched {
    child: robust_reaper::Child,
    log: File,
    stdout: Option<File>,
    stderr: Option<File>,
    started: Instant,
}

fn memfile(name: &str) -> std::io::Result<File> {
    let fd = memfd_create(
        &std::ffi::CString::new(name).unwrap_or_default(),
        MemFdCreateFlag::MFD_CLOEXEC,
    )?;
    Ok(File::from(fd))
}

fn read_all(mut f: File) -> Vec<u8> {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    buf
}

/// The messages of the runtime's JSON log at level error (the runtime
/// writes the cause of a failure there), joined; plain text lines are kept as they are.
/// runsc writes its JSON entries without a newline between them (`}{`):
/// a line is read as a sequence of entries, and kept whole only when it is
/// not one.
pub fn last_log_error(log: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Line {
        #[serde(default)]
        level: String,
        #[serde(default)]
        msg: String,
    }
    let text = String::from_utf8_lossy(log);
    let mut errors = Vec::new();
    for raw in text.lines().filter(|l| !l.trim().is_empty()) {
        let entries: Result<Vec<Line>, _> = serde_json::Deserializer::from_str(raw)
            .into_iter::<Line>()
            .collect();
        match entries {
            Ok(entries) => errors.extend(
                entries
                    .into_iter()
                    .filter(|l| l.level == "error" || l.level == "fatal")
                    .map(|l| l.msg),
            ),
            Err(_) => errors.push(raw.trim().to_string()),
        }
    }
    errors.join("; ")
}

// The parsers of the runtime's output, public for the fuzz targets in
// fuzz/ (docs/fuzzing.md). Each error is the text of
// RuntimeError::BadOutput's detail: the decoder's message, then the output.

/// Parses `state` output (JSON; unknown fields ignored).
pub fn parse_state(stdout: &[u8]) -> Result<ContainerState, String> {
    serde_json::from_slice(stdout).map_err(|e| format!("{e}: {}", snippet(stdout)))
}

/// At most 200 characters of a runtime's output, for an error message.
pub(crate) fn snippet(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Parses `ps --format json` output: the pids; empty or `null` is
/// no pid.
pub fn parse_ps(stdout: &[u8]) -> Result<Vec<i32>, String> {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(Vec::new());
    }
    serde_json::from_str(trimmed).map_err(|e| format!("{e}: {}", snippet(stdout)))
}

pub(crate) fn bad_output(verb: &'static str, id: &str, detail: String) -> RuntimeError {
    RuntimeError::BadOutput {
        verb,
        id: id.to_string(),
        detail,
    }
}

#[cfg(test)]
pub(crate) mod tests;
