//! The other Task verbs: `Pause`, `Resume`, `Update`, `Stats`, `CloseIO`,
//! `ResizePty`, `Connect`, `Shutdown`.

use containerd_shim_protos::api;
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::MessageField;

use crate::error::{Error, Result};
use crate::events;
use crate::process::Status;
use crate::Service;

impl Service {
    pub fn do_pause(&self, req: api::PauseRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        c.runtime.pause(&c.id)?;
        c.init
            .lock()?
            .phase
            .pause()
            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
        let mut m = ev::TaskPaused::new();
        m.container_id = c.id.clone();
        self.publish(&c.config, events::task_paused(&m));
        Ok(())
    }

    pub fn do_resume(&self, req: api::ResumeRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        c.runtime.resume(&c.id)?;
        c.init.lock()?.phase.resume();
        let mut m = ev::TaskResumed::new();
        m.container_id = c.id.clone();
        self.publish(&c.config, events::task_resumed(&m));
        Ok(())
    }

    pub fn do_update(&self, req: api::UpdateTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let res = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if res.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "container {}: no resources to update",
                c.id
            )));
        }
        serde_json::from_slice::<serde_json::Value>(&res).map_err(|e| {
            Error::InvalidArgument(format!("container {}: resources are not JSON: {e}", c.id))
        })?;
        c.runtime.update(&c.id, &res)?;
        Ok(())
    }

    /// The runtime's own statistics when it keeps them (the containers of a
    /// pod sandbox share its cgroup), else the init's cgroup's.
    pub fn do_stats(&self, req: api::StatsRequest) -> Result<api::StatsResponse> {
        let c = self.container(&req.id)?;
        let metrics = match c.runtime.stats(&c.id) {
            Some(s) => robust_cgroups::Metrics::V1(crate::runtime_stats::to_v1_metrics(&s?)),
            None => {
                let cg = (self.inner.cgroup_of)(c.init.pid())
                    .map_err(|e| Error::NotFound(format!("container {}: cgroup: {e}", c.id)))?;
                cg.metrics()
                    .map_err(|e| Error::Other(format!("container {}: stats: {e}", c.id)))?
            }
        };
        let mut r = api::StatsResponse::new();
        r.stats = MessageField::some(metrics.to_any());
        Ok(r)
    }

    pub fn do_close_io(&self, req: api::CloseIORequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if req.stdin {
            if let Some(io) = p.io.lock().map_err(|_| Error::poisoned("io"))?.as_ref() {
                io.close_stdin();
            }
        }
        Ok(())
    }

    pub fn do_resize(&self, req: api::ResizePtyRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        // As containerd's runc shim answers: an exec that exited cannot be
        // resized; any other process without a terminal (it never had one,
        // or it was released at the exit) is resized as a no-op, since
        // clients resize right after start and race a quick exit.
        if !req.exec_id.is_empty() && p.status() == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {} exec {}: cannot resize a stopped process",
                c.id, req.exec_id
            )));
        }
        let guard = p.io.lock().map_err(|_| Error::poisoned("io"))?;
        if let Some(io) = guard.as_ref() {
            io.resize(req.width, req.height)?;
        }
        Ok(())
    }

    pub fn do_connect(&self, req: api::ConnectRequest) -> Result<api::ConnectResponse> {
        let mut r = api::ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.version = env!("CARGO_PKG_VERSION").to_string();
        if let Ok(c) = self.container(&req.id) {
            r.task_pid = c.init.pid() as u32;
        }
        Ok(r)
    }

    pub fn do_shutdown(&self, req: api::ShutdownRequest) -> Result<()> {
        if req.now {
            // containerd wants the daemon gone now: stop what it still runs.
            self.stop_all();
        } else if self.container_count() > 0 {
            return Ok(());
        }
        if let Ok(tx) = self.inner.shutdown.lock() {
            let _ = tx.send(());
        }
        Ok(())
    }
}
