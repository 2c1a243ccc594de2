//! What the soak reads and does on the host: shim daemons, zombies, mounts, bundle and
//! runtime state dirs, cgroups and stray processes of its namespace (and only of its
//! namespace and containerd: other instances on the machine are never looked at), the
//! fault-injecting runtime wrappers, and the gated restart of its containerd.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use robust_integration::{all_pids, cmdline, exe_name, pid_alive, poll_quiet, proc_stat};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Runsc,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Runsc => "runsc",
        }
    }
}

pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub struct Host {
    pub ns: String,
    pub run_dir: PathBuf,
    pub address: PathBuf,
    /// state/io.containerd.runtime.v2.task/<ns>
    pub bundles: PathBuf,
    /// the soak's scratch dir (TOMLs, fault wrappers): <run dir>/soak
    pub scratch: PathBuf,
    pub runc_root: PathBuf,
    pub runsc_root: PathBuf,
    /// the ttrpc paths shims of this run may forward events to (the original one and
    /// one per gated restart)
    ttrpc_paths: Vec<PathBuf>,
    restarts: u32,
    last_gate: u32,
    /// the prefix of the run's container ids (`s<seed>-`)
    pub id_prefix: String,
    /// the cgroup `/<ns>/<name>` of the bystander host process: not a leftover
    pub keep_cgroup: Option<String>,
}

impl Host {
    pub fn new(ns: &str) -> Host {
        let e = robust_integration::env();
        // every ttrpc path a shim of this containerd may have been given: the configured
        // one, the running containerd's (an earlier soak may have restarted it gated) and
        // every earlier gated one
        let mut ttrpc_paths = vec![e.run_dir.join("c.sock.ttrpc")];
        let mut last_gate = 0;
        for n in names(&e.run_dir) {
            if let Some(k) = n.strip_prefix('g').and_then(|r| r.strip_suffix(".ttrpc")) {
                if let Ok(k) = k.parse::<u32>() {
                    last_gate = last_gate.max(k);
                    ttrpc_paths.push(e.run_dir.join(&n));
                }
            }
        }
        ttrpc_paths.sort_by_key(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| {
                    n.strip_prefix('g')?
                        .strip_suffix(".ttrpc")?
                        .parse::<u32>()
                        .ok()
                })
                .unwrap_or(0)
        });
        Host {
            ns: ns.into(),
            run_dir: e.run_dir.clone(),
            address: e.address.clone(),
            bundles: e.state_dir.join("io.containerd.runtime.v2.task").join(ns),
            scratch: e.run_dir.join("soak"),
            runc_root: Path::new("/run/containerd/runc").join(ns),
            runsc_root: Path::new("/run/containerd/runsc").join(ns),
            ttrpc_paths,
            restarts: 0,
            last_gate,
            id_prefix: String::new(),
            keep_cgroup: None,
        }
    }

    pub fn bundle(&self, id: &str) -> PathBuf {
        self.bundles.join(id)
    }

    // -----------------------------------------------------------------------------------
    // shims, zombies
    // -----------------------------------------------------------------------------------

    /// Shim daemons of this containerd and namespace: (pid, -id, binary name).
    pub fn shims(&self) -> Vec<(i32, String, String)> {
        let addr = format!("-address {} ", self.address.display());
        let ns = format!("-namespace {} ", self.ns);
        let mut v = Vec::new();
        for pid in all_pids() {
            let Some(exe) = exe_name(pid) else { continue };
            if !exe.starts_with("containerd-shim") {
                continue;
            }
            let c = format!("{} ", cmdline(pid));
            // not the short-lived `start` and `delete` actions: the daemons
            if !c.contains(&addr)
                || !c.contains(&ns)
                || c.ends_with(" delete ")
                || c.ends_with(" start ")
            {
                continue;
            }
            if !pid_alive(pid) {
                continue;
            }
            let id = c
                .split_whitespace()
                .skip_while(|a| *a != "-id")
                .nth(1)
                .unwrap_or("")
                .to_string();
            v.push((pid, id, exe));
        }
        v
    }

    /// The shim daemon serving container `id`: its bundle's `shim.pid` when that is a live
    /// shim, else the daemons whose `-id` it is.
    pub fn shim_of(&self, id: &str) -> Vec<i32> {
        let pid = fs::read_to_string(self.bundle(id).join("shim.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(p) = pid {
            if pid_alive(p) && exe_name(p).is_some_and(|e| e.starts_with("containerd-shim")) {
                return vec![p];
            }
        }
        self.shims()
            .into_iter()
            .filter(|s| s.1 == id)
            .map(|s| s.0)
            .collect()
    }

    /// Zombies whose parent is one of [`Host::shims`].
    pub fn shim_zombies(&self) -> Vec<String> {
        let shims: HashSet<i32> = self.shims().iter().map(|s| s.0).collect();
        let mut v = Vec::new();
        for pid in all_pids() {
            if let Some(('Z', ppid, comm)) = proc_stat(pid) {
                if shims.contains(&ppid) {
                    v.push(format!("zombie {pid} ({comm}) of shim {ppid}"));
                }
            }
        }
        v
    }

    // -----------------------------------------------------------------------------------
    // leftovers
    // -----------------------------------------------------------------------------------

    /// Mount points under the run dir (and the runtimes' roots) that belong to no live
    /// container.
    pub fn mounts_left(&self, live: &HashSet<String>) -> Vec<String> {
        let under: Vec<String> = [&self.run_dir, &self.runc_root, &self.runsc_root]
            .iter()
            .map(|p| format!("{}/", p.display()))
            .collect();
        let keep: Vec<String> = live
            .iter()
            .map(|id| format!("{}/", self.bundle(id).display()))
            .collect();
        robust_integration::mount_points()
            .into_iter()
            .filter(|m| under.iter().any(|u| m.starts_with(u.as_str())))
            .filter(|m| !keep.iter().any(|k| format!("{m}/").starts_with(k.as_str())))
            .collect()
    }

    /// Bundle dirs of no live container.
    pub fn bundles_left(&self, live: &HashSet<String>) -> Vec<String> {
        names(&self.bundles)
            .into_iter()
            .filter(|n| !live.contains(n))
            .map(|n| self.bundles.join(n).display().to_string())
            .collect()
    }

    /// runc state dirs and runsc state files of no live container.
    pub fn runtime_state_left(&self, live: &HashSet<String>) -> Vec<String> {
        let mut v = Vec::new();
        for n in names(&self.runc_root) {
            if !live.contains(&n) {
                v.push(self.runc_root.join(n).display().to_string());
            }
        }
        for n in names(&self.runsc_root) {
            // <id>_sandbox:<sandbox id>.state / .lock
            let id = n.split("_sandbox:").next().unwrap_or(&n).to_string();
            if !live.contains(&id) {
                v.push(self.runsc_root.join(n).display().to_string());
            }
        }
        v
    }

    /// cgroup dirs `<controller>/<ns>/<id>` of no live container (with their pids).
    pub fn cgroups_left(&self, live: &HashSet<String>) -> Vec<String> {
        let mut v = Vec::new();
        for ctrl in names(Path::new("/sys/fs/cgroup")) {
            let d = Path::new("/sys/fs/cgroup").join(&ctrl).join(&self.ns);
            for id in names(&d) {
                let p = d.join(&id);
                if live.contains(&id) || self.keep_cgroup.as_ref() == Some(&id) || !p.is_dir() {
                    continue;
                }
                let procs = fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default();
                let procs: Vec<&str> = procs.split_whitespace().collect();
                if procs.is_empty() {
                    v.push(format!("{} (empty)", p.display()));
                } else {
                    v.push(format!("{} (pids {})", p.display(), procs.join(",")));
                }
            }
        }
        v
    }

    /// Runtime processes (runc, runsc, the fault wrappers) of this namespace, and any
    /// process in the cgroup of a container that is not live.
    pub fn stray_processes(&self, live: &HashSet<String>) -> Vec<String> {
        let runc_root = self.runc_root.display().to_string();
        let runsc_root = self.runsc_root.display().to_string();
        let scratch = self.scratch.display().to_string();
        let cg = format!("/{}/", self.ns);
        let mut v = Vec::new();
        let me = std::process::id() as i32;
        for pid in all_pids() {
            if pid == me {
                continue;
            }
            let Some((st, _, comm)) = proc_stat(pid) else {
                continue;
            };
            if st == 'Z' || st == 'X' {
                continue;
            }
            let c = cmdline(pid);
            let exe = exe_name(pid).unwrap_or_default();
            let runtime_proc = (exe == "runc" || exe == "runsc" || comm.starts_with("runc"))
                && (c.contains(&runc_root) || c.contains(&runsc_root));
            let wrapper = c.contains(&scratch);
            let cgroup_id = fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    let p = l.splitn(3, ':').nth(2)?;
                    let rest = p.strip_prefix(&cg)?;
                    Some(rest.split('/').next()?.to_string())
                });
            if runtime_proc || wrapper {
                let for_live = live.iter().any(|id| mentions(&c, id));
                if !for_live {
                    // the container it is for, from its bundle path or id argument
                    let of = c
                        .split(|ch: char| ch.is_whitespace() || ch == '/' || ch == '=')
                        .find(|w| w.starts_with(&self.id_prefix))
                        .map(|w| format!(" for {}", w.trim_end_matches("_sandbox")))
                        .unwrap_or_default();
                    v.push(format!("{pid} ({comm}){of}: {}", short(&c)));
                }
            } else if let Some(id) = cgroup_id {
                if !live.contains(&id) && !id.is_empty() && self.keep_cgroup.as_ref() != Some(&id) {
                    v.push(format!(
                        "{pid} ({comm}) in cgroup /{}/{id}: {}",
                        self.ns,
                        short(&c)
                    ));
                }
            }
        }
        v
    }

    // -----------------------------------------------------------------------------------
    // containerd: stop, gated restart
    // -----------------------------------------------------------------------------------

    pub fn config(&self) -> PathBuf {
        self.run_dir.join("config.toml")
    }

    /// containerd's pid, if the pid file names a live containerd of this run dir.
    pub fn containerd_pid(&self) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.run_dir.join("containerd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let c = cmdline(pid);
        (pid_alive(pid)
            && c.contains("containerd")
            && c.contains(&format!("--config {}", self.config().display())))
        .then_some(pid)
    }

    /// SIGTERM to containerd (by its pid file), SIGKILL after 15 s.
    pub fn stop_containerd(&self) -> Result<Duration, String> {
        let pid = self
            .containerd_pid()
            .ok_or("the soak's containerd is not running")?;
        let t = Instant::now();
        // SAFETY: kill(2) of the pid our pid file names, checked to be our containerd
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if !poll_quiet(Duration::from_secs(15), || !pid_alive(pid)) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if !poll_quiet(Duration::from_secs(5), || !pid_alive(pid)) {
                return Err(format!("containerd {pid} survived SIGKILL for 5 s"));
            }
        }
        Ok(t.elapsed())
    }

    /// Starts containerd again with its ttrpc endpoint (where shims forward events) at a
    /// new path; every path shims may use stays dead until [`Host::open_gate`].
    pub fn start_containerd_gated(&mut self) -> Result<PathBuf, String> {
        self.restarts += 1;
        self.last_gate += 1;
        let gated = self.run_dir.join(format!("g{}.ttrpc", self.last_gate));
        let cfg = fs::read_to_string(self.config()).map_err(|e| format!("read config: {e}"))?;
        let from = format!(
            "address = \"{}\"",
            self.run_dir.join("c.sock.ttrpc").display()
        );
        if !cfg.contains(&from) {
            return Err(format!("no `{from}` in {}", self.config().display()));
        }
        let cfg = cfg.replace(&from, &format!("address = \"{}\"", gated.display()));
        // named so that containerd.sh still recognises it (--config <run dir>/config.toml...)
        let gcfg = PathBuf::from(format!("{}.gated", self.config().display()));
        fs::write(&gcfg, cfg).map_err(|e| format!("write {}: {e}", gcfg.display()))?;
        for p in &self.ttrpc_paths {
            let _ = fs::remove_file(p);
        }
        let _ = fs::remove_file(&gated);
        let script = r#"export PATH="$1/bin:$PATH"; echo "---- $(date -u +%FT%TZ) soak restart" >>"$1/containerd.log"; setsid containerd --config "$2" </dev/null >>"$1/containerd.log" 2>&1 & echo $! >"$1/containerd.pid""#;
        let st = Command::new("timeout")
            .args(["-k", "2", "10", "bash", "-c", script, "bash"])
            .arg(&self.run_dir)
            .arg(&gcfg)
            .status()
            .map_err(|e| format!("spawn containerd: {e}"))?;
        if !st.success() {
            return Err(format!("spawning containerd: {st}"));
        }
        Ok(gated)
    }

    /// Links every ttrpc path shims may use to `gated`: event delivery resumes.
    pub fn open_gate(&mut self, gated: &Path) {
        for p in &self.ttrpc_paths {
            let _ = fs::remove_file(p);
            let _ = std::os::unix::fs::symlink(gated, p);
        }
        self.ttrpc_paths.push(gated.to_path_buf());
    }

    /// Makes sure every ttrpc path leads somewhere (cleanup after an interrupted restart).
    pub fn repair_gate(&mut self) {
        if let Some(last) = self.ttrpc_paths.last().cloned() {
            if last.exists() {
                let paths = self.ttrpc_paths.clone();
                for p in paths.iter().filter(|p| **p != last) {
                    if fs::symlink_metadata(p).is_err() {
                        let _ = std::os::unix::fs::symlink(&last, p);
                    }
                }
            }
        }
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

/// Whether `cmd` names container `id` (as a word, a bundle path component or runsc's
/// `<id>_sandbox:` state name).
fn mentions(cmd: &str, id: &str) -> bool {
    cmd.split(|c: char| c.is_whitespace() || c == '/' || c == '=' || c == ':')
        .any(|w| w == id || w.strip_suffix("_sandbox") == Some(id))
}

fn short(s: &str) -> String {
    let mut s = s.to_string();
    if s.len() > 200 {
        s.truncate(200);
        s.push('…');
    }
    s
}

pub fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// fd count and RSS (KiB) of a process.
pub fn fds_rss(pid: i32) -> Option<(usize, u64)> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let st = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = st
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some((fds, rss))
}

/// Whether a process has a handler for `sig` installed (SigCgt in /proc/<pid>/status).
pub fn catches(pid: u32, sig: i32) -> bool {
    signal_mask(pid, "SigCgt:").is_some_and(|m| m & (1u64 << (sig - 1)) != 0)
}

/// Whether a process ignores `sig` (SigIgn).
pub fn ignores(pid: u32, sig: i32) -> bool {
    signal_mask(pid, "SigIgn:").is_some_and(|m| m & (1u64 << (sig - 1)) != 0)
}

fn signal_mask(pid: u32, key: &str) -> Option<u64> {
    let st = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let v = st.lines().find_map(|l| l.strip_prefix(key))?;
    u64::from_str_radix(v.trim(), 16).ok()
}

// ---------------------------------------------------------------------------------------
// The fault-injecting runtime (integration/fault-runtime.sh)
// ---------------------------------------------------------------------------------------

/// A wrapper generated by `integration/fault-runtime.sh make` into a directory of its
/// own: the real runc (or runsc) except on the verb it is told to hang on.
pub struct Fault {
    pub dir: PathBuf,
    pub wrapper: PathBuf,
}

impl Fault {
    pub fn new(dir: &Path, runtime: Runtime) -> Result<Fault, String> {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let script = repo_dir().join("integration/fault-runtime.sh");
        let out = Command::new("timeout")
            .args(["-k", "2", "20", "bash"])
            .arg(&script)
            .arg("make")
            .arg(dir)
            .output()
            .map_err(|e| format!("run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "fault-runtime.sh make: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let wrapper = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if runtime == Runtime::Runsc {
            // the same wrapper around runsc: its global flags are all --key=value
            let runsc = which("runsc").ok_or("runsc is not installed")?;
            let t = fs::read_to_string(&wrapper).map_err(|e| e.to_string())?;
            let t: String = t
                .lines()
                .map(|l| {
                    if l.starts_with("REAL='") {
                        format!("REAL='{}'", runsc.display())
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            fs::write(&wrapper, t + "\n").map_err(|e| e.to_string())?;
        }
        Ok(Fault {
            dir: dir.into(),
            wrapper,
        })
    }

    /// From now on hang on `verb` ("none": never).
    pub fn hang(&self, verb: &str) {
        let tmp = self.dir.join("hang.tmp");
        let _ = fs::write(&tmp, format!("{verb}\n"));
        let _ = fs::rename(&tmp, self.dir.join("hang"));
    }

    /// Live processes of the wrapper (pid, cmdline).
    pub fn alive(&self) -> Vec<(i32, String)> {
        let d = self.dir.display().to_string();
        let hang = format!("fault-runtime-hang:{d} ");
        let child = format!("fault-runtime-child:{d} ");
        let script = format!(" {d}/runc ");
        all_pids()
            .into_iter()
            .filter_map(|pid| {
                let c = cmdline(pid);
                let ours = c.starts_with(&hang)
                    || c.starts_with(&child)
                    || (format!("{c} ").contains(&script)
                        && c.split(' ').next().is_some_and(|a| a.ends_with("bash")));
                (ours && pid_alive(pid)).then_some((pid, c))
            })
            .collect()
    }

    /// Whether a call of `verb` hung (the fault was really injected).
    pub fn hung_on(&self, verb: &str) -> bool {
        fs::read_to_string(self.dir.join("hung"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some(verb))
    }

    /// Hang on nothing, SIGKILL whatever of the wrapper still runs; what was killed.
    pub fn release(&self) -> Vec<(i32, String)> {
        self.hang("none");
        let alive = self.alive();
        for (pid, _) in &alive {
            // SAFETY: kill(2) of a pid whose command line names our wrapper's directory
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        if !alive.is_empty() {
            poll_quiet(Duration::from_secs(3), || self.alive().is_empty());
        }
        alive
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        self.release();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
        .and_then(|p| fs::canonicalize(p).ok())
}

/// A host process holding a directory busy (its cwd), killed and reaped on drop.
pub struct Holder(pub std::process::Child);

impl Holder {
    pub fn new(dir: &Path) -> Result<Holder, String> {
        Command::new("sleep")
            .arg("300")
            .current_dir(dir)
            .spawn()
            .map(Holder)
            .map_err(|e| format!("spawn a holder in {}: {e}", dir.display()))
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
