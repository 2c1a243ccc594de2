//! `Start` of the init or of an exec: the phase goes to starting, so that
//! an exit that races the start is published after the start event
//! (`order`, rule 1).

use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim_protos::api;
use robust_bundle as bundle;
use robust_runtime::ExecOpts;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::order::Exit;
use crate::process::Process;
use crate::stdio;
use crate::Service;

impl Service {
    pub fn do_start(&self, req: api::StartRequest) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        p.lock()?.phase.begin_start().map_err(|e| {
            Error::FailedPrecondition(format!(
                "container {} exec {:?}: cannot start a process in state {:?}",
                c.id, req.exec_id, e.from
            ))
        })?;
        let res = if req.exec_id.is_empty() {
            // The stdio kept for the start, if the runtime takes it there.
            let kept = c
                .init
                .io
                .lock()
                .ok()
                .and_then(|io| io.as_ref().and_then(|io| io.take_for_start()));
            let r = c.runtime.start(&c.id, kept).map_err(Error::from);
            if r.is_ok() && c.exit_source.waited {
                self.watch_exit_by_wait(&c);
            }
            r
        } else {
            self.start_exec(&c, &p)
        };
        let mut st = p.lock()?;
        // A failed exec start is over: nothing to wait for. An init whose
        // start failed stays created.
        let failed_exit = (!req.exec_id.is_empty()).then(|| Exit {
            pid: st.pid,
            code: 255,
            at: SystemTime::now(),
        });
        let publish = st.phase.end_start(res.is_ok(), failed_exit);
        self.publish_all(&c, &req.exec_id, st.pid, &publish);
        let pid = st.pid;
        drop(st);
        if let Err(e) = res {
            if !req.exec_id.is_empty() {
                p.notify_exit();
            }
            return Err(e);
        }
        let mut resp = api::StartResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    /// The runtime's exec of a created exec process, its stdio, and its pid
    /// registered for its exit.
    fn start_exec(&self, c: &Container, p: &Arc<Process>) -> Result<()> {
        let eid = &p.exec_id;
        let spec_name = format!(".{eid}.process.json");
        let spec_path = c.bundle.join(&spec_name);
        bundle::write_atomic(&c.bundle, &spec_name, &p.spec).map_err(|e| {
            Error::Io(format!(
                "container {} exec {eid}: write process spec: {e}",
                c.id
            ))
        })?;
        let pid_file = c.pid_file(eid);
        let inside = c.runtime.exec_pid_inside(eid);
        let inside_file = inside.as_ref().map(|n| c.bundle.join(n));
        let mut prepared = stdio::prepare(&p.stdio, &c.id, eid, c.config.timeouts.io_drain)?;
        let console_path = prepared.console.as_ref().map(|s| s.path().to_path_buf());
        let opts = ExecOpts {
            process_json: &spec_path,
            pid_file: &pid_file,
            internal_pid_file: inside_file.as_deref(),
            console_socket: console_path.as_deref(),
            stdio: std::mem::take(&mut prepared.runtime),
        };
        let res = c.runtime.exec(&c.id, opts);
        let _ = std::fs::remove_file(&spec_path);
        res?;
        let io = prepared.finish(&p.stdio, &c.id, c.config.timeouts.exec)?;
        let pid = bundle::read_pid(&c.bundle, &format!("{eid}.pid")).ok_or_else(|| {
            Error::Other(format!(
                "container {} exec {eid}: runtime exec left no valid pid file",
                c.id
            ))
        })?;
        let _ = std::fs::remove_file(&pid_file);
        if let Some(name) = &inside {
            record_pid_inside(c, p, name);
        }
        *p.io.lock().map_err(|_| Error::poisoned("io"))? = Some(io);
        p.lock()?.pid = pid;
        self.register_pid(pid, &c.id, eid);
        Ok(())
    }
}

/// After the runtime's exec: remember the exec's pid inside the sandbox
/// (from the file `name` of the bundle) and remove the file.
fn record_pid_inside(c: &Container, p: &Process, name: &str) {
    match bundle::read_pid(&c.bundle, name) {
        Some(pid) => p.pid_inside.store(pid, std::sync::atomic::Ordering::Release),
        None => log::warn!(
            "msg=\"the runtime's exec left no pid of the process in its sandbox; a kill of this exec will only end its host process\" id={} exec_id={}",
            c.id,
            p.exec_id
        ),
    }
    let _ = std::fs::remove_file(c.bundle.join(name));
}
