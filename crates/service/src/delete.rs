//! `Delete` of an exec or of the container: the runtime delete by the
//! shared policy (`robust_runtime::delete`, what the family leaves behind
//! included), the rootfs unmounted, the container forgotten, TaskDelete.

use std::time::SystemTime;

use containerd_shim_protos::api;
use containerd_shim_protos::events::task as ev;
use robust_cleanup::mount;
use robust_runtime::delete::{self, DeleteHow};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events;
use crate::process::{State, Status};
use crate::Service;

impl Service {
    pub fn do_delete(&self, req: api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        if !req.exec_id.is_empty() {
            return self.delete_exec(&c, &req.exec_id);
        }
        let status = c.init.status();
        if status == Status::Running || status == Status::Paused {
            return Err(Error::FailedPrecondition(format!(
                "container {}: cannot delete a running task; kill it first",
                c.id
            )));
        }
        // A created container is deleted by force (its init waits to be
        // started); a stopped one plainly, forced if that fails. A hung
        // runtime already used its whole deadline: the caller gets the
        // deadline error and may retry.
        let how = DeleteHow {
            force: status == Status::Created,
            retry_timeout: false,
        };
        delete::delete(c.runtime.as_ref(), &c.id, &c.bundle, how)?;
        self.unmount_rootfs(&c)?;
        let resp = delete_response(&*c.init.lock()?);
        self.forget(&c);
        let mut m = ev::TaskDelete::new();
        m.container_id = c.id.clone();
        m.id = c.id.clone();
        m.pid = resp.pid;
        m.exit_status = resp.exit_status;
        m.exited_at = resp.exited_at.clone();
        self.publish(&c.config, events::task_delete(&m));
        log::info!("msg=\"container deleted\" id={}", c.id);
        Ok(resp)
    }

    fn delete_exec(&self, c: &Container, eid: &str) -> Result<api::DeleteResponse> {
        let p = c.process(eid)?;
        let resp = {
            let st = p.lock()?;
            if st.status() != Status::Stopped && st.status() != Status::Created {
                return Err(Error::FailedPrecondition(format!(
                    "container {} exec {eid}: cannot delete a running process",
                    c.id
                )));
            }
            delete_response(&st)
        };
        self.unregister_pid(p.pid());
        c.execs
            .lock()
            .map_err(|_| Error::poisoned("execs"))?
            .remove(eid);
        Ok(resp)
    }

    /// Unmount the rootfs the shim mounted. Holders the runtime says keep
    /// it for as long as they live (a pod's sandbox holding an app
    /// container's rootfs) cannot be waited out: it is detached at once.
    fn unmount_rootfs(&self, c: &Container) -> Result<()> {
        let Some(r) = &c.rootfs else {
            return Ok(());
        };
        let subject = c.subject();
        let held = |h: &[(i32, String)]| c.runtime.rootfs_held_for_life(&subject, h);
        let lasting: Option<mount::Lasting<'_>> =
            (!c.placement.is_own()).then_some(&held as mount::Lasting<'_>);
        mount::unmount_all_lasting(r, c.config.timeouts.unmount, &c.id, lasting)
            .map_err(|e| Error::Io(format!("container {}: {e}", c.id)))?;
        Ok(())
    }
}

fn delete_response(st: &State) -> api::DeleteResponse {
    let mut r = api::DeleteResponse::new();
    r.pid = st.pid.max(0) as u32;
    let (code, at) = st.exited().unwrap_or((0, SystemTime::now()));
    r.exit_status = code;
    r.exited_at = events::timestamp(at);
    r
}
