//! `runsc events --stats`: a gVisor container's own statistics, in the
//! types [`RuntimeStats`] and its parts.
//!
//! Every container of a gVisor pod lives in the sandbox's cgroup, so the
//! cgroup cannot tell one container's usage from another's; runsc can.

use serde::Deserialize;

use crate::cli::{bad_output, snippet, Cli};
use crate::RuntimeError;

/// One container's statistics as its runtime reports them (the shape of
/// `runsc events --stats`; every field optional: runsc versions differ in
/// what they fill in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RuntimeStats {
    #[serde(default)]
    pub cpu: CpuStats,
    #[serde(default)]
    pub memory: MemoryStats,
    #[serde(default)]
    pub pids: PidsStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CpuStats {
    #[serde(default)]
    pub usage: CpuUsage,
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CpuUsage {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub kernel: u64,
    #[serde(default)]
    pub user: u64,
    #[serde(default)]
    pub percpu: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MemoryStats {
    #[serde(default)]
    pub cache: u64,
    #[serde(default)]
    pub usage: MemoryEntry,
    #[serde(default)]
    pub swap: MemoryEntry,
    #[serde(default)]
    pub kernel: MemoryEntry,
}

/// Bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MemoryEntry {
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub usage: u64,
    #[serde(default)]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PidsStats {
    #[serde(default)]
    pub current: u64,
    #[serde(default)]
    pub limit: u64,
}

/// Parse the output of `runsc events --stats <id>`: one JSON event
/// `{"type":"stats","id":...,"data":{...}}`. `Err` says what is wrong.
pub fn parse_stats(out: &[u8]) -> Result<RuntimeStats, String> {
    #[derive(Deserialize)]
    struct Event {
        #[serde(rename = "type", default)]
        kind: String,
        data: Option<RuntimeStats>,
    }
    let text = String::from_utf8_lossy(out);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| "empty output".to_string())?;
    let ev: Event =
        serde_json::from_str(line).map_err(|e| format!("{e}: {}", snippet(line.as_bytes())))?;
    if ev.kind != "stats" {
        let kind = snippet(ev.kind.as_bytes());
        return Err(format!("event of type {kind:?}, not \"stats\""));
    }
    ev.data
        .ok_or_else(|| "stats event without data".to_string())
}

/// `runsc events --stats <id>`, under the default deadline.
pub(crate) fn stats(cli: &Cli, id: &str) -> Result<RuntimeStats, RuntimeError> {
    let args = vec!["events".into(), "--stats".into(), id.into()];
    let out = cli.run("events", id, args, None, None)?;
    parse_stats(&out.stdout).map_err(|detail| bad_output("events", id, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_debian_runsc_prints() {
        let out = br#"{"type":"stats","id":"st1","data":{"cpu":{"usage":{"total":2085098320}},"memory":{"usage":{"limit":0,"usage":10592256,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"pids":{"current":4}}}
"#;
        let s = parse_stats(out).unwrap();
        assert_eq!(s.cpu.usage.total, 2_085_098_320);
        assert_eq!(s.memory.usage.usage, 10_592_256);
        assert_eq!(s.pids.current, 4);
    }

    #[test]
    fn rejects_what_is_not_a_stats_event() {
        assert!(parse_stats(b"").unwrap_err().contains("empty"));
        assert!(parse_stats(b"{\"type\":\"oom\",\"id\":\"x\"}")
            .unwrap_err()
            .contains("not \"stats\""));
        assert!(parse_stats(b"{\"type\":\"stats\"}")
            .unwrap_err()
            .contains("without data"));
        assert!(parse_stats(b"not json").is_err());
        let long = parse_stats(&[b'x'; 100_000]).unwrap_err();
        assert!(long.len() < 500, "error of {} bytes", long.len());
        assert!(parse_stats(br#"{"type":"stats","data":{"pids":{"current":-1}}}"#).is_err());
    }
}
