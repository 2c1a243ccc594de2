//! A pod run in one sandbox (the fake placing its app containers in it, as
//! runsc does): the sandbox's cgroup is shared, so an app container's exit
//! is reported OOM-killed only when it was killed, against the pod's count.

use std::time::Duration;

use super::Harness;
use robust_runtime::fake::FakeRuntime;

const T: Duration = Duration::from_secs(5);

fn pod() -> Harness {
    let h = Harness::with(FakeRuntime::with_pod_sandbox);
    h.cgroup("pod", 0, false);
    h.run("pod");
    h
}

/// An app container killed (137) after the sandbox's cgroup counted an OOM
/// kill is reported OOM-killed: TaskOOM, then its TaskExit; one that exits
/// otherwise is not.
#[test]
fn an_app_container_killed_after_the_pods_oom_kill_is_oom_killed() {
    let h = pod();
    for id in ["a1", "a2"] {
        h.share_cgroup(id, "pod");
        h.svc.do_create(h.pod_app_request(id, "pod")).unwrap();
        h.start(id, "").unwrap();
    }
    let _ = h.events(6, T);
    std::fs::write(
        h.dir.path().join("cg-pod/memory.events"),
        "oom 1\noom_kill 1\n",
    )
    .unwrap();
    h.fake.exit("a1", "", 0);
    assert_eq!(Harness::topics(&h.events(1, T)), ["exit:a1:0"]);
    h.fake.exit("a2", "", 137);
    assert_eq!(Harness::topics(&h.events(2, T)), ["oom", "exit:a2:137"]);
}

/// The pod's count outlives the sandbox's cgroup: a sibling killed after
/// the sandbox's container read the count (and its cgroup went) is still
/// reported OOM-killed.
#[test]
fn the_pods_count_outlives_the_sandbox_cgroup() {
    let h = pod();
    h.share_cgroup("a1", "pod");
    h.svc.do_create(h.pod_app_request("a1", "pod")).unwrap();
    h.start("a1", "").unwrap();
    let _ = h.events(4, T);
    let cg = h.dir.path().join("cg-pod");
    std::fs::write(cg.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
    h.fake.exit("pod", "", 137);
    assert_eq!(Harness::topics(&h.events(2, T)), ["oom", "exit:pod:137"]);
    std::fs::remove_dir_all(&cg).unwrap();
    h.fake.exit("a1", "", 137);
    assert_eq!(Harness::topics(&h.events(2, T)), ["oom", "exit:a1:137"]);
}
