//! `delete`: what containerd runs in the bundle after a shim died. It
//! force-deletes the container in the runtime, unmounts the rootfs and
//! prints a DeleteResponse, tolerating missing bundle files.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;
use robust_cleanup::{bundle, mount};
use robust_config::Config;
use robust_reaper::Reaper;

use crate::args::Args;

pub fn run(args: Args) -> Result<()> {
    let bundle_dir = if args.bundle.is_empty() {
        std::env::current_dir().context("bundle: current directory")?
    } else {
        PathBuf::from(&args.bundle)
    };
    robust_config::ids::validate_namespace(&args.namespace)?;
    robust_config::ids::validate_container_id(&args.id)?;
    let id = &args.id;

    let opts = bundle_dir.join("options.json");
    let mut cfg = match Config::load_options_json(&opts) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("msg=\"options.json unusable; using defaults\" id={id} error=\"{e}\"");
            Config::default()
        }
    };
    match bundle::read_text(&bundle_dir, "runtime") {
        Some(bin) if !bin.is_empty() => cfg.runtime.binary = bin,
        _ => log::warn!(
            "msg=\"runtime file missing; using the configured binary\" id={id} binary={}",
            cfg.runtime.binary
        ),
    }
    let (reaper, exits) = Reaper::start().context("start reaper")?;
    std::thread::spawn(move || for _ in exits {});
    let runc = robust_service::container::runc_from_config(&cfg, &args.namespace, reaper)?;
    let mut left = Vec::new();
    if let Err(e) = runc.delete(id, true) {
        if e.kind() == robust_runtime::ErrorKind::NotFound {
            log::info!("msg=\"container already gone from the runtime\" id={id}");
        } else {
            log::warn!("msg=\"runtime force delete failed\" id={id} error=\"{e}\"");
            left.push(format!("runtime state: {e}"));
        }
    }
    let rootfs = bundle_dir.join("rootfs");
    if let Err(e) = mount::unmount_all(&rootfs, cfg.timeouts.unmount, id) {
        left.push(format!("mount: {e}"));
    }
    let pid = bundle::read_pid(&bundle_dir, "init.pid").unwrap_or(0);
    if !left.is_empty() {
        anyhow::bail!("container {id}: cleanup incomplete: {}", left.join("; "));
    }
    let mut r = DeleteResponse::new();
    r.pid = pid as u32;
    r.exit_status = 128 + libc::SIGKILL as u32;
    r.exited_at = robust_service::events::timestamp(SystemTime::now());
    let bytes = r.write_to_bytes().context("encode delete response")?;
    std::io::stdout()
        .write_all(&bytes)
        .context("write delete response")?;
    Ok(())
}
