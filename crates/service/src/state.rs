//! `State`, `Wait` and `Pids`: answered from the shim's own process table
//! (docs/events.md, "State and Wait meanwhile"), with one check of the
//! truth behind it (`check_gone`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::types::task::{ProcessInfo, Status as PbStatus};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events;
use crate::process::{Process, Status};
use crate::Service;

impl Service {
    pub fn do_state(&self, req: api::StateRequest) -> Result<api::StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        self.check_gone(&c, &p);
        let st = p.lock()?;
        let mut r = api::StateResponse::new();
        r.id = if req.exec_id.is_empty() {
            c.id.clone()
        } else {
            req.exec_id.clone()
        };
        r.bundle = c.bundle.display().to_string();
        r.pid = st.pid as u32;
        r.status = match st.status() {
            Status::Created => PbStatus::CREATED,
            Status::Running => PbStatus::RUNNING,
            Status::Paused => PbStatus::PAUSED,
            Status::Stopped => PbStatus::STOPPED,
        }
        .into();
        r.stdin = p.stdio.stdin.clone();
        r.stdout = p.stdio.stdout.clone();
        r.stderr = p.stdio.stderr.clone();
        r.terminal = p.stdio.terminal;
        if let Some((code, at)) = st.exited() {
            r.exit_status = code;
            r.exited_at = events::timestamp(at);
        }
        r.exec_id = req.exec_id.clone();
        Ok(r)
    }

    /// Truth over cache: a process we believe alive whose pid no longer
    /// exists, and whose exit never reached us, is reported stopped (255)
    /// and its exit published, instead of answering RUNNING forever.
    fn check_gone(&self, c: &Container, p: &Arc<Process>) {
        let pid = match p.lock() {
            Ok(st) if st.exited().is_none() && st.pid > 0 && !st.phase.is_starting() => st.pid,
            _ => return,
        };
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            != Err(nix::errno::Errno::ESRCH)
        {
            return;
        }
        // The reaper may be delivering it right now.
        if p.wait_timeout(Duration::from_millis(500)).is_some() {
            return;
        }
        log::warn!(
            "msg=\"process is gone but its exit was never seen; reporting exit 255\" id={} exec_id={} pid={pid}",
            c.id,
            p.exec_id
        );
        self.exit_now(c, p, 255);
        self.unregister_pid(pid);
    }

    pub fn do_wait(&self, req: api::WaitRequest) -> Result<api::WaitResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        drop(c);
        let (code, at) = p.wait()?;
        let mut r = api::WaitResponse::new();
        r.exit_status = code;
        r.exited_at = events::timestamp(at);
        Ok(r)
    }

    pub fn do_pids(&self, req: api::PidsRequest) -> Result<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let stopped = c.init.status() == Status::Stopped;
        let mut pids = match c.runtime.ps(&c.id) {
            Ok(p) => p,
            Err(_) if stopped => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        // A stopped init whose task containerd has not deleted yet is still
        // listed. containerd 1.7+ reloading its shims after a restart takes a
        // shim that lists no process for a leaked one and deletes it without
        // an exit event (ShimManager.loadShim): CRI would then report exit
        // 255 "Unknown" instead of the status we hold (docs/events.md).
        let init_pid = c.init.pid();
        if pids.is_empty() && stopped && init_pid > 0 {
            pids.push(init_pid);
        }
        let execs: HashMap<i32, String> = c
            .execs
            .lock()
            .map_err(|_| Error::poisoned("execs"))?
            .values()
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        let mut resp = api::PidsResponse::new();
        for pid in pids {
            let mut info = ProcessInfo::new();
            info.pid = pid as u32;
            if let Some(eid) = execs.get(&pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = eid.clone();
                let mut any = Any::new();
                any.type_url = "containerd.runc.v1.ProcessDetails".into();
                any.value = d.write_to_bytes().unwrap_or_default();
                info.info = MessageField::some(any);
            }
            resp.processes.push(info);
        }
        Ok(resp)
    }
}
