//! runc's `state.json` of a container (`<root>/<id>/state.json`): the
//! fields the dead-shim cleanup and the ownership rule use (the init and
//! its start time, the cgroup paths, the bundle it was created from).

use std::path::{Path, PathBuf};

use robust_bundle::{read_file, FileRead};

/// The fields of runc's `state.json` the cleanup uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuncStateFile {
    /// `init_process_pid`.
    pub init_pid: i32,
    /// `init_process_start` (clock ticks since boot).
    pub init_start: Option<u64>,
    /// `cgroup_paths`: controller (`""` for the unified tree) -> directory.
    pub cgroup_paths: Vec<(String, PathBuf)>,
    /// The `bundle=` label: the bundle the container was created from.
    pub bundle: Option<PathBuf>,
}

/// Parse runc's `state.json`. `None` when it is not JSON or has no
/// `init_process_pid` that is a pid (an integer that fits an `i32`).
pub fn parse_runc_state(bytes: &[u8]) -> Option<RuncStateFile> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    // Not `as i32`: 4294967297 would become pid 1.
    let init_pid = i32::try_from(v.get("init_process_pid")?.as_i64()?).ok()?;
    let init_start = match v.get("init_process_start") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let cgroup_paths = v
        .get("cgroup_paths")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, p)| Some((k.clone(), PathBuf::from(p.as_str()?))))
                .collect()
        })
        .unwrap_or_default();
    let bundle = v
        .pointer("/config/labels")
        .and_then(|l| l.as_array())
        .and_then(|l| {
            l.iter()
                .filter_map(|x| x.as_str())
                .find_map(|x| x.strip_prefix("bundle="))
                .map(PathBuf::from)
        });
    Some(RuncStateFile {
        init_pid,
        init_start,
        cgroup_paths,
        bundle,
    })
}

/// Read `<state_dir>/state.json` (runc).
pub fn read_runc_state(state_dir: &Path) -> Option<RuncStateFile> {
    match read_file(state_dir, "state.json") {
        FileRead::Bytes(b) => parse_runc_state(&b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_state_file() {
        let s = br#"{"id":"c1","init_process_pid":7688,"init_process_start":135209,
            "cgroup_paths":{"":"/sys/fs/cgroup/unified/default/c1","pids":"/sys/fs/cgroup/pids/default/c1"},
            "config":{"labels":["bundle=/run/b/default/c1"]}}"#;
        let st = parse_runc_state(s).unwrap();
        assert_eq!(st.init_pid, 7688);
        assert_eq!(st.init_start, Some(135209));
        assert_eq!(st.bundle.as_deref(), Some(Path::new("/run/b/default/c1")));
        assert_eq!(st.cgroup_paths.len(), 2);
        assert!(parse_runc_state(b"{}").is_none());
        assert!(parse_runc_state(b"nope").is_none());
        let st = parse_runc_state(br#"{"init_process_pid":1,"init_process_start":"99"}"#).unwrap();
        assert_eq!(st.init_start, Some(99));
        assert_eq!(st.bundle, None);
    }

    /// Caught by the property of fuzz/fuzz_targets/fuzz_runtime_output.rs
    /// (seed state_file_big_pid.json): a pid that does
    /// not fit an i32 was truncated (`4294967297 as i32` is 1, init).
    #[test]
    fn runc_state_pid_out_of_range_is_not_truncated() {
        for big in [
            "4294967297",
            "2147483648",
            "-4294967295",
            "9223372036854775807",
        ] {
            let s = format!(r#"{{"init_process_pid":{big},"init_process_start":"99"}}"#);
            assert_eq!(parse_runc_state(s.as_bytes()), None, "{big}");
        }
        let s = br#"{"init_process_pid":2147483647}"#;
        assert_eq!(parse_runc_state(s).unwrap().init_pid, i32::MAX);
    }
}
