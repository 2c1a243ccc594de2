//! `Exec`: a new process of the container, created but not started (its
//! `Start` runs it).

use std::sync::Arc;

use containerd_shim_protos::api;
use containerd_shim_protos::events::task as ev;

use crate::error::{Error, Result};
use crate::events;
use crate::process::{Process, Status};
use crate::stdio::StdioPaths;
use crate::Service;

impl Service {
    pub fn do_exec(&self, req: api::ExecProcessRequest) -> Result<()> {
        robust_config::ids::validate_exec_id(&req.exec_id)?;
        let c = self.container(&req.id)?;
        if c.init.status() == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {}: cannot exec in a stopped container",
                c.id
            )));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if spec.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "container {} exec {}: no process spec",
                c.id, req.exec_id
            )));
        }
        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        {
            let mut execs = c.execs.lock().map_err(|_| Error::poisoned("execs"))?;
            if execs.contains_key(&req.exec_id) {
                return Err(Error::AlreadyExists(format!(
                    "container {} exec {} already exists",
                    c.id, req.exec_id
                )));
            }
            execs.insert(
                req.exec_id.clone(),
                Arc::new(Process::new(&req.exec_id, paths, spec)),
            );
        }
        let mut m = ev::TaskExecAdded::new();
        m.container_id = c.id.clone();
        m.exec_id = req.exec_id.clone();
        self.publish(&c.config, events::task_exec_added(&m));
        Ok(())
    }
}
