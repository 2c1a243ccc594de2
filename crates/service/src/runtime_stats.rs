//! `Stats` of a container whose runtime reports its statistics itself
//! (its cgroup cannot tell it from its pod's other containers), in the
//! cgroup v1 shape containerd expects (`io.containerd.cgroups.v1.Metrics`),
//! as gVisor's own shim reports them.

use containerd_shim_protos::cgroups::metrics as pb;
use containerd_shim_protos::protobuf::MessageField;
use robust_runtime::MemoryEntry;
use robust_runtime::RuntimeStats;

fn entry(e: &MemoryEntry) -> MessageField<pb::MemoryEntry> {
    MessageField::some(pb::MemoryEntry {
        limit: e.limit,
        usage: e.usage,
        max: e.max,
        failcnt: e.failcnt,
        ..Default::default()
    })
}

/// The runtime's statistics as cgroup v1 metrics.
pub fn to_v1_metrics(s: &RuntimeStats) -> pb::Metrics {
    let m = &s.memory;
    let memory = pb::MemoryStat {
        cache: m.cache,
        usage: entry(&m.usage),
        swap: entry(&m.swap),
        kernel: entry(&m.kernel),
        ..Default::default()
    };
    let u = &s.cpu.usage;
    pb::Metrics {
        cpu: MessageField::some(pb::CPUStat {
            usage: MessageField::some(pb::CPUUsage {
                total: u.total,
                kernel: u.kernel,
                user: u.user,
                per_cpu: u.percpu.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(memory),
        pids: MessageField::some(pb::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtimes_numbers_land_in_the_v1_fields() {
        let s = robust_runtime::parse_stats(
            br#"{"type":"stats","id":"c","data":{"cpu":{"usage":{"total":5,"percpu":[2,3]}},"memory":{"cache":7,"usage":{"usage":10,"limit":20}},"pids":{"current":4}}}"#,
        )
        .unwrap();
        let m = to_v1_metrics(&s);
        assert_eq!(m.cpu.usage.total, 5);
        assert_eq!(m.cpu.usage.per_cpu, vec![2, 3]);
        assert_eq!((m.memory.usage.usage, m.memory.usage.limit), (10, 20));
        assert_eq!(m.memory.cache, 7);
        assert_eq!(m.pids.current, 4);
    }
}
