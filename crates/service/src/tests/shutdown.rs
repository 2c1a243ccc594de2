//! The runtime-delete policy is the same on every path: the Task Delete
//! and the daemon's shutdown both run it, what the family leaves behind
//! included.

use std::time::Duration;

use containerd_shim_protos::api;
use robust_runtime::fake::Step;

use super::{eventually, Harness};

const T: Duration = Duration::from_secs(5);

fn verbs(h: &Harness, id: &str) -> Vec<String> {
    h.fake
        .calls()
        .into_iter()
        .filter(|c| c.id == id && c.verb != "state")
        .map(|c| format!("{}{}", c.verb, if c.flag { "!" } else { "" }))
        .collect()
}

/// SIGTERM to the daemon (`stop_all`) deletes each container by the shared
/// policy: its runtime's leftovers are removed (`after_delete`). Its own
/// copy of the policy missed that, so a sandbox runtime's daemon shutdown
/// left its gofers and lock files (runsc).
#[test]
fn shutdown_deletes_by_the_shared_policy() {
    let h = Harness::new();
    h.run("c1");
    let reports = h.svc.stop_all();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].confirmed, "{:?}", reports[0]);
    assert_eq!(
        verbs(&h, "c1"),
        ["create", "start", "kill", "delete!", "after_delete!"]
    );
    assert_eq!(h.svc.container_count(), 0);
}

/// The Task Delete runs the same policy: a failure is retried by force,
/// then the family's leftovers go.
#[test]
fn delete_retries_by_force_then_removes_the_leftovers() {
    let h = Harness::new();
    h.run("c1");
    let c = h.svc.container("c1").unwrap();
    h.fake.exit("c1", "", 0);
    assert!(eventually(T, || c
        .init
        .wait_timeout(Duration::ZERO)
        .is_some()));
    h.fake
        .script("delete", "c1", Step::Fail("device busy".into()));
    let mut r = api::DeleteRequest::new();
    r.id = "c1".into();
    h.svc.do_delete(r.clone()).unwrap();
    assert_eq!(
        verbs(&h, "c1"),
        ["create", "start", "delete", "delete!", "after_delete!"]
    );
    // A deadline is not retried: the caller gets it (and may retry).
    h.run("c2");
    let c = h.svc.container("c2").unwrap();
    h.fake.exit("c2", "", 0);
    assert!(eventually(T, || c
        .init
        .wait_timeout(Duration::ZERO)
        .is_some()));
    h.fake.script("delete", "c2", Step::Timeout);
    r.id = "c2".into();
    let e = h.svc.do_delete(r).unwrap_err();
    assert_eq!(e.code(), ttrpc::Code::DEADLINE_EXCEEDED, "{e}");
    assert_eq!(
        verbs(&h, "c2"),
        ["create", "start", "delete", "after_delete"]
    );
}
