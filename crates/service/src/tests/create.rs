//! Create: the id is reserved before anything else happens.

use std::time::Duration;

use robust_runtime::fake::{Gate, Step};

use super::Harness;
use crate::Error;

const T: Duration = Duration::from_secs(5);

/// A second create of an id whose create is under way fails at once with
/// AlreadyExists and never touches the runtime: its cleanup used to
/// force-delete the container the first create was making.
#[test]
fn a_losing_duplicate_create_never_deletes_the_winners_container() {
    let h = Harness::new();
    let gate = Gate::new();
    h.fake.script("create", "c1", Step::Hold(gate.clone()));
    let (svc, req) = (h.svc.clone(), h.create_request("c1"));
    let winner = std::thread::spawn(move || svc.do_create(req));
    assert!(
        gate.wait_reached(T),
        "the first create never reached the runtime"
    );
    let loser = h.svc.do_create(h.create_request("c1"));
    assert!(
        matches!(loser, Err(Error::AlreadyExists(_))),
        "{:?}",
        loser.map(|r| r.pid)
    );
    gate.release();
    let pid = winner.join().unwrap().unwrap().pid;
    assert!(
        h.fake.calls_of("delete", "c1").is_empty(),
        "{:?}",
        h.fake.calls()
    );
    assert_eq!(h.fake.calls_of("create", "c1").len(), 1);
    assert_eq!(h.svc.container("c1").unwrap().init.pid() as u32, pid);
    assert!(
        robust_runtime::procfs::pid_alive(pid as i32),
        "the winner's init was killed"
    );
    // Once created, the id is still taken; a failed create frees it.
    assert!(matches!(
        h.svc.do_create(h.create_request("c1")),
        Err(Error::AlreadyExists(_))
    ));
    h.fake
        .script("create", "c2", Step::Fail("exec format error".into()));
    assert!(h.svc.do_create(h.create_request("c2")).is_err());
    h.svc.do_create(h.create_request("c2")).unwrap();
}
