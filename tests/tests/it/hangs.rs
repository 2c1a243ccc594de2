//! Issue 3 (F2): a runtime that hangs on one verb.
//!
//! Every case runs the REAL runc through the fault-injecting wrapper of
//! `integration/fault-runtime.sh`, generated into a directory of its own, which hangs (deaf
//! to SIGTERM, with a child in its process group) on the one verb named in its control
//! file. Two containers share one shim: a peer B with the plain runtime and the victim A
//! (grouped with B by the `io.kubernetes.cri.sandbox-id` annotation) whose runtime is the
//! wrapper. With the victim's runtime hanging on VERB, the containerd operation that makes
//! the shim call VERB must:
//! - come back within the verb's deadline (3 s here) + [`MARGIN`], as DeadlineExceeded,
//!   with a message naming the verb, the container and the deadline;
//! - not stop the shim from answering other calls while it is in flight (State of A,
//!   Pids of B, `ctr task ls`);
//! - leave no process of the wrapper (the shim killed its process group);
//! - leave the container usable (the operation works once the runtime answers again) and
//!   deletable without leaving anything behind: no mount, no runc state, no process.
//!
//! The `::reference` twins run the same scenario against containerd-shim-runc-v2 (runc
//! Options BinaryName = the wrapper) and only record what it does (docs/bounds.md); they
//! assert nothing about it. Every outcome of both is appended to
//! `<run dir>/bounds-results.txt` (one line each) for that document.
//!
//! The helpers at the top are shared with `reaping.rs`.

use super::*;

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest,
    ExecProcessRequest, GetImageRequest, GetRequest, KillRequest, ListPidsRequest,
    PauseTaskRequest, ReadContentRequest, ResumeTaskRequest, StartRequest, UpdateTaskRequest,
    WaitRequest,
};
use containerd_client::types::Mount;
use prost::Message;
use tonic::transport::Channel;
use tonic::Code;

pub const SEC: Duration = Duration::from_secs(1);
/// containerd namespace of the reference runs: a hung call of the reference shim makes
/// containerd's task listing of its namespace wait (2 s per hung task), which must not
/// slow down the cases of our shim running at the same time in `default`.
pub const REF_NS: &str = "reference";
/// The deadline given to the hung verb in the victim's TOML.
pub const HUNG_DEADLINE: Duration = Duration::from_secs(3);
/// What an RPC may take past the deadline that fired (containerd, ttrpc, killing and
/// reaping the runtime's process group, the cleanup that follows a failed create).
pub const MARGIN: Duration = Duration::from_millis(1500);
/// How long the reference shim is given before it is recorded as hung.
pub const REF_BOUND: Duration = Duration::from_secs(8);

const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RESOURCES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd.v1.types.Status
pub fn status_name(s: i32) -> &'static str {
    match s {
        1 => "CREATED",
        2 => "RUNNING",
        3 => "STOPPED",
        4 => "PAUSED",
        5 => "PAUSING",
        _ => "UNKNOWN",
    }
}

// ---------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------

thread_local! {
    static CUR_NS: std::cell::Cell<&'static str> = const { std::cell::Cell::new(NS) };
}

/// The containerd namespace of the current case (see [`use_ns_of`]).
pub fn ns() -> &'static str {
    CUR_NS.with(|c| c.get())
}

/// Makes the current case (thread) work in its shim's namespace: `default` for ours,
/// [`REF_NS`] (with the test image imported into it) for the reference.
pub fn use_ns_of(shim: Shim) -> &'static str {
    let n = match shim {
        Shim::Robust => NS,
        Shim::Reference => {
            ensure_ref_ns();
            REF_NS
        }
    };
    CUR_NS.with(|c| c.set(n));
    n
}

fn ensure_ref_ns() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let image = env().image.clone();
        let ls = ctr(REF_NS, &["images", "ls", "-q"]).run();
        if ls.succeeded() && ls.stdout.lines().any(|l| l.trim() == image) {
            return;
        }
        let dir = std::env::var("ROBUST_IT_IMAGES_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_dir().join(".work/images"));
        let tar = dir.join("busybox.tar");
        ctr(
            REF_NS,
            &[
                "images",
                "import",
                "--snapshotter",
                "overlayfs",
                &tar.display().to_string(),
            ],
        )
        .timeout(60 * SEC)
        .run()
        .ok();
    });
}

// ---------------------------------------------------------------------------------------
// Scratch directories, shim configs, results
// ---------------------------------------------------------------------------------------

/// The repository (for integration/fault-runtime.sh).
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A directory under the temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(id: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("rfault-{id}"));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        TempDir(d)
    }
    /// Writes a shim TOML: `[runtime] binary` (when given) and `[timeouts]`.
    pub fn toml(&self, binary: Option<&Path>, timeouts: &[(&str, &str)]) -> PathBuf {
        let mut t = String::new();
        if let Some(b) = binary {
            t.push_str(&format!("[runtime]\nbinary = \"{}\"\n", b.display()));
        }
        t.push_str("[timeouts]\n");
        for (k, v) in timeouts {
            t.push_str(&format!("{k} = \"{v}\"\n"));
        }
        let p = self.0.join("robust.toml");
        fs::write(&p, t).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Appends one outcome to `<run dir>/bounds-results.txt` and to stderr:
/// `case | shim | what`.
pub fn record(case: &str, shim: Shim, what: &str) {
    let line = format!("{case} | {} | {what}", shim.label());
    eprintln!("RESULT {line}");
    let p = env().run_dir.join("bounds-results.txt");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(p) {
        let _ = writeln!(f, "{line}");
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// The fault-injecting runtime
// ---------------------------------------------------------------------------------------

/// A wrapper generated by `integration/fault-runtime.sh make` into a directory of its own.
/// On drop: hangs on nothing, SIGKILLs whatever of it still runs, removes the directory.
pub struct Fault {
    pub dir: TempDir,
    pub wrapper: PathBuf,
}

impl Fault {
    pub fn new(id: &str) -> Fault {
        let dir = TempDir::new(id);
        let script = repo_dir().join("integration/fault-runtime.sh");
        let out = Command::new("timeout")
            .args(["-k", "2", "20", "bash"])
            .arg(&script)
            .arg("make")
            .arg(&dir.0)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} make {} failed: {}",
            script.display(),
            dir.0.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let wrapper = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(wrapper.is_file(), "no wrapper at {}", wrapper.display());
        Fault { dir, wrapper }
    }

    pub fn path(&self) -> &Path {
        &self.dir.0
    }

    /// From now on hang on `verb` ("none": never).
    pub fn hang(&self, verb: &str) {
        let tmp = self.path().join("hang.tmp");
        fs::write(&tmp, format!("{verb}\n")).expect("write hang.tmp");
        fs::rename(&tmp, self.path().join("hang")).expect("rename hang");
    }

    /// From now on answer `verb` with success at once, without calling runc (a runtime
    /// whose `kill` does not take effect).
    pub fn noop(&self, verb: &str) {
        self.hang(&format!("{verb} noop"));
    }

    /// How many calls were answered by [`Fault::noop`].
    pub fn noops(&self) -> usize {
        fs::read_to_string(self.path().join("noops"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// The verbs the wrapper was called with, in order.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect()
    }

    /// `(wrapper pid, child pid, verb)` of every call that hung.
    pub fn hung(&self) -> Vec<(i32, i32, String)> {
        fs::read_to_string(self.path().join("hung"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() != 3 {
                    return None;
                }
                Some((f[0].parse().ok()?, f[1].parse().ok()?, f[2].to_string()))
            })
            .collect()
    }

    /// Live processes of this wrapper: calls still in the wrapper script, hung calls and
    /// their children (`pid: cmdline`).
    pub fn alive(&self) -> Vec<String> {
        let d = self.path().display().to_string();
        let hang = format!("fault-runtime-hang:{d} ");
        let child = format!("fault-runtime-child:{d} ");
        let script = format!(" {d}/runc ");
        let mut v = Vec::new();
        for pid in all_pids() {
            let c = cmdline(pid);
            let ours = c.starts_with(&hang)
                || c.starts_with(&child)
                || (c.contains(&script)
                    && c.split(' ').next().is_some_and(|a| a.ends_with("bash")));
            if ours && pid_alive(pid) {
                v.push(format!("{pid}: {c}"));
            }
        }
        v
    }

    /// Waits until a call of `verb` hangs; returns its wrapper pid.
    pub fn wait_hung(&self, verb: &str, limit: Duration) -> i32 {
        poll_until(&format!("the wrapper to hang on `{verb}`"), limit, || {
            self.hung()
                .into_iter()
                .find(|(p, _, v)| v == verb && pid_alive(*p))
                .map(|(p, _, _)| p)
        })
    }

    /// Hangs on nothing from now on and SIGKILLs every live process of the wrapper.
    /// Never panics (it runs in drop guards).
    pub fn release(&self) -> Vec<String> {
        let _ = fs::write(self.path().join("hang"), "none\n");
        let alive = self.alive();
        for a in &alive {
            if let Some(pid) = a.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                // SAFETY: plain kill(2) of a pid whose command line names our directory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        alive
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        let killed = self.release();
        if !killed.is_empty() {
            eprintln!(
                "fault runtime {}: killed leftovers: {killed:?}",
                self.path().display()
            );
            poll_quiet(3 * SEC, || self.alive().is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------
// /proc helpers
// ---------------------------------------------------------------------------------------

/// `(pid, state, cmdline)` of every process below `root` (children, grandchildren, ...).
pub fn descendants(root: i32) -> Vec<(i32, char, String)> {
    let mut kids: HashMap<i32, Vec<(i32, char)>> = HashMap::new();
    for pid in all_pids() {
        if let Some((st, ppid, _)) = proc_stat(pid) {
            kids.entry(ppid).or_default().push((pid, st));
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for (c, st) in kids.get(&p).cloned().unwrap_or_default() {
            out.push((c, st, cmdline(c)));
            stack.push(c);
        }
    }
    out
}

/// Zombies below `root`, described with their parent.
pub fn zombies_under(root: i32) -> Vec<String> {
    descendants(root)
        .into_iter()
        .filter(|(_, st, _)| *st == 'Z')
        .map(|(p, _, _)| {
            let (ppid, comm) = proc_stat(p)
                .map(|(_, pp, c)| (pp, c))
                .unwrap_or((0, String::new()));
            format!("zombie {p} ({comm}) of {ppid}")
        })
        .collect()
}

/// Open fds of a process.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The shim daemon serving a task (the process holding the socket of its `address`).
pub fn shim_pid(id: &str) -> i32 {
    let addr = shim_address(ns(), id).unwrap_or_else(|| panic!("no address file for {id}"));
    let holders = socket_holders(&addr);
    assert_eq!(
        holders.len(),
        1,
        "processes serving {addr} (task {id}): {holders:?}"
    );
    holders[0]
}

/// The pids in the container's cgroup (`cgroupsPath` /default/<id>), None when the
/// cgroup does not exist.
pub fn cgroup_procs(id: &str) -> Option<Vec<i32>> {
    for base in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup",
    ] {
        let p = format!("{base}/{}/{id}/cgroup.procs", ns());
        if let Ok(t) = fs::read_to_string(&p) {
            return Some(t.lines().filter_map(|l| l.trim().parse().ok()).collect());
        }
    }
    None
}

/// Mount points at or below `dir` (in the test's mount namespace, the host's).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect()
}

/// runc's state dir of a container in the default root.
pub fn runc_state_dir(id: &str) -> PathBuf {
    Path::new("/run/containerd/runc").join(ns()).join(id)
}

/// Everything a deleted container could leave behind: mounts under its bundle, the
/// bundle, runc's state, live processes among `pids`, a non-empty cgroup.
pub fn leftovers(id: &str, pids: &[i32]) -> Vec<String> {
    let mut v = Vec::new();
    let b = bundle_dir(ns(), id);
    for m in mounts_under(&b) {
        v.push(format!("mount {m}"));
    }
    if b.exists() {
        v.push(format!("bundle dir {}", b.display()));
    }
    let r = runc_state_dir(id);
    if r.exists() {
        v.push(format!("runc state {}", r.display()));
    }
    for p in pids {
        if *p > 0 && pid_alive(*p) {
            v.push(format!("process {p} ({}) alive", cmdline(*p)));
        }
    }
    if let Some(procs) = cgroup_procs(id) {
        if !procs.is_empty() {
            v.push(format!("cgroup /{}/{id} holds {procs:?}", ns()));
        }
    }
    v
}

/// [`leftovers`] of every id, polled until empty for `limit`; what is still there.
pub fn wait_nothing_left(ids: &[(&str, Vec<i32>)], limit: Duration) -> Vec<String> {
    let mut last = Vec::new();
    poll_quiet(limit, || {
        last = ids
            .iter()
            .flat_map(|(id, pids)| {
                leftovers(id, pids)
                    .into_iter()
                    .map(move |l| format!("{id}: {l}"))
            })
            .collect();
        last.is_empty()
    });
    last
}

/// Is a task listed by `ctr task ls`, and how (None: not listed). Never panics.
pub fn task_ls_status(id: &str) -> Result<Option<String>, String> {
    let out = ctr(ns(), &["task", "ls"]).timeout(10 * SEC).run_unclamped();
    if !out.succeeded() {
        return Err(format!("ctr task ls: {:?} {}", out.code, out.stderr.trim()));
    }
    Ok(out.stdout.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && f[0] == id).then(|| f[2].to_string())
    }))
}

// ---------------------------------------------------------------------------------------
// Containers and tasks through the containerd API
// ---------------------------------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
struct RuntimeOptionsPb {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(string, tag = "2")]
    config_path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptionsPb {
    #[prost(string, tag = "6")]
    binary_name: String,
}

/// Runtime options for our shim: `runtimeoptions.v1.Options{ConfigPath}` (what ctr's
/// `--runtime-config-path` and CRI send).
pub fn robust_options(config: &Path) -> prost_types::Any {
    prost_types::Any {
        type_url: "runtimeoptions.v1.Options".into(),
        value: RuntimeOptionsPb {
            type_url: String::new(),
            config_path: config.display().to_string(),
        }
        .encode_to_vec(),
    }
}

/// Runtime options for the reference shim: runc `Options{BinaryName}` (what ctr's
/// `--runc-binary` sends).
pub fn reference_options(binary: &Path) -> prost_types::Any {
    prost_types::Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: RuncOptionsPb {
            binary_name: binary.display().to_string(),
        }
        .encode_to_vec(),
    }
}

/// How a container is made.
pub struct Ct<'a> {
    pub id: &'a str,
    pub args: &'a [&'a str],
    pub options: Option<prost_types::Any>,
    /// Share the shim of this container (the sandbox-id annotation).
    pub group: Option<&'a str>,
    /// Run in the host's pid namespace.
    pub host_pid: bool,
}

fn base_spec() -> serde_json::Value {
    static SPEC: OnceLock<String> = OnceLock::new();
    let s = SPEC.get_or_init(|| {
        let out = ctr(ns(), &["oci", "spec"]).run().ok();
        out.stdout
    });
    serde_json::from_str(s).expect("ctr oci spec json")
}

fn spec_json(c: &Ct) -> Vec<u8> {
    let mut spec = base_spec();
    spec["process"]["args"] = serde_json::json!(c.args);
    spec["process"]["env"] = serde_json::json!([PATH_ENV]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["root"] = serde_json::json!({ "path": "rootfs" });
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{}", ns(), c.id));
    if let Some(g) = c.group {
        spec["annotations"] = serde_json::json!({ SANDBOX_ID: g });
    }
    if c.host_pid {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "pid");
        }
    }
    serde_json::to_vec(&spec).unwrap()
}

fn read_blob(api: &Api, digest: &str) -> Vec<u8> {
    let mut content = api.content();
    api.call("Content.Read", 10 * SEC, async {
        let mut s = content
            .read(req(
                ns(),
                ReadContentRequest {
                    digest: digest.into(),
                    offset: 0,
                    size: 0,
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("Content.Read({digest}): {s}"))
            .into_inner();
        let mut buf = Vec::new();
        while let Some(m) = s
            .message()
            .await
            .unwrap_or_else(|s| panic!("Content.Read({digest}) stream: {s}"))
        {
            buf.extend_from_slice(&m.data);
        }
        buf
    })
}

/// The snapshot the test image's single layer was unpacked as (its chain id).
fn image_chain_id(api: &Api) -> String {
    static CHAIN: OnceLock<String> = OnceLock::new();
    CHAIN
        .get_or_init(|| {
            let name = env().image.clone();
            let img = api
                .call(
                    "Images.Get",
                    10 * SEC,
                    api.images()
                        .get(req(ns(), GetImageRequest { name: name.clone() })),
                )
                .unwrap_or_else(|s| panic!("Images.Get({name}): {s}"))
                .into_inner()
                .image
                .expect("no image");
            let target = img.target.expect("image without target");
            let mut m: serde_json::Value =
                serde_json::from_slice(&read_blob(api, &target.digest)).unwrap();
            if m.get("manifests").is_some() {
                let d = m["manifests"][0]["digest"].as_str().unwrap().to_string();
                m = serde_json::from_slice(&read_blob(api, &d)).unwrap();
            }
            let cfg = m["config"]["digest"].as_str().unwrap().to_string();
            let c: serde_json::Value = serde_json::from_slice(&read_blob(api, &cfg)).unwrap();
            let ids = c["rootfs"]["diff_ids"].as_array().expect("diff_ids");
            assert_eq!(ids.len(), 1, "the test image has one layer");
            ids[0].as_str().unwrap().to_string()
        })
        .clone()
}

/// Creates the container record and its rootfs snapshot; returns the rootfs mounts.
pub fn create_container(api: &Api, shim: Shim, c: &Ct) -> Vec<Mount> {
    let chain = image_chain_id(api);
    api.call(
        "Containers.Create",
        10 * SEC,
        api.containers().create(req(
            ns(),
            CreateContainerRequest {
                container: Some(Container {
                    id: c.id.to_string(),
                    image: env().image.clone(),
                    runtime: Some(Runtime {
                        name: shim.runtime().into(),
                        options: c.options.clone(),
                    }),
                    spec: Some(prost_types::Any {
                        type_url: SPEC_TYPE.into(),
                        value: spec_json(c),
                    }),
                    snapshotter: "overlayfs".into(),
                    snapshot_key: c.id.to_string(),
                    ..Default::default()
                }),
            },
        )),
    )
    .unwrap_or_else(|s| panic!("Containers.Create({}): {s}", c.id));
    api.call(
        "Snapshots.Prepare",
        20 * SEC,
        api.snapshots().prepare(req(
            ns(),
            PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: c.id.to_string(),
                parent: chain,
                labels: Default::default(),
            },
        )),
    )
    .unwrap_or_else(|s| panic!("Snapshots.Prepare({}): {s}", c.id))
    .into_inner()
    .mounts
}

/// A process spec for an exec.
pub fn process_spec(args: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "args": args,
        "env": [PATH_ENV],
        "cwd": "/",
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
    }))
    .unwrap()
}

/// One task operation through the API.
#[derive(Clone, Debug)]
pub enum Op {
    Create(String, Vec<Mount>),
    Start(String, String),
    Kill(String, String, u32, bool),
    Delete(String),
    DeleteProcess(String, String),
    Exec(String, String, Vec<String>),
    Pause(String),
    Resume(String),
    Update(String, serde_json::Value),
    Pids(String),
    Get(String, String),
    Wait(String, String),
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Create(id, _) => format!("Tasks.Create({id})"),
            Op::Start(id, e) => format!("Tasks.Start({id}{})", ex(e)),
            Op::Kill(id, e, s, a) => format!("Tasks.Kill({id}{}, {s}, all={a})", ex(e)),
            Op::Delete(id) => format!("Tasks.Delete({id})"),
            Op::DeleteProcess(id, e) => format!("Tasks.DeleteProcess({id}, {e})"),
            Op::Exec(id, e, _) => format!("Tasks.Exec({id}, {e})"),
            Op::Pause(id) => format!("Tasks.Pause({id})"),
            Op::Resume(id) => format!("Tasks.Resume({id})"),
            Op::Update(id, _) => format!("Tasks.Update({id})"),
            Op::Pids(id) => format!("Tasks.ListPids({id})"),
            Op::Get(id, e) => format!("Tasks.Get({id}{})", ex(e)),
            Op::Wait(id, e) => format!("Tasks.Wait({id}{})", ex(e)),
        }
    }
}

fn ex(e: &str) -> String {
    if e.is_empty() {
        String::new()
    } else {
        format!(", exec {e}")
    }
}

/// What an operation gave back.
#[derive(Clone, Debug, PartialEq)]
pub enum OpOk {
    Empty,
    Pid(u32),
    Pids(Vec<u32>),
    /// Tasks.Get: pid, status, exit status
    Proc(u32, i32, u32),
    /// Wait / Delete: exit status
    Exit(u32),
}

pub type OpResult = Result<OpOk, tonic::Status>;

/// Runs an operation (no bound of its own).
pub async fn run_op(ch: Channel, ns: &'static str, op: Op) -> OpResult {
    let mut t = containerd_client::services::v1::tasks_client::TasksClient::new(ch);
    match op {
        Op::Create(id, rootfs) => t
            .create(req(
                ns,
                CreateTaskRequest {
                    container_id: id,
                    rootfs,
                    ..Default::default()
                },
            ))
            .await
            .map(|r| OpOk::Pid(r.into_inner().pid)),
        Op::Start(id, exec_id) => t
            .start(req(
                ns,
                StartRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| OpOk::Pid(r.into_inner().pid)),
        Op::Kill(id, exec_id, signal, all) => t
            .kill(req(
                ns,
                KillRequest {
                    container_id: id,
                    exec_id,
                    signal,
                    all,
                },
            ))
            .await
            .map(|_| OpOk::Empty),
        Op::Delete(id) => t
            .delete(req(ns, DeleteTaskRequest { container_id: id }))
            .await
            .map(|r| OpOk::Exit(r.into_inner().exit_status)),
        Op::DeleteProcess(id, exec_id) => t
            .delete_process(req(
                ns,
                DeleteProcessRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| OpOk::Exit(r.into_inner().exit_status)),
        Op::Exec(id, exec_id, args) => {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            t.exec(req(
                ns,
                ExecProcessRequest {
                    container_id: id,
                    exec_id,
                    spec: Some(prost_types::Any {
                        type_url: PROCESS_TYPE.into(),
                        value: process_spec(&a),
                    }),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| OpOk::Empty)
        }
        Op::Pause(id) => t
            .pause(req(ns, PauseTaskRequest { container_id: id }))
            .await
            .map(|_| OpOk::Empty),
        Op::Resume(id) => t
            .resume(req(ns, ResumeTaskRequest { container_id: id }))
            .await
            .map(|_| OpOk::Empty),
        Op::Update(id, resources) => t
            .update(req(
                ns,
                UpdateTaskRequest {
                    container_id: id,
                    resources: Some(prost_types::Any {
                        type_url: RESOURCES_TYPE.into(),
                        value: serde_json::to_vec(&resources).unwrap(),
                    }),
                    annotations: Default::default(),
                },
            ))
            .await
            .map(|_| OpOk::Empty),
        Op::Pids(id) => t
            .list_pids(req(ns, ListPidsRequest { container_id: id }))
            .await
            .map(|r| OpOk::Pids(r.into_inner().processes.iter().map(|p| p.pid).collect())),
        Op::Get(id, exec_id) => t
            .get(req(
                ns,
                GetRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| {
                let p = r.into_inner().process.unwrap_or_default();
                OpOk::Proc(p.pid, p.status, p.exit_status)
            }),
        Op::Wait(id, exec_id) => t
            .wait(req(
                ns,
                WaitRequest {
                    container_id: id,
                    exec_id,
                },
            ))
            .await
            .map(|r| OpOk::Exit(r.into_inner().exit_status)),
    }
}

/// Runs `fut` for at most `limit` (clamped to the case's deadline): None when it did not
/// finish in time, and how long it took.
pub fn try_call<F: Future>(api: &Api, limit: Duration, fut: F) -> (Option<F::Output>, Duration) {
    let limit = bound(limit);
    let t = Instant::now();
    let r = api
        .rt
        .block_on(async { tokio::time::timeout(limit, fut).await })
        .ok();
    (r, t.elapsed())
}

/// An operation, bounded: None when it did not answer within `limit`.
pub fn op_within(api: &Api, op: Op, limit: Duration) -> (Option<OpResult>, Duration) {
    try_call(api, limit, run_op(api.channel.clone(), ns(), op))
}

/// An operation that must succeed within `limit`.
pub fn op_ok(api: &Api, op: Op, limit: Duration) -> OpOk {
    let name = op.name();
    match op_within(api, op, limit) {
        (Some(Ok(v)), _) => v,
        (Some(Err(s)), t) => panic!("{name} failed after {}: {s}", secs(t)),
        (None, t) => panic!("{name}: no answer within {}", secs(t)),
    }
}

/// An operation running in the background.
pub struct InFlight {
    pub name: String,
    handle: Option<tokio::task::JoinHandle<(OpResult, Duration)>>,
    pub started: Instant,
}

pub fn spawn_op(api: &Api, op: Op) -> InFlight {
    let name = op.name();
    let ch = api.channel.clone();
    let n = ns();
    let started = Instant::now();
    let handle = api.rt.spawn(async move {
        let t = Instant::now();
        let r = run_op(ch, n, op).await;
        (r, t.elapsed())
    });
    InFlight {
        name,
        handle: Some(handle),
        started,
    }
}

impl InFlight {
    pub fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
    /// Waits at most `limit` more; None when still in flight.
    pub fn join(&mut self, api: &Api, limit: Duration) -> Option<(OpResult, Duration)> {
        let h = self.handle.as_mut()?;
        let limit = bound(limit);
        let r = api
            .rt
            .block_on(async { tokio::time::timeout(limit, h).await });
        match r {
            Ok(Ok(v)) => {
                self.handle = None;
                Some(v)
            }
            Ok(Err(e)) => panic!("{}: task failed: {e}", self.name),
            Err(_) => None,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Short text of an operation's outcome.
pub fn describe(r: &Option<OpResult>, t: Duration) -> String {
    match r {
        Some(Ok(v)) => format!("ok {v:?} in {}", secs(t)),
        Some(Err(s)) => format!(
            "{:?} in {}: {}",
            s.code(),
            secs(t),
            s.message().replace('\n', " ")
        ),
        None => format!("no answer within {}", secs(t)),
    }
}

// ---------------------------------------------------------------------------------------
// A raw ttrpc client, for the shim's own Shutdown (containerd 1.6 never sends now=true)
// ---------------------------------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
struct TtrpcRequest {
    #[prost(string, tag = "1")]
    service: String,
    #[prost(string, tag = "2")]
    method: String,
    #[prost(bytes = "vec", tag = "3")]
    payload: Vec<u8>,
    #[prost(int64, tag = "4")]
    timeout_nano: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TtrpcResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<RpcStatus>,
    #[prost(bytes = "vec", tag = "2")]
    payload: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ShutdownRequestPb {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(bool, tag = "2")]
    now: bool,
}

/// Calls `containerd.task.v2.Task/Shutdown{id, now}` on a shim socket (`unix://...`).
/// Ok((grpc code, message)) when it answered, Err when the connection failed or closed
/// without an answer, or nothing came within `limit`.
pub fn ttrpc_shutdown(
    address: &str,
    id: &str,
    now: bool,
    limit: Duration,
) -> Result<(i32, String), String> {
    let path = address.trim_start_matches("unix://");
    let mut s = UnixStream::connect(path).map_err(|e| format!("connect {path}: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let body = TtrpcRequest {
        service: "containerd.task.v2.Task".into(),
        method: "Shutdown".into(),
        payload: ShutdownRequestPb { id: id.into(), now }.encode_to_vec(),
        timeout_nano: 0,
    }
    .encode_to_vec();
    let mut frame = Vec::with_capacity(10 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes()); // stream id
    frame.push(1); // request
    frame.push(0); // flags
    frame.extend_from_slice(&body);
    s.write_all(&frame).map_err(|e| format!("write: {e}"))?;
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr)
        .map_err(|e| format!("no answer (read header: {e})"))?;
    let len = u32::from_be_bytes(hdr[0..4].try_into().unwrap()) as usize;
    let mut data = vec![0u8; len];
    s.read_exact(&mut data)
        .map_err(|e| format!("read body: {e}"))?;
    if hdr[8] != 2 {
        return Err(format!("unexpected ttrpc message type {}", hdr[8]));
    }
    let r = TtrpcResponse::decode(data.as_slice()).map_err(|e| format!("decode: {e}"))?;
    let st = r.status.unwrap_or_default();
    Ok((st.code, st.message))
}

// ---------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------

/// Drop guard of a case: releases the fault runtime first (so nothing hangs any more),
/// then force-deletes every task and container (`ctr task delete -f`, `ctr container
/// delete`, which also removes the snapshot), last id first.
pub struct Cleanup {
    pub fault: Option<Fault>,
    pub ids: Vec<String>,
}

impl Cleanup {
    pub fn new(fault: Option<Fault>) -> Cleanup {
        Cleanup {
            fault,
            ids: Vec::new(),
        }
    }
    pub fn add(&mut self, id: &str) {
        self.ids.push(id.to_string());
    }
    pub fn fault(&self) -> &Fault {
        self.fault.as_ref().expect("a fault runtime")
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(f) = &self.fault {
            f.release();
        }
        for id in self.ids.iter().rev() {
            cleanup_container(ns(), id);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The hang cases
// ---------------------------------------------------------------------------------------

/// The containerd operation that makes a shim call runtime `verb` on the victim.
fn hang_case(shim: Shim, verb: &'static str) {
    use_ns_of(shim);
    let case = format!("hang-{verb}");
    let api = Api::connect();
    let a = unique_id(&case, shim);
    let b = unique_id(&format!("{case}-peer"), shim);
    let mut g = Cleanup::new(Some(Fault::new(&a)));
    let deadline = HUNG_DEADLINE;
    let toml = g.fault().dir.toml(
        Some(&g.fault().wrapper),
        &[
            (verb, &format!("{}s", deadline.as_secs())),
            ("stop_grace", "2s"),
            ("kill_grace", "1s"),
        ],
    );
    let options = match shim {
        Shim::Robust => robust_options(&toml),
        Shim::Reference => reference_options(&g.fault().wrapper),
    };

    // the peer B: the group's first container, plain runtime
    g.add(&b);
    let mb = create_container(
        &api,
        shim,
        &Ct {
            id: &b,
            args: &["sleep", "1000"],
            options: None,
            group: None,
            host_pid: false,
        },
    );
    let pid_b = match op_ok(&api, Op::Create(b.clone(), mb), 20 * SEC) {
        OpOk::Pid(p) => p,
        o => panic!("Create({b}) gave {o:?}"),
    };
    op_ok(&api, Op::Start(b.clone(), String::new()), 20 * SEC);

    // the victim A, in B's shim, through the wrapper
    g.add(&a);
    let victim_args: &[&str] = if verb == "delete" {
        &["sh", "-c", "exit 3"]
    } else {
        &["sleep", "1000"]
    };
    let ma = create_container(
        &api,
        shim,
        &Ct {
            id: &a,
            args: victim_args,
            options: Some(options),
            group: Some(&b),
            host_pid: false,
        },
    );
    let mut pid_a = 0u32;
    let mut expect_a = ""; // A's status while the call hangs ("" = no task yet)
    if verb != "create" {
        pid_a = match op_ok(&api, Op::Create(a.clone(), ma.clone()), 20 * SEC) {
            OpOk::Pid(p) => p,
            o => panic!("Create({a}) gave {o:?}"),
        };
        expect_a = "CREATED";
        if verb != "start" {
            op_ok(&api, Op::Start(a.clone(), String::new()), 20 * SEC);
            expect_a = "RUNNING";
        }
    }
    if verb != "create" {
        assert_eq!(
            shim_address(ns(), &a),
            shim_address(ns(), &b),
            "A and B must share one shim (sandbox-id annotation)"
        );
    }
    let op = match verb {
        "create" => Op::Create(a.clone(), ma.clone()),
        "start" => Op::Start(a.clone(), String::new()),
        "kill" => Op::Kill(a.clone(), String::new(), 15, false),
        "delete" => {
            let st = op_ok(&api, Op::Wait(a.clone(), String::new()), 15 * SEC);
            assert_eq!(st, OpOk::Exit(3), "exit of `sh -c 'exit 3'`");
            expect_a = "STOPPED";
            Op::Delete(a.clone())
        }
        "exec" => {
            op_ok(
                &api,
                Op::Exec(a.clone(), "e1".into(), vec!["echo".into(), "hi".into()]),
                10 * SEC,
            );
            Op::Start(a.clone(), "e1".into())
        }
        "pause" => Op::Pause(a.clone()),
        "resume" => {
            op_ok(&api, Op::Pause(a.clone()), 10 * SEC);
            expect_a = "PAUSED";
            Op::Resume(a.clone())
        }
        "update" => Op::Update(a.clone(), serde_json::json!({ "cpu": { "shares": 512 } })),
        "ps" => Op::Pids(a.clone()),
        v => panic!("no scenario for verb {v}"),
    };

    // hang, and call
    g.fault().hang(verb);
    let mut flight = spawn_op(&api, op.clone());
    let name = flight.name.clone();
    let hung_pid = g.fault().wait_hung(verb, 10 * SEC);
    let t_hung = flight.started.elapsed();

    // meanwhile: the shim must answer other calls
    let mut side: Vec<(String, bool, String)> = Vec::new(); // (call, answered ok, detail)
    if verb == "create" {
        // the bundle exists while Create runs: A must be in B's shim
        let (sa, sb) = (shim_address(ns(), &a), shim_address(ns(), &b));
        side.push((
            format!("{a} served by the shim of {b}"),
            sa.is_some() && sa == sb,
            format!("{sa:?} vs {sb:?}"),
        ));
    }
    if !expect_a.is_empty() {
        let (r, t) = op_within(&api, Op::Get(a.clone(), String::new()), 2 * SEC);
        let ok = matches!(&r, Some(Ok(OpOk::Proc(_, s, _))) if status_name(*s) == expect_a);
        side.push((format!("Get({a}) = {expect_a}"), ok, describe(&r, t)));
    }
    if verb == "exec" {
        let (r, t) = op_within(&api, Op::Get(a.clone(), "e1".into()), 2 * SEC);
        let ok = matches!(&r, Some(Ok(_)));
        side.push((format!("Get({a}, e1)"), ok, describe(&r, t)));
    }
    {
        let (r, t) = op_within(&api, Op::Pids(b.clone()), 2 * SEC);
        let ok = matches!(&r, Some(Ok(OpOk::Pids(p))) if p.contains(&pid_b));
        side.push((format!("Pids({b}) has {pid_b}"), ok, describe(&r, t)));
    }
    {
        let t = Instant::now();
        let out = ctr(ns(), &["task", "ls"]).timeout(4 * SEC).run();
        let line = |id: &str| {
            out.stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(id))
                .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
        };
        let sb = line(&b);
        let sa = line(&a);
        let ok = out.succeeded()
            && sb.as_deref() == Some("RUNNING")
            && (expect_a.is_empty() || sa.as_deref() == Some(expect_a));
        side.push((
            "ctr task ls".into(),
            ok,
            format!("{b}={sb:?} {a}={sa:?} in {}", secs(t.elapsed())),
        ));
    }
    let still_in_flight = !flight.finished();
    let side_text = side
        .iter()
        .map(|(c, ok, d)| {
            format!(
                "{c}: {} ({d})",
                if *ok { "answered" } else { "NOT ANSWERED" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");

    match shim {
        Shim::Robust => {
            let (res, took) = flight
                .join(&api, deadline + 10 * SEC)
                .unwrap_or_else(|| panic!("{name}: no answer within {:?}", deadline + 10 * SEC));
            record(
                &case,
                shim,
                &format!(
                    "{name}: {} (hang seen after {}); meanwhile: {side_text}",
                    describe(&Some(res.clone()), took),
                    secs(t_hung)
                ),
            );
            let st = match res {
                Err(s) => s,
                Ok(v) => panic!("{name} succeeded ({v:?}) although runtime {verb} hung"),
            };
            assert_eq!(
                st.code(),
                Code::DeadlineExceeded,
                "{name}: code of the error: {st}"
            );
            for want in [
                format!("runtime {verb} {a}"),
                format!("{}s", deadline.as_secs()),
            ] {
                assert!(
                    st.message().contains(&want),
                    "{name}: the error should name {want:?}: {}",
                    st.message()
                );
            }
            assert!(
                took + Duration::from_millis(100) >= deadline,
                "{name} came back after {} before the {}s deadline: {st}",
                secs(took),
                deadline.as_secs()
            );
            assert!(
                took <= deadline + MARGIN,
                "{name} took {} with runtime {verb} hung: more than its deadline {:?} + {:?}",
                secs(took),
                deadline,
                MARGIN
            );
            for (c, ok, d) in &side {
                assert!(ok, "while {name} hung, {c} was not answered: {d}");
            }
            assert!(
                still_in_flight,
                "{name} was no longer in flight after the other calls: {side_text}"
            );
            // the runtime's whole process group is gone
            let mut alive = Vec::new();
            let gone = poll_quiet(2 * SEC, || {
                alive = g.fault().alive();
                alive.is_empty()
            });
            assert!(
                gone,
                "processes of the hung runtime left after {name} returned: {alive:?}"
            );
            assert!(!pid_alive(hung_pid));
        }
        Shim::Reference => {
            let first = flight.join(&api, REF_BOUND.saturating_sub(flight.started.elapsed()));
            let outcome = match first {
                Some((r, t)) => describe(&Some(r), t),
                None => {
                    let killed = g.fault().release();
                    let after = flight.join(&api, 15 * SEC);
                    format!(
                        "HUNG > {} (runtime killed by the test: {} processes; then: {})",
                        secs(REF_BOUND),
                        killed.len(),
                        match after {
                            Some((r, t)) => describe(&Some(r), t),
                            None => "still no answer 15s after the runtime was killed".into(),
                        }
                    )
                }
            };
            let left = g.fault().alive();
            record(
                &case,
                shim,
                &format!(
                    "{name}: {outcome}; meanwhile: {side_text}; runtime processes left: {}",
                    left.len()
                ),
            );
        }
    }

    // the runtime answers again: the operation works, then delete leaves nothing
    g.fault().hang("none");
    let mut pids = vec![pid_b as i32];
    let recovery = (|| -> Result<(), String> {
        let lim = 15 * SEC;
        let run = |op: Op| -> Result<OpOk, String> {
            let name = op.name();
            match op_within(&api, op, lim) {
                (Some(Ok(v)), _) => Ok(v),
                (r, t) => Err(format!("{name}: {}", describe(&r, t))),
            }
        };
        match verb {
            "create" => {
                pid_a = match run(Op::Create(a.clone(), ma.clone()))? {
                    OpOk::Pid(p) => p,
                    o => return Err(format!("Create gave {o:?}")),
                };
                run(Op::Start(a.clone(), String::new()))?;
            }
            "start" => {
                run(Op::Start(a.clone(), String::new()))?;
            }
            "kill" => {
                run(Op::Kill(a.clone(), String::new(), 9, false))?;
                let st = run(Op::Wait(a.clone(), String::new()))?;
                if st != OpOk::Exit(137) {
                    return Err(format!("Wait after SIGKILL gave {st:?}"));
                }
            }
            "delete" => {
                let st = run(Op::Delete(a.clone()))?;
                if st != OpOk::Exit(3) {
                    return Err(format!("Delete gave {st:?}, want exit 3"));
                }
            }
            "exec" => {
                let _ = run(Op::DeleteProcess(a.clone(), "e1".into()));
                run(Op::Exec(a.clone(), "e2".into(), vec!["true".into()]))?;
                let w = spawn_op(&api, Op::Wait(a.clone(), "e2".into()));
                run(Op::Start(a.clone(), "e2".into()))?;
                let mut w = w;
                match w.join(&api, lim) {
                    Some((Ok(OpOk::Exit(0)), _)) => {}
                    other => return Err(format!("Wait(e2) gave {other:?}")),
                }
                run(Op::DeleteProcess(a.clone(), "e2".into()))?;
            }
            "pause" => {
                run(Op::Pause(a.clone()))?;
                run(Op::Resume(a.clone()))?;
            }
            "resume" => {
                run(Op::Resume(a.clone()))?;
            }
            "update" => {
                run(Op::Update(
                    a.clone(),
                    serde_json::json!({ "cpu": { "shares": 512 } }),
                ))?;
            }
            "ps" => match run(Op::Pids(a.clone()))? {
                OpOk::Pids(p) if p.contains(&pid_a) => {}
                o => return Err(format!("Pids gave {o:?}, want {pid_a} in it")),
            },
            _ => {}
        }
        Ok(())
    })();
    pids.push(pid_a as i32);
    let address = shim_address(ns(), &b);

    // delete everything (kill, wait, delete the tasks, then the containers)
    let t = Instant::now();
    let mut problems = Vec::new();
    for id in [&a, &b] {
        let out = ctr(ns(), &["task", "delete", "-f", id])
            .timeout(20 * SEC)
            .run_unclamped();
        if !out.succeeded() && !out.stderr.contains("not found") {
            problems.push(format!("ctr task delete -f {id}: {}", out.stderr.trim()));
        }
        let out = ctr(ns(), &["container", "delete", id])
            .timeout(20 * SEC)
            .run_unclamped();
        if !out.succeeded() {
            problems.push(format!("ctr container delete {id}: {}", out.stderr.trim()));
        }
    }
    let deleted_in = t.elapsed();
    let left = wait_nothing_left(&[(&a, vec![pids[1]]), (&b, vec![pids[0]])], 5 * SEC);
    let runtime_left = g.fault().alive();
    let shim_left = address
        .as_deref()
        .map(|ad| {
            let mut h = Vec::new();
            poll_quiet(5 * SEC, || {
                h = socket_holders(ad);
                h.is_empty()
            });
            h
        })
        .unwrap_or_default();
    let calls = g.fault().calls();
    record(
        &case,
        shim,
        &format!(
            "after: recovery {}; delete of both took {}; problems {problems:?}; left {left:?}; runtime processes {}; shim still serving: {shim_left:?}; runtime verbs called: {}",
            match &recovery {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("FAILED: {e}"),
            },
            secs(deleted_in),
            runtime_left.len(),
            calls.join(",")
        ),
    );
    if shim == Shim::Robust {
        if let Err(e) = recovery {
            panic!("after runtime {verb} answered again: {e}");
        }
        assert!(problems.is_empty(), "deleting: {problems:?}");
        assert!(left.is_empty(), "left behind: {left:?}");
        assert!(
            runtime_left.is_empty(),
            "runtime processes: {runtime_left:?}"
        );
        assert!(
            shim_left.is_empty(),
            "the shim still serves {:?} after its last container was deleted: pids {shim_left:?}",
            address
        );
        g.ids.clear(); // already deleted
    }
}

macro_rules! hang_tests {
    ($($verb:ident),*) => {$(
        shim_test!($verb, limit = 120, |shim| {
            hang_case(shim, stringify!($verb));
        });
    )*};
}

hang_tests!(create, start, kill, delete, exec, pause, resume, update, ps);

// `state`: the shim never calls `runtime state` (State answers from its own records), so
// a runtime hung on `state` must not slow down any operation. A whole lifecycle runs with
// the wrapper hanging on `state`; every step must answer well inside the 3 s state
// deadline, and the wrapper must never have been called with `state`.
shim_test!(state, limit = 120, |shim| {
    use_ns_of(shim);
    let case = "hang-state";
    let api = Api::connect();
    let a = unique_id(case, shim);
    let mut g = Cleanup::new(Some(Fault::new(&a)));
    let toml = g.fault().dir.toml(
        Some(&g.fault().wrapper),
        &[("state", "3s"), ("stop_grace", "2s"), ("kill_grace", "1s")],
    );
    let options = match shim {
        Shim::Robust => robust_options(&toml),
        Shim::Reference => reference_options(&g.fault().wrapper),
    };
    g.fault().hang("state");
    g.add(&a);
    let m = create_container(
        &api,
        shim,
        &Ct {
            id: &a,
            args: &["sleep", "1000"],
            options: Some(options),
            group: None,
            host_pid: false,
        },
    );
    let limit = match shim {
        Shim::Robust => 2 * SEC,
        Shim::Reference => REF_BOUND,
    };
    let mut steps: Vec<String> = Vec::new();
    let mut failed: Option<String> = None;
    let mut pid = 0;
    let step = |op: Op,
                g: &Cleanup,
                steps: &mut Vec<String>,
                failed: &mut Option<String>|
     -> Option<OpOk> {
        if failed.is_some() {
            return None;
        }
        let name = op.name();
        let (r, t) = op_within(&api, op, limit);
        steps.push(format!("{name} {}", describe(&r, t)));
        match r {
            Some(Ok(v)) => Some(v),
            other => {
                *failed = Some(format!("{name}: {}", describe(&other, t)));
                g.fault().release();
                None
            }
        }
    };
    if let Some(OpOk::Pid(p)) = step(Op::Create(a.clone(), m), &g, &mut steps, &mut failed) {
        pid = p;
    }
    step(
        Op::Start(a.clone(), String::new()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Get(a.clone(), String::new()),
        &g,
        &mut steps,
        &mut failed,
    );
    {
        // ctr task ls: containerd asks the shim for the State of every task
        let out = ctr(ns(), &["task", "ls"]).timeout(5 * SEC).run();
        let st = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(a.as_str()))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string));
        steps.push(format!("ctr task ls: {st:?} in {}", secs(out.elapsed)));
        if failed.is_none() && st.as_deref() != Some("RUNNING") {
            failed = Some(format!("ctr task ls shows {st:?} for {a}"));
        }
    }
    step(Op::Pids(a.clone()), &g, &mut steps, &mut failed);
    step(
        Op::Exec(a.clone(), "e1".into(), vec!["true".into()]),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Start(a.clone(), "e1".into()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Wait(a.clone(), "e1".into()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::DeleteProcess(a.clone(), "e1".into()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(Op::Pause(a.clone()), &g, &mut steps, &mut failed);
    step(Op::Resume(a.clone()), &g, &mut steps, &mut failed);
    step(
        Op::Update(a.clone(), serde_json::json!({ "cpu": { "shares": 256 } })),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Kill(a.clone(), String::new(), 9, false),
        &g,
        &mut steps,
        &mut failed,
    );
    step(
        Op::Wait(a.clone(), String::new()),
        &g,
        &mut steps,
        &mut failed,
    );
    step(Op::Delete(a.clone()), &g, &mut steps, &mut failed);
    let calls = g.fault().calls();
    let state_calls = calls.iter().filter(|v| *v == "state").count();
    record(
        case,
        shim,
        &format!(
            "lifecycle with runtime `state` hung: {}; `state` called {state_calls} times; verbs: {}; steps: {}",
            match &failed {
                None => "every step answered".to_string(),
                Some(f) => format!("STOPPED at {f}"),
            },
            calls.join(","),
            steps.join("; ")
        ),
    );
    if shim == Shim::Robust {
        if let Some(f) = failed {
            panic!("with runtime `state` hung: {f}\nsteps: {steps:#?}");
        }
        assert_eq!(state_calls, 0, "runtime verbs called: {calls:?}");
        let out = ctr(ns(), &["container", "delete", &a]).run();
        assert!(out.succeeded(), "ctr container delete: {}", out.stderr);
        let left = wait_nothing_left(&[(&a, vec![pid as i32])], 5 * SEC);
        assert!(left.is_empty(), "left behind: {left:?}");
        g.ids.clear();
    }
});

// A forced delete (`ctr task delete -f`: Kill(SIGKILL, all), wait, Delete) of a running
// container, and of a paused one, while the runtime hangs on `kill`. The SIGKILL cannot
// take effect through the runtime; the stop must still finish (the shim kills the
// container's cgroup itself: thaw, SIGKILL every pid) within the kill deadline plus its
// escalation steps (2 x kill_grace) plus the margin, and leave nothing behind.
shim_test!(force_delete_kill_hung, limit = 120, |shim| {
    use_ns_of(shim);
    let case = "force-delete-kill-hung";
    let api = Api::connect();
    let a = unique_id("fdel-running", shim);
    let b = unique_id("fdel-paused", shim);
    let mut g = Cleanup::new(Some(Fault::new(&a)));
    let kill_grace = SEC;
    let toml = g.fault().dir.toml(
        Some(&g.fault().wrapper),
        &[
            ("kill", &format!("{}s", HUNG_DEADLINE.as_secs())),
            ("stop_grace", "2s"),
            ("kill_grace", "1s"),
        ],
    );
    let options = match shim {
        Shim::Robust => robust_options(&toml),
        Shim::Reference => reference_options(&g.fault().wrapper),
    };
    let mut pids = Vec::new();
    for (id, group) in [(&a, None), (&b, Some(a.as_str()))] {
        g.add(id);
        let m = create_container(
            &api,
            shim,
            &Ct {
                id,
                args: &["sleep", "1000"],
                options: Some(options.clone()),
                group,
                host_pid: false,
            },
        );
        match op_ok(&api, Op::Create(id.clone(), m), 20 * SEC) {
            OpOk::Pid(p) => pids.push(p as i32),
            o => panic!("Create({id}) gave {o:?}"),
        }
        op_ok(&api, Op::Start(id.clone(), String::new()), 20 * SEC);
    }
    op_ok(&api, Op::Pause(b.clone()), 10 * SEC);
    g.fault().hang("kill");
    let bound = HUNG_DEADLINE + 2 * kill_grace + MARGIN;
    let limit = match shim {
        Shim::Robust => bound + 10 * SEC,
        Shim::Reference => REF_BOUND,
    };
    let mut outcomes = Vec::new();
    for (id, pid, what) in [(&a, pids[0], "running"), (&b, pids[1], "paused")] {
        let out = ctr(ns(), &["task", "delete", "-f", id])
            .timeout(limit)
            .run();
        let dead = poll_quiet(2 * SEC, || !pid_alive(pid));
        let listed = task_ls_status(id).ok().flatten();
        record(
            case,
            shim,
            &format!(
                "{what}, runtime kill hung: ctr task delete -f -> {} after {}{}: {}; init dead {dead}; task listed as {listed:?}",
                match out.code {
                    Some(c) => format!("exit {c}"),
                    None => "killed".into(),
                },
                secs(out.elapsed),
                if out.timed_out { " (TIMED OUT)" } else { "" },
                out.stderr.trim().replace('\n', " ")
            ),
        );
        outcomes.push((id.clone(), what, out, dead, listed));
    }
    let killed = g.fault().release();
    if shim == Shim::Robust {
        for (id, what, out, dead, listed) in &outcomes {
            assert!(
                out.succeeded(),
                "{what} {id}: `ctr task delete -f` with runtime kill hung failed after {}: {}",
                secs(out.elapsed),
                out.stderr.trim()
            );
            assert!(
                out.elapsed <= bound,
                "{what} {id}: forced delete took {} > kill deadline + 2 x kill_grace + {MARGIN:?}",
                secs(out.elapsed)
            );
            assert!(*dead, "{what} {id}: init still alive");
            assert!(listed.is_none(), "{what} {id}: still listed as {listed:?}");
        }
        assert!(killed.is_empty(), "runtime processes left: {killed:?}");
        for id in [&a, &b] {
            let out = ctr(ns(), &["container", "delete", id]).run();
            assert!(out.succeeded(), "ctr container delete {id}: {}", out.stderr);
        }
        let left = wait_nothing_left(&[(&a, vec![pids[0]]), (&b, vec![pids[1]])], 5 * SEC);
        assert!(left.is_empty(), "left behind: {left:?}");
        g.ids.clear();
    }
});
