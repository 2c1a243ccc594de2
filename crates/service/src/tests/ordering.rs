//! The exit-ordering rules (`crate::order`), through the whole service:
//! each test fails when its rule is broken.

use std::time::{Duration, SystemTime};

use robust_reaper::{Exit, ExitStatus};
use robust_runtime::fake::{Gate, Step};

use super::{eventually, Harness};
use crate::order::Phase;

const T: Duration = Duration::from_secs(5);

/// Rule 1: an exit that races the start is published after the start
/// event, never before it.
#[test]
fn rule1_an_exit_racing_the_start_follows_the_start_event() {
    let h = Harness::new();
    h.svc.do_create(h.create_request("c1")).unwrap();
    let gate = Gate::new();
    h.fake.script("start", "c1", Step::Hold(gate.clone()));
    let svc = h.svc.clone();
    let starter = std::thread::spawn(move || {
        let mut r = containerd_shim_protos::api::StartRequest::new();
        r.id = "c1".into();
        svc.do_start(r)
    });
    assert!(gate.wait_reached(T), "the start never reached the runtime");
    // The init exits while `runtime start` is still in flight.
    h.fake.exit("c1", "", 3);
    let c = h.svc.container("c1").unwrap();
    assert!(
        eventually(T, || matches!(
            c.init.lock().unwrap().phase,
            Phase::Starting { early: Some(_) }
        )),
        "the exit was not recorded during the start: {:?}",
        c.init.lock().unwrap().phase
    );
    let before = h.events(1, Duration::from_millis(100));
    assert_eq!(
        Harness::topics(&before),
        ["create"],
        "nothing before the start event"
    );
    gate.release();
    starter.join().unwrap().unwrap();
    let after = h.events(2, T);
    assert_eq!(Harness::topics(&after), ["start", "exit:c1:3"]);
}

/// Rule 2: the init's exit is published after its execs' exits, while
/// State and Wait already tell it.
#[test]
fn rule2_the_init_exit_waits_for_its_execs() {
    let h = Harness::new();
    h.run("c1");
    h.exec("c1", "e1");
    let c = h.svc.container("c1").unwrap();
    h.fake.exit("c1", "", 0);
    assert!(
        eventually(T, || c.init.wait_timeout(Duration::ZERO).is_some()),
        "Wait of the init did not return"
    );
    let early = h.events(4, Duration::from_millis(200));
    assert_eq!(
        Harness::topics(&early),
        ["create", "start", "exec-added", "exec-started"],
        "the init's exit went out while its exec ran"
    );
    h.fake.exit("c1", "e1", 5);
    let late = h.events(2, T);
    assert_eq!(Harness::topics(&late), ["exit:e1:5", "exit:c1:0"]);
}

/// Rule 2 under races: the exec's and the init's exits reported at once,
/// again and again: the init's always comes last, and nothing deadlocks
/// (the two paths used to take the init's state and its held flag in
/// opposite orders).
#[test]
fn rule2_racing_exits_never_deadlock_and_keep_the_order() {
    let h = Harness::new();
    for i in 0..20 {
        let id = format!("r{i}");
        h.run(&id);
        h.exec(&id, "e1");
        let _ = h.events(4, T);
        let (pi, pe) = (h.fake.pid(&id, "").unwrap(), h.fake.pid(&id, "e1").unwrap());
        let exit = |pid| Exit {
            pid,
            status: ExitStatus::Code(0),
            at: SystemTime::now(),
        };
        let (s1, s2) = (h.svc.clone(), h.svc.clone());
        let (a, b) = (id.clone(), id.clone());
        let t1 = std::thread::spawn(move || s1.deliver_exit(&a, "", exit(pi)));
        let t2 = std::thread::spawn(move || s2.deliver_exit(&b, "e1", exit(pe)));
        assert!(
            eventually(T, || t1.is_finished() && t2.is_finished()),
            "exits of {id} deadlocked"
        );
        let got = h.events(2, T);
        assert_eq!(
            Harness::topics(&got),
            ["exit:e1:0", &format!("exit:{id}:0")],
            "round {i}"
        );
    }
}

/// Rule 3: an OOM kill is published before the exit it caused, once (the
/// exit sees the count go up: no watcher here).
#[test]
fn rule3_an_oom_kill_is_published_before_the_exit() {
    let h = Harness::new();
    let cg = h.cgroup("c1", 0, false);
    h.run("c1");
    std::fs::write(cg.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
    h.fake.exit("c1", "", 137);
    let got = h.events(4, T);
    assert_eq!(
        Harness::topics(&got),
        ["create", "start", "oom", "exit:c1:137"]
    );
}

/// Rule 3 with the OOM watcher seeing the kill too: one TaskOOM, before
/// the exit.
#[test]
fn rule3_the_watcher_and_the_exit_give_one_oom_before_the_exit() {
    let h = Harness::new();
    let cg = h.cgroup("c1", 0, true);
    h.run("c1");
    std::fs::write(cg.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
    h.fake.exit("c1", "", 137);
    let got = h.events(4, T);
    let mut all = got.clone();
    all.extend(h.events(0, Duration::from_millis(300)));
    assert_eq!(
        Harness::topics(&all),
        ["create", "start", "oom", "exit:c1:137"]
    );
}

/// Rule 4: an exit reported again (the runtime's wait after the reaper, a
/// process found gone, an assumed exit) is published once.
#[test]
fn rule4_an_exit_reported_twice_is_published_once() {
    let h = Harness::new();
    h.run("c1");
    let c = h.svc.container("c1").unwrap();
    let pid = h.fake.pid("c1", "").unwrap();
    h.fake.exit("c1", "", 7);
    assert!(eventually(T, || c
        .init
        .wait_timeout(Duration::ZERO)
        .is_some()));
    h.svc.deliver_exit(
        "c1",
        "",
        Exit {
            pid,
            status: ExitStatus::Code(9),
            at: SystemTime::now(),
        },
    );
    h.svc.exit_now(&c, &c.init, 137);
    let got = h.events(3, T);
    let mut all = got.clone();
    all.extend(h.events(0, Duration::from_millis(200)));
    assert_eq!(Harness::topics(&all), ["create", "start", "exit:c1:7"]);
    assert_eq!(c.init.wait().unwrap().0, 7, "the first exit stays");
}
