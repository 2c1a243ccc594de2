//! The soak's state and its bounded, timed operations on containers and tasks.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use robust_integration::containerd_client::types::Mount;
use robust_integration::tonic::transport::Channel;
use robust_integration::tonic::{Code, Status};
use robust_integration::{serde_json, Shim};

use crate::client::{self, CSpec};
use crate::events::Events;
use crate::host::{Host, Runtime};
use crate::report::{Report, Violation};

pub const SEC: Duration = Duration::from_secs(1);
/// How long past its bound an RPC may run before it is abandoned as hung.
pub const HARD_EXTRA: Duration = Duration::from_secs(6);
/// The deadline the fault TOML gives the hung verb, and what an RPC may take past it.
pub const HUNG_DEADLINE: Duration = Duration::from_secs(2);
pub const HUNG_MARGIN: Duration = Duration::from_secs(2);

/// What must happen to one process's /tasks/exit.
#[derive(Clone, Debug)]
pub struct Expect {
    pub cycle: u64,
    pub fault: String,
    pub cid: String,
    /// the exec id, or the container id for the init
    pub id: String,
    /// started: exactly one exit; not started (failed create/exec, hung start): at most one
    pub started: bool,
    /// the exit status it must carry, when the workload decides it
    pub status: Option<u32>,
    /// OOM-killed: exactly one /tasks/oom before the exit
    pub oom: bool,
    pub checked: bool,
    /// how many exits were seen when it was checked
    pub seen: usize,
}

/// How an RPC went wrong.
#[derive(Debug)]
pub enum Fail {
    Status(Status),
    Hung,
}

impl Fail {
    pub fn code(&self) -> Option<Code> {
        match self {
            Fail::Status(s) => Some(s.code()),
            Fail::Hung => None,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Fail::Status(s) => format!("{:?}: {}", s.code(), s.message()),
            Fail::Hung => "no answer (abandoned)".into(),
        }
    }
    pub fn not_found(&self) -> bool {
        self.code() == Some(Code::NotFound)
    }
}

pub struct Pod {
    pub id: String,
    pub pid: u32,
    pub shim: i32,
}

/// The bystanders (issue 12): a long-lived solo container and a host process in a
/// cgroup next to the containers' (`/<ns>/s<seed>-byst-host-<pid>`); no cycle may touch
/// them. Fields drop in order: the host process goes before its cgroup.
pub struct Bystanders {
    pub id: String,
    pub pid: u32,
    pub start: u64,
    pub host: robust_integration::HostProcess,
    pub cgroup: robust_integration::CgroupTree,
}

pub struct Ctx {
    pub shim: Shim,
    pub runtime: Runtime,
    pub seed: u64,
    pub host: Host,
    pub rt: tokio::runtime::Runtime,
    pub ch: Channel,
    pub events: Events,
    pub report: Report,
    pub base_spec: serde_json::Value,
    pub chain: String,
    pub image: String,
    pub cycle: u64,
    pub fault: String,
    pub pod: Option<Pod>,
    pub bystanders: Option<Bystanders>,
    /// containers (records) that exist now: the pod and the cycle's
    pub live: HashSet<String>,
    pub expects: Vec<Expect>,
    /// the runsc TOML (runsc_config) for our shim on runsc
    pub runsc_toml: PathBuf,
    /// leftovers already reported (not reported again every cycle)
    pub reported: HashSet<String>,
    pub verbose: bool,
    /// a label for the RPCs made under a fault (`Tasks.Start [runtime hung]`), so the
    /// timing table keeps them apart
    pub tag: &'static str,
}

impl Ctx {
    pub fn ns(&self) -> String {
        self.host.ns.clone()
    }

    pub fn violation(&mut self, kind: &'static str, cid: &str, what: impl Into<String>) {
        let v = Violation {
            kind,
            cycle: self.cycle,
            fault: self.fault.clone(),
            container: cid.to_string(),
            what: what.into(),
        };
        eprintln!(
            "VIOLATION [{}] cycle={} seed={} fault={} container={}: {}",
            v.kind, v.cycle, self.seed, v.fault, v.container, v.what
        );
        self.report.violations.push(v);
    }

    pub fn log(&self, m: impl AsRef<str>) {
        if self.verbose {
            eprintln!("  [cycle {}] {}", self.cycle, m.as_ref());
        }
    }

    /// A container id of this cycle: `s<seed>-<cycle>-<tag>`.
    pub fn id(&self, tag: &str) -> String {
        format!("s{}-{}-{tag}", self.seed, self.cycle)
    }

    /// The bound of an RPC kind: the shim's deadline for the verb it makes the runtime run
    /// (docs/bounds.md; runsc's create/start deadlines are raised in runsc.toml) + 2 s.
    pub fn bound(&self, kind: &str) -> Duration {
        let runsc = self.runtime == Runtime::Runsc;
        let s = match kind {
            "Tasks.Create" => {
                if runsc {
                    62
                } else {
                    32
                }
            }
            "Tasks.Start" | "Tasks.Start(exec)" => 32,
            "Tasks.Kill" | "Tasks.Delete" | "Tasks.DeleteProcess" => 12,
            "Tasks.Get" | "Tasks.List" => 7,
            "Containers.Create" | "Containers.Delete" | "Containers.List" => 5,
            _ => 10,
        };
        Duration::from_secs(s)
    }

    /// Runs one RPC within `bound` (+ [`HARD_EXTRA`] before it is abandoned), timed under
    /// `kind`; a late or abandoned RPC is a violation.
    pub fn rpc<T, F>(&mut self, kind: &str, cid: &str, bound: Duration, fut: F) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, Status>>,
    {
        let hard = bound + HARD_EXTRA;
        let t = Instant::now();
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(hard, fut).await });
        let took = t.elapsed();
        let kind = &if self.tag.is_empty() {
            kind.to_string()
        } else {
            format!("{kind} [{}]", self.tag)
        };
        self.report.rpc(kind, took);
        match r {
            Err(_) => {
                self.violation(
                    "rpc-hung",
                    cid,
                    format!("{kind}: no answer within {hard:?} (bound {bound:?}); abandoned"),
                );
                Err(Fail::Hung)
            }
            Ok(res) => {
                if took > bound {
                    let how = match &res {
                        Ok(_) => "ok".to_string(),
                        Err(s) => format!("{:?} {}", s.code(), s.message()),
                    };
                    self.violation(
                        "rpc-slow",
                        cid,
                        format!("{kind} took {took:.2?}, bound {bound:?} ({how})"),
                    );
                }
                res.map_err(Fail::Status)
            }
        }
    }

    /// An RPC that must succeed: a failure is an `rpc-failed` violation.
    pub fn must<T>(&mut self, kind: &str, cid: &str, r: Result<T, Fail>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(Fail::Hung) => None, // already a violation
            Err(f) => {
                self.violation("rpc-failed", cid, format!("{kind}: {}", f.describe()));
                None
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // containers
    // -----------------------------------------------------------------------------------

    /// The default options of a container of this run (our shim on runsc: runsc.toml).
    pub fn default_options(&self) -> Option<robust_integration::prost_types::Any> {
        match (self.shim, self.runtime) {
            (Shim::Robust, Runtime::Runsc) => Some(client::robust_options(&self.runsc_toml)),
            _ => None,
        }
    }

    /// Containers.Create + Snapshots.Prepare: the rootfs mounts.
    pub fn make(&mut self, c: &CSpec) -> Option<Vec<Mount>> {
        let ns = self.ns();
        let spec = client::spec_json(&self.base_spec, &ns, c);
        let fut = client::create_container(
            self.ch.clone(),
            ns,
            self.image.clone(),
            self.shim.runtime().into(),
            self.chain.clone(),
            spec,
            c.clone(),
        );
        self.live.insert(c.id.clone());
        let r = self.rpc(
            "Containers.Create",
            &c.id,
            self.bound("Snapshots.Prepare"),
            fut,
        );
        self.must("Containers.Create+Snapshots.Prepare", &c.id, r)
    }

    pub fn create_task(
        &mut self,
        id: &str,
        mounts: Vec<Mount>,
        bound: Duration,
    ) -> Result<u32, Fail> {
        let fut = client::task_create(self.ch.clone(), self.ns(), id.into(), mounts);
        self.rpc("Tasks.Create", id, bound, fut)
    }

    /// Tasks.Start of the init; registers its exit expectation.
    pub fn start(&mut self, id: &str, bound: Duration) -> Result<u32, Fail> {
        let fut = client::task_start(self.ch.clone(), self.ns(), id.into(), String::new());
        let r = self.rpc("Tasks.Start", id, bound, fut);
        self.expect(id, id, r.is_ok(), None);
        r
    }

    /// Records what must happen to the exit of process `pid_id` of `cid` (the latest
    /// call for a process wins).
    pub fn expect(&mut self, cid: &str, pid_id: &str, started: bool, status: Option<u32>) {
        if let Some(e) = self
            .expects
            .iter_mut()
            .find(|e| e.cid == cid && e.id == pid_id)
        {
            e.started |= started;
            if status.is_some() {
                e.status = status;
            }
            return;
        }
        self.expects.push(Expect {
            cycle: self.cycle,
            fault: self.fault.clone(),
            cid: cid.into(),
            id: pid_id.into(),
            started,
            status,
            oom: false,
            checked: false,
            seen: 0,
        });
    }

    pub fn expect_status(&mut self, cid: &str, pid_id: &str, status: u32) {
        self.expect(cid, pid_id, false, Some(status));
    }

    /// Make, create and start a container: its init pid.
    pub fn run(&mut self, c: &CSpec) -> Option<u32> {
        let mounts = self.make(c)?;
        let r = self.create_task(&c.id, mounts, self.bound("Tasks.Create"));
        self.must("Tasks.Create", &c.id, r)?;
        let r = self.start(&c.id, self.bound("Tasks.Start"));
        self.must("Tasks.Start", &c.id, r)
    }

    /// Tasks.Exec + Tasks.Start of an exec; its pid, or the failure of its start.
    pub fn exec(&mut self, id: &str, exec: &str, args: &[String]) -> Result<u32, Fail> {
        self.exec_in(id, exec, args, "/")
    }

    /// [`Ctx::exec`] with a working directory.
    pub fn exec_in(
        &mut self,
        id: &str,
        exec: &str,
        args: &[String],
        cwd: &str,
    ) -> Result<u32, Fail> {
        let fut = client::task_exec(
            self.ch.clone(),
            self.ns(),
            id.into(),
            exec.into(),
            args.to_vec(),
            cwd.into(),
        );
        let r = self.rpc("Tasks.Exec", id, self.bound("Tasks.Exec"), fut);
        if let Err(f) = r {
            self.expect(id, exec, false, None);
            return Err(f);
        }
        let fut = client::task_start(self.ch.clone(), self.ns(), id.into(), exec.into());
        let r = self.rpc(
            "Tasks.Start(exec)",
            id,
            self.bound("Tasks.Start(exec)"),
            fut,
        );
        self.expect(id, exec, r.is_ok(), None);
        r
    }

    pub fn kill(&mut self, id: &str, exec: &str, sig: i32, all: bool) -> Result<(), Fail> {
        let fut = client::task_kill(
            self.ch.clone(),
            self.ns(),
            id.into(),
            exec.into(),
            sig as u32,
            all,
        );
        self.rpc("Tasks.Kill", id, self.bound("Tasks.Kill"), fut)
    }

    /// Tasks.Wait, bounded by `within`: the exit status, None (and a violation) when the
    /// process did not exit in time or Wait failed.
    pub fn wait(&mut self, id: &str, exec: &str, within: Duration) -> Option<u32> {
        let fut = client::task_wait(self.ch.clone(), self.ns(), id.into(), exec.into());
        let t = Instant::now();
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(within, fut).await });
        self.report.rpc("Tasks.Wait (to the exit)", t.elapsed());
        let what = if exec.is_empty() { id } else { exec };
        match r {
            Ok(Ok(s)) => Some(s),
            Ok(Err(s)) => {
                self.violation(
                    "rpc-failed",
                    id,
                    format!("Tasks.Wait({what}): {:?}: {}", s.code(), s.message()),
                );
                None
            }
            Err(_) => {
                self.violation(
                    "behaviour",
                    id,
                    format!("process {what} did not exit within {within:?} (Tasks.Wait)"),
                );
                None
            }
        }
    }

    /// Waits for an exit whose status the workload decides, and checks it.
    pub fn wait_status(&mut self, id: &str, exec: &str, within: Duration, want: u32) -> bool {
        let pid_id = if exec.is_empty() { id } else { exec };
        self.expect_status(id, pid_id, want);
        match self.wait(id, exec, within) {
            Some(s) if s == want => true,
            Some(s) => {
                self.violation(
                    "exit-status",
                    id,
                    format!("Tasks.Wait({pid_id}) gave {s}, the workload exits {want}"),
                );
                false
            }
            None => false,
        }
    }

    pub fn delete_task(&mut self, id: &str, bound: Duration) -> Result<u32, Fail> {
        let fut = client::task_delete(self.ch.clone(), self.ns(), id.into());
        self.rpc("Tasks.Delete", id, bound, fut)
    }

    pub fn delete_process(&mut self, id: &str, exec: &str) -> Result<u32, Fail> {
        let fut = client::task_delete_process(self.ch.clone(), self.ns(), id.into(), exec.into());
        self.rpc(
            "Tasks.DeleteProcess",
            id,
            self.bound("Tasks.DeleteProcess"),
            fut,
        )
    }

    pub fn get(&mut self, id: &str, exec: &str) -> Result<(u32, i32, u32), Fail> {
        let fut = client::task_get(self.ch.clone(), self.ns(), id.into(), exec.into());
        self.rpc("Tasks.Get", id, self.bound("Tasks.Get"), fut)
    }

    /// Containers.Delete + Snapshots.Remove; the container is no longer live.
    pub fn remove(&mut self, id: &str) {
        let fut = client::delete_container(self.ch.clone(), self.ns(), id.into());
        let r = self.rpc(
            "Containers.Delete",
            id,
            self.bound("Containers.Delete"),
            fut,
        );
        if let Err(f) = r {
            if !f.not_found() {
                self.must::<()>("Containers.Delete", id, Err(f));
            }
        }
        let fut = client::remove_snapshot(self.ch.clone(), self.ns(), id.into());
        let r = self.rpc("Snapshots.Remove", id, self.bound("Snapshots.Remove"), fut);
        if let Err(f) = r {
            if !f.not_found() {
                self.must::<()>("Snapshots.Remove", id, Err(f));
            }
        }
        self.live.remove(id);
    }

    /// The normal end of a running container: SIGKILL, Wait, Delete, remove.
    pub fn finish(&mut self, id: &str) {
        let r = self.kill(id, "", libc::SIGKILL, false);
        if self.must("Tasks.Kill(SIGKILL)", id, r).is_some() {
            self.wait_status(id, "", 5 * SEC, 137);
        }
        let r = self.delete_task(id, self.bound("Tasks.Delete"));
        self.must("Tasks.Delete", id, r);
        self.remove(id);
    }

    /// Best-effort removal of whatever is left of a container (no violations: the
    /// checks afterwards say what could not be removed).
    pub fn force_remove(&mut self, id: &str) {
        let quick = 15 * SEC;
        for _ in 0..3 {
            let ns = self.ns();
            let ch = self.ch.clone();
            let idc = id.to_string();
            let r = self.rt.block_on(async {
                tokio::time::timeout(quick, async {
                    let _ = client::task_kill(
                        ch.clone(),
                        ns.clone(),
                        idc.clone(),
                        String::new(),
                        9,
                        true,
                    )
                    .await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    client::task_delete(ch.clone(), ns.clone(), idc.clone()).await
                })
                .await
            });
            match r {
                Ok(Ok(_)) => break,
                Ok(Err(s)) if s.code() == Code::NotFound => break,
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
        let ns = self.ns();
        let ch = self.ch.clone();
        let idc = id.to_string();
        let _ = self.rt.block_on(async {
            tokio::time::timeout(quick, async {
                let _ = client::delete_container(ch.clone(), ns.clone(), idc.clone()).await;
                client::remove_snapshot(ch, ns, idc).await
            })
            .await
        });
        self.live.remove(id);
    }

    /// A new channel to containerd (after a restart), polled for `limit`.
    pub fn reconnect(&mut self, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        let addr = self.host.address.clone();
        loop {
            let r = self
                .rt
                .block_on(client::connect(&addr, Duration::from_secs(2)));
            match r {
                Ok(ch) => {
                    self.ch = ch;
                    return Ok(());
                }
                Err(e) if Instant::now() >= end => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Subscribes to events again; a failure is a harness violation.
    pub fn resubscribe(&mut self) -> bool {
        let ns = self.ns();
        let ch = self.ch.clone();
        match self.events.subscribe(&self.rt, ch, &ns, 20 * SEC) {
            Ok(()) => true,
            Err(e) => {
                self.violation("harness", "-", format!("event subscription: {e}"));
                false
            }
        }
    }
}
