//! cgroup v2 statistics, filled like containerd's `cgroup2` package does.

use std::fs;
use std::path::Path;

use containerd_shim_protos::cgroups_v2::metrics::{
    CPUStat, HugeTlbStat, IOEntry, IOStat, MemoryEvents, MemoryStat, Metrics, PSIData, PSIStats,
    PidsStat, RdmaEntry, RdmaStat,
};
use protobuf::MessageField;

use super::{hugepage_sizes, read_kv, read_rdma, read_u64, Rdma};
use crate::error::CgroupError;
use crate::files;
use crate::parse;

/// In cgroup v2 files, containerd reports `max` as `u64::MAX`.
const V2_MAX: u64 = u64::MAX;

/// Collects the metrics of the v2 cgroup at `dir`.
///
/// Sections whose interface files are missing (controller not enabled for
/// the cgroup) are left empty.
pub(crate) fn collect(dir: &Path) -> Result<Metrics, CgroupError> {
    if !dir.is_dir() {
        return Err(CgroupError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let mut m = Metrics::new();

    if let Some(current) = read_u64(dir, "pids.current", V2_MAX)? {
        m.pids = MessageField::some(PidsStat {
            current,
            limit: read_u64(dir, "pids.max", V2_MAX)?.unwrap_or(0),
            ..Default::default()
        });
    }

    if let Some(text) = files::read_optional(&dir.join("cpu.stat"))? {
        let mut cpu = parse_cpu_stat(&text);
        cpu.psi = read_psi(dir, "cpu.pressure")?.into();
        m.cpu = MessageField::some(cpu);
    }

    let memory_stat = files::read_optional(&dir.join("memory.stat"))?;
    let memory_current = read_u64(dir, "memory.current", V2_MAX)?;
    if memory_stat.is_some() || memory_current.is_some() {
        let mut mem = memory_stat
            .map(|t| parse_memory_stat(&t))
            .unwrap_or_default();
        let get = |file: &str| -> Result<u64, CgroupError> {
            Ok(read_u64(dir, file, V2_MAX)?.unwrap_or(0))
        };
        mem.usage = memory_current.unwrap_or(0);
        mem.usage_limit = get("memory.max")?;
        mem.swap_usage = get("memory.swap.current")?;
        mem.swap_limit = get("memory.swap.max")?;
        mem.max_usage = get("memory.peak")?;
        mem.swap_max_usage = get("memory.swap.peak")?;
        mem.psi = read_psi(dir, "memory.pressure")?.into();
        m.memory = MessageField::some(mem);
    }

    if let Some(kv) = read_kv(dir, "memory.events")? {
        let g = |k: &str| kv.get(k).copied().unwrap_or(0);
        m.memory_events = MessageField::some(MemoryEvents {
            low: g("low"),
            high: g("high"),
            max: g("max"),
            oom: g("oom"),
            oom_kill: g("oom_kill"),
            oom_group_kill: g("oom_group_kill"),
            ..Default::default()
        });
    }

    let io_stat = files::read_optional(&dir.join("io.stat"))?;
    let io_psi = read_psi(dir, "io.pressure")?;
    if io_stat.is_some() || io_psi.is_some() {
        m.io = MessageField::some(IOStat {
            usage: io_stat.map(|t| parse_io_stat(&t)).unwrap_or_default(),
            psi: io_psi.into(),
            ..Default::default()
        });
    }

    m.rdma = rdma(dir)?.into();
    m.hugetlb = hugetlb(dir)?;
    Ok(m)
}

/// `cpu.stat` of cgroup v2 (PSI is filled separately).
pub(crate) fn parse_cpu_stat(text: &str) -> CPUStat {
    let kv = parse::parse_flat_keyed(text);
    let g = |k: &str| kv.get(k).copied().unwrap_or(0);
    CPUStat {
        usage_usec: g("usage_usec"),
        user_usec: g("user_usec"),
        system_usec: g("system_usec"),
        nr_periods: g("nr_periods"),
        nr_throttled: g("nr_throttled"),
        throttled_usec: g("throttled_usec"),
        nr_bursts: g("nr_bursts"),
        burst_usec: g("burst_usec"),
        ..Default::default()
    }
}

/// `memory.stat` of cgroup v2 (usage, limits and PSI are filled separately).
pub(crate) fn parse_memory_stat(text: &str) -> MemoryStat {
    let raw = parse::parse_flat_keyed(text);
    let g = |k: &str| raw.get(k).copied().unwrap_or(0);
    // Linux 5.9 split some workingset counters into _anon and _file.
    let split = |k: &str| match raw.get(k) {
        Some(v) => *v,
        None => g(&format!("{k}_anon")).saturating_add(g(&format!("{k}_file"))),
    };
    MemoryStat {
        anon: g("anon"),
        file: g("file"),
        kernel_stack: g("kernel_stack"),
        slab: g("slab"),
        sock: g("sock"),
        shmem: g("shmem"),
        file_mapped: g("file_mapped"),
        file_dirty: g("file_dirty"),
        file_writeback: g("file_writeback"),
        anon_thp: g("anon_thp"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        slab_reclaimable: g("slab_reclaimable"),
        slab_unreclaimable: g("slab_unreclaimable"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
        workingset_refault: split("workingset_refault"),
        workingset_activate: split("workingset_activate"),
        workingset_nodereclaim: g("workingset_nodereclaim"),
        pgrefill: g("pgrefill"),
        pgscan: g("pgscan"),
        pgsteal: g("pgsteal"),
        pgactivate: g("pgactivate"),
        pgdeactivate: g("pgdeactivate"),
        pglazyfree: g("pglazyfree"),
        pglazyfreed: g("pglazyfreed"),
        thp_fault_alloc: g("thp_fault_alloc"),
        thp_collapse_alloc: g("thp_collapse_alloc"),
        ..Default::default()
    }
}

/// `io.stat`: one line per device, `MAJ:MIN rbytes=.. wbytes=.. rios=..
/// wios=.. dbytes=.. dios=..`. Lines without a valid device are skipped.
pub(crate) fn parse_io_stat(text: &str) -> Vec<IOEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        let mut entry = IOEntry {
            major,
            minor,
            ..Default::default()
        };
        for kv in fields {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else {
                continue;
            };
            match k {
                "rbytes" => entry.rbytes = v,
                "wbytes" => entry.wbytes = v,
                "rios" => entry.rios = v,
                "wios" => entry.wios = v,
                _ => {}
            }
        }
        out.push(entry);
    }
    out
}

/// A pressure (PSI) file: `some avg10=.. avg60=.. avg300=.. total=..` and
/// optionally the same for `full`.
pub(crate) fn parse_psi(text: &str) -> PSIStats {
    let mut stats = PSIStats::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let kind = fields.next();
        let mut data = PSIData::new();
        for kv in fields {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "avg10" => data.avg10 = v.parse().unwrap_or(0.0),
                "avg60" => data.avg60 = v.parse().unwrap_or(0.0),
                "avg300" => data.avg300 = v.parse().unwrap_or(0.0),
                "total" => data.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        match kind {
            Some("some") => stats.some = MessageField::some(data),
            Some("full") => stats.full = MessageField::some(data),
            _ => {}
        }
    }
    stats
}

/// Reads a PSI file; missing, or PSI disabled in the kernel (`EOPNOTSUPP`),
/// gives `None`.
fn read_psi(dir: &Path, file: &str) -> Result<Option<PSIStats>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(t) => Ok(Some(parse_psi(&t))),
        Err(e)
            if files::is_missing(&e)
                || e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32) =>
        {
            Ok(None)
        }
        Err(source) => Err(CgroupError::Read { path, source }),
    }
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

fn hugetlb(dir: &Path) -> Result<Vec<HugeTlbStat>, CgroupError> {
    let mut out = Vec::new();
    for size in hugepage_sizes() {
        let file = |name: &str| format!("hugetlb.{size}.{name}");
        let Some(current) = read_u64(dir, &file("current"), V2_MAX)? else {
            continue;
        };
        let failcnt = read_kv(dir, &file("events"))?
            .and_then(|kv| kv.get("max").copied())
            .unwrap_or(0);
        out.push(HugeTlbStat {
            current,
            max: read_u64(dir, &file("max"), V2_MAX)?.unwrap_or(0),
            pagesize: size.clone(),
            failcnt,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat() {
        let c = parse_cpu_stat(
            "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 10\nnr_throttled 2\nthrottled_usec 50\nnr_bursts 1\nburst_usec 5\n",
        );
        assert_eq!(c.usage_usec, 1000);
        assert_eq!(c.user_usec, 600);
        assert_eq!(c.system_usec, 400);
        assert_eq!(c.nr_periods, 10);
        assert_eq!(c.nr_throttled, 2);
        assert_eq!(c.throttled_usec, 50);
        assert_eq!(c.nr_bursts, 1);
        assert_eq!(c.burst_usec, 5);
    }

    #[test]
    fn memory_stat() {
        let m = parse_memory_stat(
            "anon 1\nfile 2\nkernel_stack 3\nslab 4\nsock 5\nshmem 6\nfile_mapped 7\nfile_dirty 8\nfile_writeback 9\nanon_thp 10\n\
             inactive_anon 11\nactive_anon 12\ninactive_file 13\nactive_file 14\nunevictable 15\nslab_reclaimable 16\n\
             slab_unreclaimable 17\npgfault 18\npgmajfault 19\nworkingset_refault_anon 20\nworkingset_refault_file 1\n\
             workingset_activate 21\nworkingset_nodereclaim 22\npgrefill 23\npgscan 24\npgsteal 25\npgactivate 26\n\
             pgdeactivate 27\npglazyfree 28\npglazyfreed 29\nthp_fault_alloc 30\nthp_collapse_alloc 31\n",
        );
        assert_eq!(m.anon, 1);
        assert_eq!(m.file, 2);
        assert_eq!(m.kernel_stack, 3);
        assert_eq!(m.sock, 5);
        assert_eq!(m.file_writeback, 9);
        assert_eq!(m.anon_thp, 10);
        assert_eq!(m.unevictable, 15);
        assert_eq!(m.slab_unreclaimable, 17);
        assert_eq!(m.pgmajfault, 19);
        assert_eq!(m.workingset_refault, 21, "anon + file");
        assert_eq!(m.workingset_activate, 21);
        assert_eq!(m.pglazyfreed, 29);
        assert_eq!(m.thp_collapse_alloc, 31);
        assert_eq!(m.usage, 0);
    }

    #[test]
    fn io_stat() {
        let e = parse_io_stat(
            "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
             8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n\
             bogus line\n\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].major, e[0].minor), (8, 16));
        assert_eq!(e[0].rbytes, 1459200);
        assert_eq!(e[0].wbytes, 314773504);
        assert_eq!(e[0].rios, 192);
        assert_eq!(e[0].wios, 353);
        assert_eq!(e[1].rios, 8950);
        assert!(parse_io_stat("").is_empty());
    }

    #[test]
    fn psi() {
        let p = parse_psi(
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.avg60, 0.25);
        assert_eq!(p.some.total, 12345);
        assert_eq!(p.full.total, 7);
        let p = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        assert!(p.some.is_some());
        assert!(p.full.is_none());
    }

    #[test]
    fn collect_from_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("pids.current"), "3\n").unwrap();
        fs::write(d.join("pids.max"), "max\n").unwrap();
        fs::write(
            d.join("cpu.stat"),
            "usage_usec 10\nuser_usec 6\nsystem_usec 4\n",
        )
        .unwrap();
        fs::write(
            d.join("cpu.pressure"),
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=9\n",
        )
        .unwrap();
        fs::write(d.join("memory.stat"), "anon 4096\nfile 8192\n").unwrap();
        fs::write(d.join("memory.current"), "12288\n").unwrap();
        fs::write(d.join("memory.max"), "max\n").unwrap();
        fs::write(d.join("memory.swap.current"), "0\n").unwrap();
        fs::write(d.join("memory.swap.max"), "1048576\n").unwrap();
        fs::write(d.join("memory.peak"), "20000\n").unwrap();
        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\noom_group_kill 5\n",
        )
        .unwrap();
        fs::write(d.join("io.stat"), "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n").unwrap();

        let m = collect(d).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.pids.limit, u64::MAX, "v2 'max' is reported as u64::MAX");
        assert_eq!(m.cpu.usage_usec, 10);
        assert_eq!(m.cpu.psi.some.total, 9);
        assert_eq!(m.memory.anon, 4096);
        assert_eq!(m.memory.usage, 12288);
        assert_eq!(m.memory.usage_limit, u64::MAX);
        assert_eq!(m.memory.swap_limit, 1048576);
        assert_eq!(m.memory.max_usage, 20000);
        assert!(m.memory.psi.is_none());
        assert_eq!(m.memory_events.oom_kill, 4);
        assert_eq!(m.memory_events.oom_group_kill, 5);
        assert_eq!(m.io.usage.len(), 1);
        assert_eq!(m.io.usage[0].wios, 4);
        assert!(m.rdma.is_none());

        // An empty directory: every section is left empty.
        let empty = tempfile::tempdir().unwrap();
        let m = collect(empty.path()).unwrap();
        assert_eq!(m, Metrics::new());
    }
}
