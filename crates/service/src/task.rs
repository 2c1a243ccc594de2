//! containerd's Task API (v2 and v3 share it) over the service's verbs:
//! each call logged with its outcome and time, and a panic while serving
//! one failing that call alone.

use std::time::Instant;

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use robust_cleanup::logfmt::quote;
use ttrpc::TtrpcContext;

use crate::error::{Error, Result};
use crate::Service;

/// Log one RPC: method, container, exec, outcome and time taken.
fn traced<T>(
    method: &str,
    id: &str,
    exec_id: &str,
    f: impl FnOnce() -> Result<T>,
) -> ttrpc::Result<T> {
    let started = Instant::now();
    // A panic while serving one request fails that request (INTERNAL) and
    // leaves the worker, the daemon and the other containers serving.
    let res = crate::error::contain(f).unwrap_or_else(|why| {
        log::error!(
            "msg=\"shim panicked while serving a request; the daemon keeps serving\" method={method} id={id} exec_id={exec_id} panic={q_panic}",
            q_panic = quote(&why)
        );
        Err(Error::Internal(format!(
            "{method} of container {id}: the shim failed internally: {why}"
        )))
    });
    match &res {
        Ok(_) => log::debug!(
            "msg=\"rpc\" method={method} id={id} exec_id={exec_id} took={:?}",
            started.elapsed()
        ),
        // "No such container or process" answers a question (containerd
        // asks about a task it is not sure of; `ctr task ls` races a
        // create): an answer, not an incident for an operator.
        Err(e) => log::log!(
            if matches!(e, Error::NotFound(_)) {
                log::Level::Info
            } else {
                log::Level::Warn
            },
            "msg=\"rpc failed\" method={method} id={id} exec_id={exec_id} code={:?} error={q_error}",
            e.code(),
            q_error = quote(e)
        ),
    }
    res.map_err(Into::into)
}

impl containerd_shim_protos::Task for Service {
    fn state(&self, _: &TtrpcContext, r: api::StateRequest) -> ttrpc::Result<api::StateResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("State", &id, &eid, || self.do_state(r))
    }
    fn create(
        &self,
        _: &TtrpcContext,
        r: api::CreateTaskRequest,
    ) -> ttrpc::Result<api::CreateTaskResponse> {
        let id = r.id.clone();
        traced("Create", &id, "", || self.do_create(r))
    }
    fn start(&self, _: &TtrpcContext, r: api::StartRequest) -> ttrpc::Result<api::StartResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Start", &id, &eid, || self.do_start(r))
    }
    fn delete(
        &self,
        _: &TtrpcContext,
        r: api::DeleteRequest,
    ) -> ttrpc::Result<api::DeleteResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Delete", &id, &eid, || self.do_delete(r))
    }
    fn pids(&self, _: &TtrpcContext, r: api::PidsRequest) -> ttrpc::Result<api::PidsResponse> {
        let id = r.id.clone();
        traced("Pids", &id, "", || self.do_pids(r))
    }
    fn pause(&self, _: &TtrpcContext, r: api::PauseRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Pause", &id, "", || self.do_pause(r).map(|_| Empty::new()))
    }
    fn resume(&self, _: &TtrpcContext, r: api::ResumeRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Resume", &id, "", || {
            self.do_resume(r).map(|_| Empty::new())
        })
    }
    fn checkpoint(&self, _: &TtrpcContext, r: api::CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        traced("Checkpoint", &r.id, "", || {
            Err(Error::Unimplemented(format!(
                "container {}: checkpoint is not supported by containerd-shim-robust-v2",
                r.id
            )))
        })
    }
    fn kill(&self, _: &TtrpcContext, r: api::KillRequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Kill", &id, &eid, || self.do_kill(r).map(|_| Empty::new()))
    }
    fn exec(&self, _: &TtrpcContext, r: api::ExecProcessRequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Exec", &id, &eid, || self.do_exec(r).map(|_| Empty::new()))
    }
    fn resize_pty(&self, _: &TtrpcContext, r: api::ResizePtyRequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("ResizePty", &id, &eid, || {
            self.do_resize(r).map(|_| Empty::new())
        })
    }
    fn close_io(&self, _: &TtrpcContext, r: api::CloseIORequest) -> ttrpc::Result<Empty> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("CloseIO", &id, &eid, || {
            self.do_close_io(r).map(|_| Empty::new())
        })
    }
    fn update(&self, _: &TtrpcContext, r: api::UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Update", &id, "", || {
            self.do_update(r).map(|_| Empty::new())
        })
    }
    fn wait(&self, _: &TtrpcContext, r: api::WaitRequest) -> ttrpc::Result<api::WaitResponse> {
        let (id, eid) = (r.id.clone(), r.exec_id.clone());
        traced("Wait", &id, &eid, || self.do_wait(r))
    }
    fn stats(&self, _: &TtrpcContext, r: api::StatsRequest) -> ttrpc::Result<api::StatsResponse> {
        let id = r.id.clone();
        traced("Stats", &id, "", || self.do_stats(r))
    }
    fn connect(
        &self,
        _: &TtrpcContext,
        r: api::ConnectRequest,
    ) -> ttrpc::Result<api::ConnectResponse> {
        let id = r.id.clone();
        traced("Connect", &id, "", || self.do_connect(r))
    }
    fn shutdown(&self, _: &TtrpcContext, r: api::ShutdownRequest) -> ttrpc::Result<Empty> {
        let id = r.id.clone();
        traced("Shutdown", &id, "", || {
            self.do_shutdown(r).map(|_| Empty::new())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_request_fails_alone_with_internal() {
        let r: ttrpc::Result<()> = traced("State", "c1", "", || panic!("index out of bounds"));
        match r {
            Err(ttrpc::Error::RpcStatus(st)) => {
                assert_eq!(st.code(), ttrpc::Code::INTERNAL);
                assert!(
                    st.message().contains("State of container c1"),
                    "{}",
                    st.message()
                );
                assert!(
                    st.message().contains("index out of bounds"),
                    "{}",
                    st.message()
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // the same thread serves the next request
        let ok: ttrpc::Result<u32> = traced("State", "c1", "", || Ok(7));
        assert_eq!(ok.unwrap(), 7);
    }
}
