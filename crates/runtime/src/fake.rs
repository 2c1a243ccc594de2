//! A runtime for tests (feature `testing`): every call is recorded, any
//! verb of any container can be scripted to fail, to run out of its
//! deadline or to hang until the test releases it, and its processes are
//! real: each init and exec is a `sh` child of the test process that waits
//! for the exit status the test gives it ([`FakeRuntime::exit`]), so its
//! exit is reaped by the test's reaper exactly as a runc init's is by the
//! daemon's. Nothing needs root.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio as ProcStdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use robust_reaper::ExitStatus;

use crate::container_runtime::{ContainerRuntime, Leftovers, Placement};
use crate::{ContainerState, CreateOpts, ExecOpts, RuntimeError};

/// What a scripted call does instead of its ordinary work.
#[derive(Clone)]
pub enum Step {
    /// Fail with the runtime's message `.0` (classified as runc's would be).
    Fail(String),
    /// Run out of its deadline.
    Timeout,
    /// Block until the gate is released, then do the ordinary work.
    Hold(Gate),
}

/// A point a scripted call stops at until the test lets it go.
#[derive(Clone, Default)]
pub struct Gate {
    inner: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Wait up to `timeout` until a call reached the gate.
    pub fn wait_reached(&self, timeout: Duration) -> bool {
        let (m, cv) = &*self.inner;
        let Ok(g) = m.lock() else { return false };
        cv.wait_timeout_while(g, timeout, |(reached, _)| !*reached)
            .map(|(g, _)| g.0)
            .unwrap_or(false)
    }

    /// Let the call (and any later one) through.
    pub fn release(&self) {
        let (m, cv) = &*self.inner;
        if let Ok(mut g) = m.lock() {
            g.1 = true;
        }
        cv.notify_all();
    }

    fn pass(&self) {
        let (m, cv) = &*self.inner;
        let Ok(mut g) = m.lock() else { return };
        g.0 = true;
        cv.notify_all();
        drop(cv.wait_while(g, |(_, released)| !*released));
    }
}

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub verb: &'static str,
    pub id: String,
    /// `delete`: forced; `kill`: `--all`.
    pub flag: bool,
    /// `kill`: the signal.
    pub signal: u32,
}

struct Proc {
    pid: i32,
    stdin: Option<ChildStdin>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    scripts: HashMap<(&'static str, String), VecDeque<Step>>,
    /// (container, exec id; empty for the init) -> its process.
    procs: HashMap<(String, String), Proc>,
    /// Containers the fake holds, with their status.
    containers: HashMap<String, &'static str>,
}

/// The fake runtime. Clones share one state.
#[derive(Clone)]
pub struct FakeRuntime {
    root: PathBuf,
    state: Arc<Mutex<State>>,
    /// Places an app container of a pod in its pod's sandbox, as a sandbox
    /// runtime does ([`FakeRuntime::with_pod_sandbox`]).
    pod_sandbox: bool,
}

impl FakeRuntime {
    /// A fake whose state root is `root` (nothing is written there).
    pub fn new(root: &Path) -> FakeRuntime {
        FakeRuntime {
            root: root.to_path_buf(),
            state: Arc::default(),
            pod_sandbox: false,
        }
    }

    /// A fake that places an app container of a pod in its pod's sandbox
    /// (`Placement::PodSandbox`), as runsc does; its processes are still
    /// its own children, reaped.
    pub fn with_pod_sandbox(mut self) -> FakeRuntime {
        self.pod_sandbox = true;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next call of `verb` for `id` does `step` (steps queue up).
    pub fn script(&self, verb: &'static str, id: &str, step: Step) {
        self.lock()
            .scripts
            .entry((verb, id.to_string()))
            .or_default()
            .push_back(step);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of `verb` for `id`.
    pub fn calls_of(&self, verb: &str, id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.verb == verb && c.id == id)
            .collect()
    }

    /// The host pid of a process of the fake (`exec` empty: the init).
    pub fn pid(&self, id: &str, exec: &str) -> Option<i32> {
        self.lock()
            .procs
            .get(&(id.to_string(), exec.to_string()))
            .map(|p| p.pid)
    }

    /// Make a process exit with `code`: it is then reaped like any child.
    pub fn exit(&self, id: &str, exec: &str, code: u8) {
        let mut st = self.lock();
        if let Some(p) = st.procs.get_mut(&(id.to_string(), exec.to_string())) {
            if let Some(mut stdin) = p.stdin.take() {
                let _ = writeln!(stdin, "{code}");
            }
        }
    }

    /// Run the call's script, if any: `Err` when it fails.
    fn begin(&self, call: Call) -> Result<(), RuntimeError> {
        let (verb, id) = (call.verb, call.id.clone());
        let step = {
            let mut st = self.lock();
            st.calls.push(call);
            st.scripts
                .get_mut(&(verb, id.clone()))
                .and_then(VecDeque::pop_front)
        };
        match step {
            None => Ok(()),
            Some(Step::Hold(gate)) => {
                gate.pass();
                Ok(())
            }
            Some(Step::Timeout) => Err(RuntimeError::Timeout {
                verb,
                id,
                after: Duration::from_millis(1),
            }),
            Some(Step::Fail(message)) => Err(failed(verb, &id, &message)),
        }
    }

    fn call(&self, verb: &'static str, id: &str) -> Result<(), RuntimeError> {
        self.begin(Call {
            verb,
            id: id.to_string(),
            flag: false,
            signal: 0,
        })
    }

    /// A process that exits with the status written to its stdin.
    fn spawn(&self, id: &str, exec: &str, pid_file: &Path) -> Result<(), RuntimeError> {
        let io = |context: &'static str| {
            let id = id.to_string();
            move |source: std::io::Error| RuntimeError::Io {
                verb: "spawn",
                id,
                context,
                source,
            }
        };
        let mut child = Command::new("/bin/sh")
            .args(["-c", "read code; exit \"$code\""])
            .stdin(ProcStdio::piped())
            .stdout(ProcStdio::null())
            .stderr(ProcStdio::null())
            .spawn()
            .map_err(io("spawn sh"))?;
        let pid = child.id() as i32;
        let stdin = child.stdin.take();
        // Not waited for here: the test's reaper reaps it.
        drop(child);
        std::fs::write(pid_file, pid.to_string()).map_err(io("write pid file"))?;
        self.lock()
            .procs
            .insert((id.to_string(), exec.to_string()), Proc { pid, stdin });
        Ok(())
    }

    fn init_pid(&self, id: &str) -> Option<i32> {
        self.pid(id, "")
    }

    fn status(&self, id: &str) -> Option<&'static str> {
        let status = self.lock().containers.get(id).copied()?;
        let alive = self.init_pid(id).is_some_and(alive);
        Some(if alive { status } else { "stopped" })
    }
}

fn failed(verb: &'static str, id: &str, message: &str) -> RuntimeError {
    RuntimeError::Failed {
        verb,
        id: id.to_string(),
        status: ExitStatus::Code(1),
        message: message.to_string(),
    }
}

fn alive(pid: i32) -> bool {
    crate::procfs::pid_alive(pid)
}

/// Wait until `pid` is gone (reaped), for at most `within`.
fn gone(pid: i32, within: Duration) {
    let end = Instant::now() + within;
    while alive(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl ContainerRuntime for FakeRuntime {
    fn family(&self) -> &'static str {
        "fake"
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn placement(&self, pod_app: Option<bool>) -> Placement {
        if self.pod_sandbox && pod_app != Some(false) {
            Placement::PodSandbox
        } else {
            Placement::Own
        }
    }

    fn create(&self, id: &str, opts: CreateOpts<'_>) -> Result<(), RuntimeError> {
        self.call("create", id)?;
        if self.lock().containers.contains_key(id) {
            return Err(failed(
                "create",
                id,
                "container with given ID already exists",
            ));
        }
        self.spawn(id, "", opts.pid_file)?;
        self.lock().containers.insert(id.to_string(), "created");
        Ok(())
    }

    fn start(&self, id: &str, _stdio: Option<crate::Stdio>) -> Result<(), RuntimeError> {
        self.call("start", id)?;
        match self.lock().containers.get_mut(id) {
            Some(s) => *s = "running",
            None => return Err(failed("start", id, "container does not exist")),
        }
        Ok(())
    }

    fn exec(&self, id: &str, opts: ExecOpts<'_>) -> Result<(), RuntimeError> {
        self.call("exec", id)?;
        let exec = opts
            .pid_file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
            .unwrap_or("exec")
            .to_string();
        self.spawn(id, &exec, opts.pid_file)
    }

    fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        self.begin(Call {
            verb: "kill",
            id: id.to_string(),
            flag: all,
            signal,
        })?;
        let pid = self.init_pid(id).filter(|p| alive(*p));
        let sig = Signal::try_from(signal as i32).map_err(|_| failed("kill", id, "bad signal"))?;
        match pid {
            Some(p) if kill(Pid::from_raw(p), sig).is_ok() => Ok(()),
            _ => Err(failed("kill", id, "container not running")),
        }
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        self.begin(Call {
            verb: "delete",
            id: id.to_string(),
            flag: force,
            signal: 0,
        })?;
        if !self.lock().containers.contains_key(id) {
            return Err(failed(
                "delete",
                id,
                &format!("container \"{id}\" does not exist"),
            ));
        }
        if let Some(p) = self.init_pid(id).filter(|p| alive(*p)) {
            if !force {
                return Err(failed("delete", id, "cannot delete a running container"));
            }
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            gone(p, Duration::from_secs(5));
        }
        self.lock().containers.remove(id);
        Ok(())
    }

    fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        self.call("state", id)?;
        let status = self
            .status(id)
            .ok_or_else(|| failed("state", id, "container does not exist"))?;
        Ok(ContainerState {
            id: id.to_string(),
            pid: self.init_pid(id).unwrap_or(0),
            status: status.to_string(),
            bundle: String::new(),
        })
    }

    fn ps(&self, id: &str) -> Result<Vec<i32>, RuntimeError> {
        self.call("ps", id)?;
        let mut pids: Vec<i32> = self
            .lock()
            .procs
            .iter()
            .filter(|((c, _), p)| c == id && alive(p.pid))
            .map(|(_, p)| p.pid)
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    fn update(&self, id: &str, _resources_json: &[u8]) -> Result<(), RuntimeError> {
        self.call("update", id)
    }

    fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.call("pause", id)?;
        if let Some(s) = self.lock().containers.get_mut(id) {
            *s = "paused";
        }
        Ok(())
    }

    fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.call("resume", id)?;
        if let Some(s) = self.lock().containers.get_mut(id) {
            *s = "running";
        }
        Ok(())
    }

    fn leftovers(&self) -> &dyn Leftovers {
        self
    }

    /// Recorded as a call `after_delete` (`flag`: the delete succeeded).
    fn after_delete(&self, id: &str, _bundle: &Path, deleted: bool) {
        self.lock().calls.push(Call {
            verb: "after_delete",
            id: id.to_string(),
            flag: deleted,
            signal: 0,
        });
    }
}

/// The fake's state is the containers it holds.
impl Leftovers for FakeRuntime {
    fn has_state(&self, id: &str) -> bool {
        self.lock().containers.contains_key(id)
    }

    fn describe_state(&self, id: &str) -> String {
        format!("(fake) {id}")
    }

    fn forget_dead(&self, id: &str, nothing_alive: bool, _cause: &str) -> Result<bool, String> {
        if nothing_alive {
            self.lock().containers.remove(id);
        }
        Ok(!self.has_state(id))
    }
}
