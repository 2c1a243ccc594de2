//! Exits and OOMs: each report goes through the rules of [`crate::order`]
//! under the process's lock, and what they give is published there, in
//! that order.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use containerd_shim_protos::events::task as ev;
use robust_cleanup::logfmt::quote;
use robust_reaper::Exit as Reaped;

use crate::container::Container;
use crate::events;
use crate::order::{self, Arrival, Exit, Publish};
use crate::process::Process;
use crate::Service;

impl Service {
    /// A reaped (or waited-for) exit of the process `(cid, eid)`.
    pub(crate) fn deliver_exit(&self, cid: &str, eid: &str, reaped: Reaped) {
        let Ok(c) = self.container(cid) else { return };
        let Ok(p) = c.process(eid) else { return };
        let exit = Exit {
            pid: reaped.pid,
            code: reaped.status.code(),
            at: reaped.at,
        };
        log::info!(
            "msg=\"process exited\" id={cid} exec_id={eid} pid={} status={}",
            exit.pid,
            exit.code
        );
        if eid.is_empty() {
            self.init_exited(&c, exit);
        } else {
            self.exec_exited(&c, &p, exit);
        }
    }

    fn init_exited(&self, c: &Arc<Container>, exit: Exit) {
        let held = {
            let Ok(mut st) = c.init.lock() else { return };
            let execs_live = !c.live_execs().is_empty();
            let st = &mut *st;
            let out = order::init_exit(
                &mut st.phase,
                &mut st.oom_seen,
                exit,
                execs_live,
                c.oom_count_at_exit(exit.code),
            );
            if !out.recorded {
                return;
            }
            // Before the exit is published, as containerd's runc shim does.
            self.kill_rest_after_init_exit(c);
            self.publish_all(c, "", st.pid, &out.publish);
            out.held
        };
        c.init.notify_exit();
        // The output copies end at EOF or `io_drain` from now: a background
        // child holding stdout delays neither this exit nor the client.
        c.init.finish_io();
        if held {
            self.release_held_exit_later(c);
        }
    }

    fn exec_exited(&self, c: &Arc<Container>, p: &Arc<Process>, exit: Exit) {
        {
            let Ok(mut st) = p.lock() else { return };
            let (arrival, publish) = order::exec_exit(&mut st.phase, exit);
            if arrival == Arrival::Again {
                return;
            }
            if let Some(e) = publish {
                self.publish_all(c, &p.exec_id, st.pid, &[e]);
            }
        }
        p.notify_exit();
        p.finish_io();
        if c.live_execs().is_empty() {
            self.release_held_exit(c);
        }
    }

    /// Publish the init's held exit, once.
    fn release_held_exit(&self, c: &Container) {
        if let Ok(mut st) = c.init.lock() {
            if let Some(e) = order::release_held(&mut st.phase) {
                self.publish_all(c, "", st.pid, &[e]);
            }
        }
    }

    /// The init exited before its execs (in a shared pid namespace, which
    /// `kill_rest_after_init_exit` already killed): publish the init's exit
    /// after theirs, within `kill_grace` at most.
    fn release_held_exit_later(&self, c: &Arc<Container>) {
        let svc = self.clone();
        let c2 = c.clone();
        let spawned = std::thread::Builder::new()
            .name("held-exit".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let grace = c2.config.timeouts.kill_grace;
                let deadline = Instant::now() + grace;
                for p in c2.live_execs() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if p.wait_timeout(left).is_none() {
                        log::warn!(
                            "msg=\"exec still running after its init exited; publishing the init exit anyway\" id={} exec_id={} grace={grace:?}",
                            c2.id,
                            p.exec_id
                        );
                    }
                }
                svc.release_held_exit(&c2);
            });
        if spawned.is_err() {
            self.release_held_exit(c);
        }
    }

    /// The OOM watcher fired for `c`: a TaskOOM when its OOM-kill count
    /// went up since the last one published (or there is no count).
    pub(crate) fn oom_watched(&self, c: &Container) {
        if let Ok(mut st) = c.init.lock() {
            if order::oom_watched(&mut st.oom_seen, c.oom_count()) {
                self.publish_all(c, "", st.pid, &[Publish::Oom]);
            }
        }
    }

    /// An exit the shim decides itself (a process found gone, an exit
    /// assumed after every escalation step): recorded and published under
    /// the process's lock unless its start is in flight (the starter then
    /// publishes it), and its waiters and output released.
    pub(crate) fn exit_now(&self, c: &Container, p: &Process, code: u32) {
        if let Ok(mut st) = p.lock() {
            let exit = Exit {
                pid: st.pid,
                code,
                at: SystemTime::now(),
            };
            if let Some(e) = st.phase.exit_now(exit) {
                self.publish_all(c, &p.exec_id, st.pid, &[e]);
            }
        }
        p.notify_exit();
        p.finish_io();
    }

    /// Publish what the rules gave for the process `exec_id` (empty: the
    /// init) of `c`, whose pid is `pid`, in order. Called under that
    /// process's lock.
    pub(crate) fn publish_all(&self, c: &Container, exec_id: &str, pid: i32, what: &[Publish]) {
        for w in what {
            let e = match w {
                Publish::Started if exec_id.is_empty() => {
                    let mut m = ev::TaskStart::new();
                    m.container_id = c.id.clone();
                    m.pid = pid as u32;
                    events::task_start(&m)
                }
                Publish::Started => {
                    let mut m = ev::TaskExecStarted::new();
                    m.container_id = c.id.clone();
                    m.exec_id = exec_id.to_string();
                    m.pid = pid as u32;
                    events::task_exec_started(&m)
                }
                Publish::Oom => {
                    let mut m = ev::TaskOOM::new();
                    m.container_id = c.id.clone();
                    events::task_oom(&m)
                }
                Publish::Exit(x) => {
                    let mut m = ev::TaskExit::new();
                    m.container_id = c.id.clone();
                    m.id = if exec_id.is_empty() {
                        c.id.clone()
                    } else {
                        exec_id.to_string()
                    };
                    m.pid = x.pid as u32;
                    m.exit_status = x.code;
                    m.exited_at = events::timestamp(x.at);
                    events::task_exit(&m)
                }
            };
            self.publish(&c.config, e);
        }
    }

    /// Learn the container's exit from its runtime's wait, in its own
    /// thread for as long as the container lives.
    pub(crate) fn watch_exit_by_wait(&self, container: &Arc<Container>) {
        let svc = self.clone();
        let c = container.clone();
        let spawned = std::thread::Builder::new()
            .name("runtime-wait".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let known = || c.init.wait_timeout(std::time::Duration::ZERO).is_some();
                if let Some(status) = c.runtime.wait_exit(&c.id, &known) {
                    let exit = Reaped {
                        pid: c.init.pid(),
                        status,
                        at: SystemTime::now(),
                    };
                    svc.deliver_exit(&c.id, "", exit);
                }
            });
        if let Err(e) = spawned {
            log::error!(
                "msg=\"cannot start the runtime's wait thread\" id={} error={}",
                container.id,
                quote(&e)
            );
        }
    }
}
