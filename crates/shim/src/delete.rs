//! `delete`: what containerd runs in the bundle after a shim died
//! (cleanupAfterDeadShim, SIGKILLed after 5 s). The work is the tolerant
//! routine of `robust_cleanup::delete`; this prints its DeleteResponse on
//! stdout, or, when something really remains, an error listing it and a
//! non-zero exit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;
use robust_cleanup::{delete_bundle, DeleteRequest};
use robust_reaper::Reaper;

use crate::args::Args;

pub fn run(args: Args) -> Result<()> {
    let bundle_dir = if args.bundle.is_empty() {
        std::env::current_dir().context("bundle: current directory")?
    } else {
        PathBuf::from(&args.bundle)
    };
    let (reaper, exits) = Reaper::start().context("start reaper")?;
    std::thread::spawn(move || for _ in exits {});
    let mut req = DeleteRequest::new(&args.namespace, &args.id, &bundle_dir);
    if !args.address.is_empty() {
        // The group's socket, computed as `start` placed it: the `address`
        // file naming it may be gone, and a stale socket left at that path
        // would be in the way of the group's next `start`.
        let group = robust_bundle::group_of(&bundle_dir, &args.id);
        let sock = crate::start::socket_path(
            std::path::Path::new(crate::start::DEFAULT_SOCKET_DIR),
            &args.address,
            &args.namespace,
            &group,
        );
        req.sockets.push(format!("unix://{}", sock.display()));
    }
    let outcome = delete_bundle(&req, &reaper)?;
    if let Some(e) = outcome.error_message() {
        anyhow::bail!(e);
    }
    let mut r = DeleteResponse::new();
    r.pid = outcome.pid;
    r.exit_status = outcome.exit_status;
    r.exited_at = robust_service::events::timestamp(outcome.exited_at);
    let bytes = r.write_to_bytes().context("encode delete response")?;
    std::io::stdout()
        .write_all(&bytes)
        .context("write delete response")?;
    Ok(())
}
