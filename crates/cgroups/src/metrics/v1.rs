//! cgroup v1 statistics, filled like containerd's `cgroup1` package does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use containerd_shim_protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryOomControl,
    MemoryStat, Metrics, PidsStat, RdmaEntry, RdmaStat, Throttle,
};
use protobuf::MessageField;

use super::{hugepage_sizes, read_rdma, read_u64, Rdma};
use crate::cgroup::CGROUP_ROOT;
use crate::error::CgroupError;
use crate::files;
use crate::parse;

/// In cgroup v1 files, containerd reports `max` as 0.
const V1_MAX: u64 = 0;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Collects the metrics of a v1 cgroup given its controller directories.
///
/// Controllers that are not attached (or whose directory does not exist)
/// leave their section empty; inside a controller, missing files leave
/// their fields at zero.
pub(crate) fn collect(paths: &BTreeMap<String, PathBuf>) -> Result<Metrics, CgroupError> {
    let dir = |name: &str| paths.get(name).map(PathBuf::as_path).filter(|p| p.is_dir());
    if !paths.values().any(|p| p.is_dir()) {
        return Err(CgroupError::NotFound {
            path: paths
                .values()
                .next()
                .cloned()
                .unwrap_or_else(|| PathBuf::from(CGROUP_ROOT)),
        });
    }
    let mut m = Metrics::new();
    if let Some(d) = dir("pids") {
        m.pids = pids(d)?.into();
    }
    let (cpu_dir, acct_dir) = (dir("cpu"), dir("cpuacct"));
    if cpu_dir.is_some() || acct_dir.is_some() {
        m.cpu = MessageField::some(cpu(cpu_dir, acct_dir)?);
    }
    if let Some(d) = dir("memory") {
        let (stat, oom) = memory(d)?;
        m.memory = MessageField::some(stat);
        m.memory_oom_control = oom.into();
    }
    if let Some(d) = dir("blkio") {
        m.blkio = MessageField::some(blkio(d)?);
    }
    if let Some(d) = dir("hugetlb") {
        m.hugetlb = hugetlb(d)?;
    }
    if let Some(d) = dir("rdma") {
        m.rdma = rdma(d)?.into();
    }
    Ok(m)
}

fn pids(dir: &Path) -> Result<Option<PidsStat>, CgroupError> {
    let Some(current) = read_u64(dir, "pids.current", V1_MAX)? else {
        return Ok(None);
    };
    Ok(Some(PidsStat {
        current,
        limit: read_u64(dir, "pids.max", V1_MAX)?.unwrap_or(0),
        ..Default::default()
    }))
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(
        || match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
            Ok(Some(t)) if t > 0 => t as u64,
            _ => 100,
        },
    )
}

fn cpu(cpu_dir: Option<&Path>, acct_dir: Option<&Path>) -> Result<CPUStat, CgroupError> {
    let mut usage = CPUUsage::new();
    if let Some(d) = acct_dir {
        usage.total = read_u64(d, "cpuacct.usage", V1_MAX)?.unwrap_or(0);
        if let Some(t) = files::read_optional(&d.join("cpuacct.usage_percpu"))? {
            usage.per_cpu = parse_percpu(&t);
        }
        if let Some(t) = files::read_optional(&d.join("cpuacct.stat"))? {
            (usage.user, usage.kernel) = parse_cpuacct_stat(&t, clock_ticks());
        }
    }
    let mut throttling = Throttle::new();
    if let Some(d) = cpu_dir {
        if let Some(t) = files::read_optional(&d.join("cpu.stat"))? {
            throttling = parse_cpu_stat(&t);
        }
    }
    Ok(CPUStat {
        usage: MessageField::some(usage),
        throttling: MessageField::some(throttling),
        ..Default::default()
    })
}

/// `cpuacct.usage_percpu`: space separated nanoseconds, one per CPU.
pub(crate) fn parse_percpu(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(parse::parse_uint)
        .collect()
}

/// `cpuacct.stat` (`user N` / `system N`, in clock ticks) converted to
/// nanoseconds: returns `(user, system)`.
pub(crate) fn parse_cpuacct_stat(text: &str, ticks_per_sec: u64) -> (u64, u64) {
    let kv = parse::parse_flat_keyed(text);
    let ns = |key: &str| -> u64 {
        let ticks = u128::from(kv.get(key).copied().unwrap_or(0));
        let ns = ticks * NANOS_PER_SEC / u128::from(ticks_per_sec.max(1));
        u64::try_from(ns).unwrap_or(u64::MAX)
    };
    (ns("user"), ns("system"))
}

/// Throttling counters from `cpu.stat`.
pub(crate) fn parse_cpu_stat(text: &str) -> Throttle {
    let kv = parse::parse_flat_keyed(text);
    let get = |k: &str| kv.get(k).copied().unwrap_or(0);
    Throttle {
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: get("throttled_time"),
        ..Default::default()
    }
}

/// Maps `memory.stat` onto [`MemoryStat`] (entries are filled separately).
pub(crate) fn parse_memory_stat(text: &str) -> MemoryStat {
    let raw = parse::parse_flat_keyed(text);
    let g = |k: &str| raw.get(k).copied().unwrap_or(0);
    MemoryStat {
        cache: g("cache"),
        rss: g("rss"),
        rss_huge: g("rss_huge"),
        mapped_file: g("mapped_file"),
        dirty: g("dirty"),
        writeback: g("writeback"),
        pg_pg_in: g("pgpgin"),
        pg_pg_out: g("pgpgout"),
        pg_fault: g("pgfault"),
        pg_maj_fault: g("pgmajfault"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        hierarchical_memory_limit: g("hierarchical_memory_limit"),
        hierarchical_swap_limit: g("hierarchical_memsw_limit"),
        total_cache: g("total_cache"),
        total_rss: g("total_rss"),
        total_rss_huge: g("total_rss_huge"),
        total_mapped_file: g("total_mapped_file"),
        total_dirty: g("total_dirty"),
        total_writeback: g("total_writeback"),
        total_pg_pg_in: g("total_pgpgin"),
        total_pg_pg_out: g("total_pgpgout"),
        total_pg_fault: g("total_pgfault"),
        total_pg_maj_fault: g("total_pgmajfault"),
        total_inactive_anon: g("total_inactive_anon"),
        total_active_anon: g("total_active_anon"),
        total_inactive_file: g("total_inactive_file"),
        total_active_file: g("total_active_file"),
        total_unevictable: g("total_unevictable"),
        ..Default::default()
    }
}

/// `memory.oom_control`.
pub(crate) fn parse_oom_control(text: &str) -> MemoryOomControl {
    let kv = parse::parse_flat_keyed(text);
    let g = |k: &str| kv.get(k).copied().unwrap_or(0);
    MemoryOomControl {
        oom_kill_disable: g("oom_kill_disable"),
        under_oom: g("under_oom"),
        oom_kill: g("oom_kill"),
        ..Default::default()
    }
}

fn memory_entry(dir: &Path, module: &str) -> Result<MemoryEntry, CgroupError> {
    let file = |name: &str| {
        if module.is_empty() {
            format!("memory.{name}")
        } else {
            format!("memory.{module}.{name}")
        }
    };
    let get = |name: &str| -> Result<u64, CgroupError> {
        Ok(read_u64(dir, &file(name), V1_MAX)?.unwrap_or(0))
    };
    Ok(MemoryEntry {
        usage: get("usage_in_bytes")?,
        max: get("max_usage_in_bytes")?,
        failcnt: get("failcnt")?,
        limit: get("limit_in_bytes")?,
        ..Default::default()
    })
}

fn memory(dir: &Path) -> Result<(MemoryStat, Option<MemoryOomControl>), CgroupError> {
    let mut stat = files::read_optional(&dir.join("memory.stat"))?
        .map(|t| parse_memory_stat(&t))
        .unwrap_or_default();
    // Like containerd, the four entries are always present.
    stat.usage = MessageField::some(memory_entry(dir, "")?);
    stat.swap = MessageField::some(memory_entry(dir, "memsw")?);
    stat.kernel = MessageField::some(memory_entry(dir, "kmem")?);
    stat.kernel_tcp = MessageField::some(memory_entry(dir, "kmem.tcp")?);
    let oom = files::read_optional(&dir.join("memory.oom_control"))?.map(|t| parse_oom_control(&t));
    Ok((stat, oom))
}

/// Parses a blkio statistics file (`blkio.io_service_bytes_recursive`,
/// `blkio.throttle.io_serviced`, `blkio.sectors_recursive`, ...).
///
/// Lines are `MAJ:MIN OP VALUE` or `MAJ:MIN VALUE`; the trailing
/// `Total VALUE` line and malformed lines are skipped. `devices` maps device
/// numbers to names (from `/proc/partitions`).
pub(crate) fn parse_blkio(text: &str, devices: &HashMap<(u64, u64), String>) -> Vec<BlkIOEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line
            .split([' ', ':', '\t'])
            .filter(|f| !f.is_empty())
            .collect();
        let (op, value) = match fields.len() {
            3 => ("", fields[2]),
            4 => (fields[2], fields[3]),
            _ => continue,
        };
        let (Ok(major), Ok(minor), Some(value)) = (
            fields[0].parse::<u64>(),
            fields[1].parse::<u64>(),
            parse::parse_uint(value),
        ) else {
            continue;
        };
        out.push(BlkIOEntry {
            op: op.to_owned(),
            device: devices.get(&(major, minor)).cloned().unwrap_or_default(),
            major,
            minor,
            value,
            ..Default::default()
        });
    }
    out
}

type BlkioField = fn(&mut BlkIOStat) -> &mut Vec<BlkIOEntry>;

fn blkio(dir: &Path) -> Result<BlkIOStat, CgroupError> {
    let devices = files::read_optional(Path::new("/proc/partitions"))?
        .map(|t| parse::parse_partitions(&t))
        .unwrap_or_default();
    let mut stat = BlkIOStat::new();
    let read_into =
        |stat: &mut BlkIOStat, list: &[(&str, BlkioField)]| -> Result<usize, CgroupError> {
            let mut n = 0;
            for (name, field) in list {
                if let Some(t) = files::read_optional(&dir.join(format!("blkio.{name}")))? {
                    let entries = parse_blkio(&t, &devices);
                    n += entries.len();
                    field(stat).extend(entries);
                }
            }
            Ok(n)
        };
    // CFQ statistics first (like containerd), when the kernel has them.
    let mut found = 0;
    if dir.join("blkio.io_serviced_recursive").exists() {
        let cfq: [(&str, BlkioField); 8] = [
            ("sectors_recursive", |s| &mut s.sectors_recursive),
            ("io_service_bytes_recursive", |s| {
                &mut s.io_service_bytes_recursive
            }),
            ("io_serviced_recursive", |s| &mut s.io_serviced_recursive),
            ("io_queued_recursive", |s| &mut s.io_queued_recursive),
            ("io_service_time_recursive", |s| {
                &mut s.io_service_time_recursive
            }),
            ("io_wait_time_recursive", |s| &mut s.io_wait_time_recursive),
            ("io_merged_recursive", |s| &mut s.io_merged_recursive),
            ("time_recursive", |s| &mut s.io_time_recursive),
        ];
        found = read_into(&mut stat, &cfq)?;
    }
    if found == 0 {
        // No CFQ (or no CFQ-scheduled device): the throttle statistics.
        let throttle: [(&str, BlkioField); 2] = [
            ("throttle.io_serviced", |s| &mut s.io_serviced_recursive),
            ("throttle.io_service_bytes", |s| {
                &mut s.io_service_bytes_recursive
            }),
        ];
        stat = BlkIOStat::new();
        read_into(&mut stat, &throttle)?;
    }
    Ok(stat)
}

fn hugetlb(dir: &Path) -> Result<Vec<HugetlbStat>, CgroupError> {
    let mut out = Vec::new();
    for size in hugepage_sizes() {
        let file = |name: &str| format!("hugetlb.{size}.{name}");
        let Some(usage) = read_u64(dir, &file("usage_in_bytes"), V1_MAX)? else {
            continue;
        };
        out.push(HugetlbStat {
            usage,
            max: read_u64(dir, &file("max_usage_in_bytes"), V1_MAX)?.unwrap_or(0),
            failcnt: read_u64(dir, &file("failcnt"), V1_MAX)?.unwrap_or(0),
            pagesize: size.clone(),
            ..Default::default()
        });
    }
    Ok(out)
}

fn rdma(dir: &Path) -> Result<Option<RdmaStat>, CgroupError> {
    let entries = |v: Vec<Rdma>| {
        v.into_iter()
            .map(|(device, hca_handles, hca_objects)| RdmaEntry {
                device,
                hca_handles,
                hca_objects,
                ..Default::default()
            })
            .collect()
    };
    Ok(read_rdma(dir)?.map(|(current, limit)| RdmaStat {
        current: entries(current),
        limit: entries(limit),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const MEMORY_STAT: &str = "\
cache 1052672
rss 434176
rss_huge 0
shmem 0
mapped_file 507904
dirty 4096
writeback 0
pgpgin 1195
pgpgout 833
pgfault 1518
pgmajfault 7
inactive_anon 434176
active_anon 0
inactive_file 544768
active_file 507904
unevictable 0
hierarchical_memory_limit 8388608
hierarchical_memsw_limit 9223372036854771712
total_cache 2052672
total_rss 1434176
total_rss_huge 2097152
total_shmem 0
total_mapped_file 1507904
total_dirty 14096
total_writeback 1
total_pgpgin 11195
total_pgpgout 1833
total_pgfault 11518
total_pgmajfault 17
total_inactive_anon 1434176
total_active_anon 10
total_inactive_file 1544768
total_active_file 1507904
total_unevictable 3
";

    #[test]
    fn memory_stat() {
        let s = parse_memory_stat(MEMORY_STAT);
        assert_eq!(s.cache, 1052672);
        assert_eq!(s.rss, 434176);
        assert_eq!(s.mapped_file, 507904);
        assert_eq!(s.dirty, 4096);
        assert_eq!(s.pg_pg_in, 1195);
        assert_eq!(s.pg_pg_out, 833);
        assert_eq!(s.pg_fault, 1518);
        assert_eq!(s.pg_maj_fault, 7);
        assert_eq!(s.inactive_file, 544768);
        assert_eq!(s.hierarchical_memory_limit, 8388608);
        assert_eq!(s.hierarchical_swap_limit, 9223372036854771712);
        assert_eq!(s.total_cache, 2052672);
        assert_eq!(s.total_rss, 1434176);
        assert_eq!(s.total_rss_huge, 2097152);
        assert_eq!(s.total_mapped_file, 1507904);
        assert_eq!(s.total_dirty, 14096);
        assert_eq!(s.total_writeback, 1);
        assert_eq!(s.total_pg_pg_in, 11195);
        assert_eq!(s.total_pg_pg_out, 1833);
        assert_eq!(s.total_pg_fault, 11518);
        assert_eq!(s.total_pg_maj_fault, 17);
        assert_eq!(s.total_inactive_anon, 1434176);
        assert_eq!(s.total_active_anon, 10);
        assert_eq!(s.total_inactive_file, 1544768);
        assert_eq!(s.total_active_file, 1507904);
        assert_eq!(s.total_unevictable, 3);
        assert!(s.usage.is_none());
    }

    #[test]
    fn oom_control() {
        let o = parse_oom_control("oom_kill_disable 0\nunder_oom 1\noom_kill 4\n");
        assert_eq!((o.oom_kill_disable, o.under_oom, o.oom_kill), (0, 1, 4));
    }

    #[test]
    fn cpuacct() {
        assert_eq!(
            parse_percpu("1000 2000 0 18446744073709551615 \n"),
            vec![1000, 2000, 0, u64::MAX]
        );
        assert_eq!(parse_percpu(""), Vec::<u64>::new());
        // 100 ticks per second: 1 tick = 10ms.
        let (user, system) = parse_cpuacct_stat("user 14702\nsystem 4428\n", 100);
        assert_eq!(user, 147_020_000_000);
        assert_eq!(system, 44_280_000_000);
        // Missing key -> 0; huge values saturate instead of overflowing.
        let (user, system) = parse_cpuacct_stat("user 18446744073709551615\n", 1);
        assert_eq!((user, system), (u64::MAX, 0));
    }

    #[test]
    fn cpu_stat_throttling() {
        let t = parse_cpu_stat(
            "nr_periods 120\nnr_throttled 7\nthrottled_time 123456789\nnr_bursts 0\nburst_time 0\n",
        );
        assert_eq!(t.periods, 120);
        assert_eq!(t.throttled_periods, 7);
        assert_eq!(t.throttled_time, 123456789);
    }

    #[test]
    fn blkio_entries() {
        let devices = HashMap::from([((8, 0), "/dev/sda".to_owned())]);
        let text = "\
8:0 Read 4096
8:0 Write 8192
8:0 Sync 12288
8:0 Async 0
8:0 Discard 0
8:0 Total 12288
253:1 Read 10
Total 12298
";
        let e = parse_blkio(text, &devices);
        assert_eq!(e.len(), 7);
        assert_eq!(e[0].op, "Read");
        assert_eq!(e[0].device, "/dev/sda");
        assert_eq!((e[0].major, e[0].minor, e[0].value), (8, 0, 4096));
        assert_eq!(e[1].op, "Write");
        assert_eq!(e[1].value, 8192);
        assert_eq!(e[6].device, "");
        assert_eq!((e[6].major, e[6].minor), (253, 1));

        // Files without an op column (sectors_recursive, time_recursive).
        let e = parse_blkio("8:0 123\n8:16 7\n", &devices);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].op, "");
        assert_eq!(e[0].value, 123);
        assert_eq!(e[1].minor, 16);

        assert!(parse_blkio("Total 0\n", &devices).is_empty());
        assert!(parse_blkio("garbage here now x\n", &devices).is_empty());
    }

    #[test]
    fn collect_from_fake_tree() {
        // A fake controller tree in a temporary directory: exercises the
        // file-to-field mapping without root.
        let tmp = tempfile::tempdir().unwrap();
        let mem = tmp.path().join("memory");
        let cpu = tmp.path().join("cpu");
        let pids = tmp.path().join("pids");
        let blkio = tmp.path().join("blkio");
        for d in [&mem, &cpu, &pids, &blkio] {
            fs::create_dir(d).unwrap();
        }
        fs::write(mem.join("memory.stat"), MEMORY_STAT).unwrap();
        fs::write(mem.join("memory.usage_in_bytes"), "4096\n").unwrap();
        fs::write(mem.join("memory.limit_in_bytes"), "8388608\n").unwrap();
        fs::write(mem.join("memory.failcnt"), "3\n").unwrap();
        fs::write(mem.join("memory.max_usage_in_bytes"), "8000000\n").unwrap();
        fs::write(mem.join("memory.memsw.usage_in_bytes"), "5000\n").unwrap();
        fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        fs::write(cpu.join("cpuacct.usage"), "5000\n").unwrap();
        fs::write(cpu.join("cpuacct.usage_percpu"), "2000 3000 \n").unwrap();
        fs::write(cpu.join("cpuacct.stat"), "user 1\nsystem 2\n").unwrap();
        fs::write(
            cpu.join("cpu.stat"),
            "nr_periods 3\nnr_throttled 2\nthrottled_time 1\n",
        )
        .unwrap();
        fs::write(pids.join("pids.current"), "4\n").unwrap();
        fs::write(pids.join("pids.max"), "max\n").unwrap();
        fs::write(
            blkio.join("blkio.throttle.io_service_bytes"),
            "8:0 Read 100\n8:0 Write 200\nTotal 300\n",
        )
        .unwrap();
        fs::write(
            blkio.join("blkio.throttle.io_serviced"),
            "8:0 Read 1\nTotal 1\n",
        )
        .unwrap();

        let paths = BTreeMap::from([
            ("memory".to_owned(), mem.clone()),
            ("cpu".to_owned(), cpu.clone()),
            ("cpuacct".to_owned(), cpu.clone()),
            ("pids".to_owned(), pids.clone()),
            ("blkio".to_owned(), blkio.clone()),
            ("freezer".to_owned(), tmp.path().join("missing")),
        ]);
        let m = collect(&paths).unwrap();
        assert_eq!(m.pids.current, 4);
        assert_eq!(m.pids.limit, 0, "v1 'max' is reported as 0");
        assert_eq!(m.cpu.usage.total, 5000);
        assert_eq!(m.cpu.usage.per_cpu, vec![2000, 3000]);
        assert_eq!(m.cpu.usage.user, 1_000_000_000 / clock_ticks());
        assert_eq!(m.cpu.usage.kernel, 2_000_000_000 / clock_ticks());
        assert_eq!(m.cpu.throttling.periods, 3);
        assert_eq!(m.cpu.throttling.throttled_periods, 2);
        assert_eq!(m.cpu.throttling.throttled_time, 1);
        assert_eq!(m.memory.cache, 1052672);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 8388608);
        assert_eq!(m.memory.usage.failcnt, 3);
        assert_eq!(m.memory.usage.max, 8000000);
        assert_eq!(m.memory.swap.usage, 5000);
        assert!(m.memory.kernel.is_some());
        assert_eq!(m.memory_oom_control.oom_kill, 2);
        assert_eq!(m.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(m.blkio.io_service_bytes_recursive[1].value, 200);
        assert_eq!(m.blkio.io_serviced_recursive.len(), 1);
        assert!(m.hugetlb.is_empty());
        assert!(m.rdma.is_none());

        // Only a missing controller: NotFound rather than empty metrics.
        let gone = BTreeMap::from([("memory".to_owned(), tmp.path().join("gone"))]);
        assert!(matches!(collect(&gone), Err(CgroupError::NotFound { .. })));

        // A malformed single-value file names the file.
        fs::write(mem.join("memory.failcnt"), "lots\n").unwrap();
        let err = collect(&paths).unwrap_err();
        assert!(err.to_string().contains("memory.failcnt"), "{err}");
    }
}
