//! The few facts of `/proc` the families and the cleanup read about a
//! process: alive or not, its command line, its parent.

/// Whether a pid is a live process (not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = s
        .rfind(')')
        .and_then(|i| s[i + 1..].split_whitespace().next())
        .unwrap_or("X");
    state != "Z" && state != "X"
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

/// The parent pid (field 4 of `/proc/<pid>/stat`).
pub fn parent_of(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&s)
}

/// Field 4 (ppid) of a `/proc/<pid>/stat` text.
pub fn parse_ppid(stat: &str) -> Option<i32> {
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().nth(1)?.parse().ok()
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
    fn ppid_parsing() {
        let stat = "1234 (a b) c) S 77 1234 1234 0 -1 4194560";
        assert_eq!(parse_ppid(stat), Some(77));
        assert_eq!(parse_ppid("garbage"), None);
        let me = std::process::id() as i32;
        assert_eq!(parent_of(me), Some(nix::unistd::getppid().as_raw()));
        assert!(pid_alive(me));
        assert!(!pid_alive(0));
        assert!(!cmdline(me).is_empty());
    }
}
