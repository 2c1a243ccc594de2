//! robust-soak: a long, seeded, fault-mixing soak of a containerd shim (issue 8).
//!
//! Against the isolated containerd of `integration/containerd.sh` (see
//! `integration/soak.sh` and docs/soak.md), it runs cycles of containers through
//! containerd's API (create, start, exec, kill, delete), one fault per cycle drawn from the
//! seed, on runc or runsc, with our shim or the reference. After every cycle it checks the
//! host and containerd for what the cycle may have left or lost, and at the end prints
//! (and writes) a markdown summary. Exit status: 0 clean, 1 on any violation, 2 on a
//! usage or setup error.

#[path = "soak/checks.rs"]
mod checks;
#[path = "soak/client.rs"]
mod client;
#[path = "soak/ctx.rs"]
mod ctx;
#[path = "soak/events.rs"]
mod events;
#[path = "soak/faults.rs"]
mod faults;
#[path = "soak/host.rs"]
mod host;
#[path = "soak/infra.rs"]
mod infra;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/rng.rs"]
mod rng;

use std::collections::HashSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use robust_integration::{ctr, proc_start_time, serde_json, CgroupTree, HostProcess, Shim};

use crate::client::{sh, CSpec};
use crate::ctx::{Bystanders, Ctx, Pod, SEC};
use crate::host::{repo_dir, Host, Runtime};
use crate::report::Header;
use crate::rng::Rng;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

const USAGE: &str = "usage: robust-soak [--shim robust|reference] [--runtime runc|runsc]
                   [--cycles N] [--minutes M] [--seed S] [--start-cycle N]
                   [--faults LIST] [--report FILE.md] [--ns NAME] [--verbose]

  --cycles N      stop after N cycles (0: no cycle bound)
  --minutes M     stop starting cycles after M minutes (decimals allowed)
                  neither given: --minutes 3
  --seed S        the seed (default: from the clock; printed at start)
  --start-cycle N the first cycle number (replays cycle N of a seed: --cycles 1)
  --faults LIST   comma-separated fault kinds, `default` (all but the opt-in ones)
                  or `all`; kinds: none orphan exec-missing sigterm-ignored oom
                  hung-runtime busy-rootfs shim-kill9 containerd-restart
                  shim-sigterm (opt-in)
  --report FILE   where the markdown summary goes
                  (default results/soak-<shim>-<runtime>-<time>.md)
  --ns NAME       containerd namespace of the run (default soak)

Needs the isolated containerd's environment (eval \"$(integration/containerd.sh env)\");
integration/soak.sh does all of it (make soak).";

struct Opts {
    shim: Shim,
    runtime: Runtime,
    cycles: u64,
    minutes: Option<f64>,
    seed: u64,
    start_cycle: u64,
    faults: Vec<&'static str>,
    report: Option<PathBuf>,
    ns: String,
    verbose: bool,
}

fn parse_faults(s: &str) -> Result<Vec<&'static str>, String> {
    let mut v = Vec::new();
    for f in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match f {
            "all" => v.extend(faults::FAULTS.iter().copied()),
            "default" => v.extend(
                faults::FAULTS
                    .iter()
                    .copied()
                    .filter(|f| !faults::OPT_IN.contains(f)),
            ),
            _ => v.push(
                *faults::FAULTS
                    .iter()
                    .find(|k| **k == f)
                    .ok_or_else(|| format!("unknown fault `{f}`"))?,
            ),
        }
    }
    let mut seen = HashSet::new();
    v.retain(|f| seen.insert(*f));
    if v.is_empty() {
        return Err("no fault kinds".into());
    }
    Ok(v)
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        shim: Shim::Robust,
        runtime: Runtime::Runc,
        cycles: 0,
        minutes: None,
        seed: rng::fresh_seed(),
        start_cycle: 1,
        faults: parse_faults("default")?,
        report: None,
        ns: "soak".into(),
        verbose: false,
    };
    let mut cycles_given = false;
    let mut a = std::env::args().skip(1);
    while let Some(k) = a.next() {
        let mut val = || a.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--shim" => {
                o.shim = match val()?.as_str() {
                    "robust" | "ours" => Shim::Robust,
                    "reference" | "runc-v2" => Shim::Reference,
                    s => return Err(format!("--shim: robust or reference, not {s}")),
                }
            }
            "--runtime" => {
                o.runtime = match val()?.as_str() {
                    "runc" => Runtime::Runc,
                    "runsc" => Runtime::Runsc,
                    s => return Err(format!("--runtime: runc or runsc, not {s}")),
                }
            }
            "--cycles" => {
                o.cycles = val()?.parse().map_err(|e| format!("--cycles: {e}"))?;
                cycles_given = true;
            }
            "--minutes" => {
                let m: f64 = val()?.parse().map_err(|e| format!("--minutes: {e}"))?;
                if m <= 0.0 {
                    return Err("--minutes must be positive".into());
                }
                o.minutes = Some(m);
            }
            "--seed" => o.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--start-cycle" => {
                o.start_cycle = val()?.parse().map_err(|e| format!("--start-cycle: {e}"))?
            }
            "--faults" => o.faults = parse_faults(&val()?)?,
            "--report" => o.report = Some(PathBuf::from(val()?)),
            "--ns" => o.ns = val()?,
            "--verbose" | "-v" => o.verbose = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if !cycles_given && o.minutes.is_none() {
        o.minutes = Some(3.0);
    }
    if o.shim == Shim::Reference && o.runtime == Runtime::Runsc {
        return Err("the reference shim is containerd-shim-runc-v2: runc only".into());
    }
    Ok(o)
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("robust-soak: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only stores to an atomic
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    std::process::exit(match run(o) {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("robust-soak: setup failed: {e}");
            2
        }
    });
}

fn setup(o: &Opts) -> Result<Ctx, String> {
    let addr = std::env::var("CONTAINERD_ADDRESS").unwrap_or_default();
    if addr.is_empty() || !Path::new(&addr).exists() {
        return Err(format!(
            "no containerd socket at `{addr}`: run through integration/soak.sh (make soak), or \
             start the isolated containerd and eval \"$(integration/containerd.sh env)\""
        ));
    }
    let e = robust_integration::env();
    let mut host = Host::new(&o.ns);
    host.id_prefix = format!("s{}-", o.seed);
    fs::create_dir_all(&host.scratch)
        .map_err(|er| format!("mkdir {}: {er}", host.scratch.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|er| er.to_string())?;
    let ch = rt.block_on(client::connect(&e.address, 10 * SEC))?;
    // the image, in the soak's namespace
    let ls = ctr(&o.ns, &["images", "ls", "-q"]).run_unclamped();
    if !ls.stdout.lines().any(|l| l.trim() == e.image) {
        let dir = std::env::var("ROBUST_IT_IMAGES_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_dir().join(".work/images"));
        let tar = dir.join("busybox.tar").display().to_string();
        let out = ctr(
            &o.ns,
            &["images", "import", "--snapshotter", "overlayfs", &tar],
        )
        .timeout(60 * SEC)
        .run_unclamped();
        if !out.succeeded() {
            return Err(format!("ctr images import {tar}: {}", out.stderr.trim()));
        }
    }
    let chain = rt.block_on(client::image_chain_id(
        ch.clone(),
        o.ns.clone(),
        e.image.clone(),
    ))?;
    let spec = ctr(&o.ns, &["oci", "spec"]).run_unclamped();
    let base_spec: serde_json::Value =
        serde_json::from_str(&spec.stdout).map_err(|er| format!("ctr oci spec: {er}"))?;
    let runsc_toml = host.scratch.join("runsc.toml");
    fs::copy(repo_dir().join("runtime-config/runsc.toml"), &runsc_toml)
        .map_err(|er| format!("copy runsc.toml: {er}"))?;
    Ok(Ctx {
        shim: o.shim,
        runtime: o.runtime,
        seed: o.seed,
        host,
        rt,
        ch,
        events: Default::default(),
        report: Default::default(),
        base_spec,
        chain,
        image: e.image.clone(),
        cycle: 0,
        fault: "setup".into(),
        pod: None,
        bystanders: None,
        live: HashSet::new(),
        expects: Vec::new(),
        runsc_toml,
        reported: HashSet::new(),
        verbose: o.verbose,
        tag: "",
    })
}

/// The long-lived pod: a sandbox container whose shim daemon serves the pod members of
/// every cycle; its fds and RSS are sampled after each cycle.
pub fn start_pod(ctx: &mut Ctx) -> Result<(), String> {
    let id = format!("s{}-pod{}", ctx.seed, ctx.cycle);
    let c = CSpec {
        id: id.clone(),
        args: sh("trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"),
        group: Some((id.clone(), true)),
        options: ctx.default_options(),
        ..Default::default()
    };
    let pid = ctx.run(&c).ok_or("the pod container did not start")?;
    let shims: Vec<i32> = ctx.host.shim_of(&id);
    let [shim] = shims[..] else {
        return Err(format!("shim daemons of the pod: {shims:?}"));
    };
    ctx.pod = Some(Pod { id, pid, shim });
    Ok(())
}

/// The bystanders: a solo container (its own shim) and a host `sleep` in a cgroup next to
/// the containers' cgroups, which the checks exempt; both checked after every cycle.
pub fn start_bystanders(ctx: &mut Ctx) -> Result<(), String> {
    let cg = format!(
        "/{}/{}byst-host-{}",
        ctx.ns(),
        ctx.host.id_prefix,
        std::process::id()
    );
    let cgroup = CgroupTree::new(&cg)?;
    let host = HostProcess::spawn_in(&cg)?;
    ctx.host.keep_cgroup = cg.rsplit('/').next().map(str::to_string);
    let id = format!("s{}-byst{}", ctx.seed, ctx.cycle);
    let c = CSpec {
        id: id.clone(),
        args: sh("while :; do sleep 3600 & wait $!; done"),
        options: ctx.default_options(),
        ..Default::default()
    };
    let pid = ctx.run(&c).ok_or("the bystander container did not start")?;
    let start = proc_start_time(pid as i32).ok_or("no start time of the bystander's init")?;
    ctx.bystanders = Some(Bystanders {
        id,
        pid,
        start,
        host,
        cgroup,
    });
    Ok(())
}

pub fn stop_bystanders(ctx: &mut Ctx) {
    let Some(b) = ctx.bystanders.take() else {
        return;
    };
    ctx.finish(&b.id);
    ctx.host.keep_cgroup = None;
}

fn stop_pod(ctx: &mut Ctx) {
    let Some(p) = ctx.pod.take() else { return };
    let r = ctx.kill(&p.id, "", libc::SIGTERM, false);
    if ctx
        .must("Tasks.Kill(SIGTERM) of the pod", &p.id, r)
        .is_some()
    {
        ctx.wait_status(&p.id, "", 10 * SEC, 0);
    }
    let r = ctx.delete_task(&p.id, ctx.bound("Tasks.Delete"));
    ctx.must("Tasks.Delete of the pod", &p.id, r);
    ctx.remove(&p.id);
}

/// Removes whatever an earlier, interrupted run left in the namespace (not a violation of
/// this run: it is said, and cleaned).
fn preclean(ctx: &mut Ctx) {
    let ns = ctx.ns();
    let tasks = ctx
        .rt
        .block_on(client::list_tasks(ctx.ch.clone(), ns.clone()))
        .unwrap_or_default();
    let cs = ctx
        .rt
        .block_on(client::list_containers(ctx.ch.clone(), ns.clone()))
        .unwrap_or_default();
    let ss = ctx
        .rt
        .block_on(client::list_snapshots(ctx.ch.clone(), ns))
        .unwrap_or_default();
    let ids: HashSet<String> = tasks.into_iter().map(|t| t.0).chain(cs).chain(ss).collect();
    if !ids.is_empty() {
        eprintln!(
            "robust-soak: removing {} leftover(s) of an earlier run: {ids:?}",
            ids.len()
        );
    }
    for id in ids {
        ctx.force_remove(&id);
    }
}

fn run(o: Opts) -> Result<usize, String> {
    let started_at = SystemTime::now();
    let stamp = {
        let s = started_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format_utc(s)
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!(
        "robust-soak: seed {} shim {} runtime {} cycles {} minutes {} faults {}",
        o.seed,
        o.shim.label(),
        o.runtime.name(),
        if o.cycles == 0 {
            "-".into()
        } else {
            o.cycles.to_string()
        },
        o.minutes.map(|m| m.to_string()).unwrap_or("-".into()),
        o.faults.join(",")
    );
    if o.runtime == Runtime::Runsc && !checks::runsc_works() {
        println!("robust-soak: SKIP: `runsc --platform=ptrace --network=none do true` fails here");
        return Ok(0);
    }
    let mut ctx = setup(&o)?;
    preclean(&mut ctx);
    ctx.resubscribe();
    if let Err(e) = start_pod(&mut ctx) {
        ctx.violation("harness", "-", format!("starting the pod: {e}"));
    }
    if let Err(e) = start_bystanders(&mut ctx) {
        ctx.violation("harness", "-", format!("starting the bystanders: {e}"));
    }
    let t0 = Instant::now();
    let weights: Vec<u64> = o.faults.iter().map(|f| faults::weight(f)).collect();
    let mut done = 0u64;
    let mut n = o.start_cycle;
    loop {
        if STOP.load(Ordering::SeqCst) {
            ctx.report.notes.push("interrupted by a signal".into());
            break;
        }
        if o.cycles > 0 && done >= o.cycles {
            break;
        }
        if o.minutes
            .is_some_and(|m| t0.elapsed().as_secs_f64() >= m * 60.0)
        {
            break;
        }
        let mut rng = Rng::for_cycle(o.seed, n);
        let fault = o.faults[rng.weighted(&weights)];
        ctx.cycle = n;
        ctx.fault = fault.to_string();
        let what = if faults::applicable(fault, o.shim, o.runtime) {
            ctx.report.injected(fault);
            fault
        } else {
            ctx.report.not_applicable(fault);
            ctx.fault = format!("{fault} (n/a: none)");
            "none"
        };
        let before = ctx.report.violations.len();
        let tc = Instant::now();
        let r = panic::catch_unwind(AssertUnwindSafe(|| faults::run(&mut ctx, what, &mut rng)));
        if let Err(p) = r {
            let m = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            ctx.violation("harness", "-", format!("the cycle panicked: {m}"));
        }
        let pod_id = ctx.pod.as_ref().map(|p| p.id.clone());
        let byst_id = ctx.bystanders.as_ref().map(|b| b.id.clone());
        let left: Vec<String> = ctx
            .live
            .iter()
            .filter(|id| Some(*id) != pod_id.as_ref() && Some(*id) != byst_id.as_ref())
            .cloned()
            .collect();
        for id in left {
            ctx.force_remove(&id);
        }
        checks::after_cycle(&mut ctx);
        ctx.host.repair_gate();
        done += 1;
        ctx.report.cycles = done;
        let v = ctx.report.violations.len() - before;
        eprintln!(
            "cycle {n} {}: {} in {:.1}s (violations: {v} now, {} in all; t+{:.0}s)",
            ctx.fault,
            if v == 0 { "ok" } else { "VIOLATIONS" },
            tc.elapsed().as_secs_f64(),
            ctx.report.violations.len(),
            t0.elapsed().as_secs_f64()
        );
        n += 1;
    }
    let elapsed = t0.elapsed();
    // the end: the pod goes, then everything must be gone
    ctx.cycle = n;
    ctx.fault = "end-of-run".into();
    checks::daemon_growth(&mut ctx);
    stop_bystanders(&mut ctx);
    stop_pod(&mut ctx);
    let left: Vec<String> = ctx.live.iter().cloned().collect();
    for id in left {
        ctx.force_remove(&id);
    }
    checks::after_cycle(&mut ctx);
    std::thread::sleep(2 * SEC);
    checks::exits(&mut ctx, true);
    ctx.host.repair_gate();
    ctx.report.notes.push(format!(
        "containerd restarts: {}; events seen: {}",
        ctx.host.restarts(),
        ctx.events.total()
    ));
    let versions = versions();
    let md = report::markdown(
        &ctx.report,
        &Header {
            shim: ctx.shim.binary_name(),
            runtime: o.runtime.name(),
            seed: o.seed,
            started: &stamp,
            elapsed,
            command: &command,
            versions: &versions,
        },
    );
    println!("\n{md}");
    let path = o.report.clone().unwrap_or_else(|| {
        repo_dir().join("results").join(format!(
            "soak-{}-{}-{}.md",
            ctx.shim.label(),
            o.runtime.name(),
            stamp.replace([':', '-'], "")
        ))
    });
    if let Some(d) = path.parent() {
        let _ = fs::create_dir_all(d);
    }
    match fs::write(&path, &md) {
        Ok(()) => eprintln!("robust-soak: summary written to {}", path.display()),
        Err(e) => eprintln!("robust-soak: cannot write {}: {e}", path.display()),
    }
    let _ = fs::remove_dir_all(&ctx.host.scratch);
    let nv = ctx.report.violations.len();
    eprintln!(
        "robust-soak: {} cycles, {nv} violation(s), seed {}",
        ctx.report.cycles, o.seed
    );
    Ok(nv)
}

fn versions() -> String {
    let v = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .unwrap_or_else(|| format!("{cmd}: ?"))
    };
    let shim = std::env::var("ROBUST_IT_SHIM_BIN").unwrap_or_default();
    let sum = v("sha256sum", &[&shim]);
    format!(
        "{}; {}; {}; kernel {}; our shim {} sha256 {}",
        v("containerd", &["--version"]),
        v("runc", &["--version"]),
        v("runsc", &["--version"]),
        v("uname", &["-r"]),
        shim,
        sum.get(..12).unwrap_or("?")
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days).
fn format_utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
