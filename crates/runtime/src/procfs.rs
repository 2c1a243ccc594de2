//! The facts of `/proc` read about a process: its `stat` fields (alive or
//! not, its parent, its start time), its command line. Read by the
//! families about the processes they started, and by the cleanup.

/// The text of `/proc/<pid>/stat`; `None` when the process is gone.
pub fn proc_stat(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// Field `n` of a `/proc/<pid>/stat` text, counted from 1 as in proc(5),
/// for `n` from 3 (the state) on. The comm (field 2) may hold spaces and
/// parentheses: the fields are counted from its last `)`.
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().nth(n.checked_sub(3)?)
}

/// The start time of a process (field 22 of `/proc/<pid>/stat`, clock
/// ticks since boot): with the pid, it names one process for good.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    parse_start_time(&proc_stat(pid)?)
}

/// Field 22 (starttime) of a `/proc/<pid>/stat` text; `None` when it is
/// not there or not a number.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    stat_field(stat, 22)?.parse().ok()
}

/// Whether a pid is a live process (not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Some(s) = proc_stat(pid) else {
        return false;
    };
    let state = stat_field(&s, 3).unwrap_or("X");
    state != "Z" && state != "X"
}

/// The parent pid (field 4 of `/proc/<pid>/stat`).
pub fn parent_of(pid: i32) -> Option<i32> {
    parse_ppid(&proc_stat(pid)?)
}

/// Field 4 (ppid) of a `/proc/<pid>/stat` text.
pub fn parse_ppid(stat: &str) -> Option<i32> {
    stat_field(stat, 4)?.parse().ok()
}

/// The process's command line, one argument each (empty when gone).
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every pid in `/proc`.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_this_process() {
        let me = std::process::id() as i32;
        assert_eq!(parent_of(me), Some(nix::unistd::getppid().as_raw()));
        assert!(pid_alive(me));
        assert!(!pid_alive(0));
        assert!(proc_start_time(me).is_some());
        assert!(!cmdline(me).is_empty());
        assert!(all_pids().contains(&me));
    }
}
