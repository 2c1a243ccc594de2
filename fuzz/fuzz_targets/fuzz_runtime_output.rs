//! What the OCI runtime prints and leaves on disk: `runc state` / `runsc
//! state` output (`parse_state`), `runc ps --format json` (`parse_ps`),
//! `runsc wait` (`parse_wait`), `runsc events --stats` (`parse_stats`),
//! the runtime's `--log` JSON lines
//! (`last_log_error`) and the classification of its messages
//! (`error::classify`), and the runtimes' own state files as a cleanup
//! reads them: runc's `state.json` (`runc::state_file::parse_runc_state`)
//! and runsc's `<id>_sandbox:<sandbox>.state` (`runsc::state::parse_state`). Every
//! parser gets the whole input.
//!
//! Properties: no panic, no hang; the exit status of `wait` is 0..=255;
//! a `state.json` pid is the number written there, never a truncation of
//! a larger one; a runsc state's pids are 0 (unknown) or positive, and its
//! sandbox id is never empty (the file name gives it); errors are not
//! empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use robust_runtime::runc::state_file as runc_state;
use robust_runtime::runsc::state as runsc;
use robust_runtime::{last_log_error, parse_ps, parse_state, parse_stats, parse_wait, ErrorKind};

fuzz_target!(|data: &[u8]| {
    match parse_state(data) {
        Ok(s) => {
            // What the service and the cleanup then do with it.
            let _ = (s.pid > 0, s.status.as_str(), s.bundle.len(), s.id.len());
        }
        Err(e) => assert!(!e.is_empty()),
    }
    if let Err(e) = parse_ps(data) {
        assert!(!e.is_empty());
    }
    match parse_wait(data) {
        Ok(code) => assert!(code <= 255),
        Err(e) => assert!(!e.is_empty()),
    }

    match parse_stats(data) {
        Ok(st) => {
            // What the service copies into containerd's v1 metrics.
            let _ = (
                st.cpu.usage.percpu.len(),
                st.memory.usage.usage,
                st.pids.current,
            );
        }
        Err(e) => assert!(!e.is_empty()),
    }

    let message = last_log_error(data);
    if data.iter().all(u8::is_ascii_whitespace) {
        assert!(message.is_empty());
    }
    let kind = robust_runtime::RuntimeError::Failed {
        verb: "kill",
        id: "c1".into(),
        status: robust_reaper::ExitStatus::Code(1),
        message: message.clone(),
    }
    .kind();
    if message.is_empty() {
        assert_eq!(kind, ErrorKind::Other);
    }

    if let Some(st) = runc_state::parse_runc_state(data) {
        let v: serde_json::Value = serde_json::from_slice(data).unwrap();
        let written = v["init_process_pid"].as_i64().unwrap();
        assert_eq!(
            i64::from(st.init_pid),
            written,
            "state.json pid {written} read as {}",
            st.init_pid
        );
        for (_, dir) in &st.cgroup_paths {
            let _ = dir.as_os_str().len();
        }
    }

    match runsc::parse_state("c1_sandbox:pod1.state", data) {
        Ok(st) => {
            assert!(st.sandbox_pid >= 0 && st.gofer_pid >= 0, "{st:?}");
            assert!(!st.sandbox_id.is_empty(), "{st:?}");
        }
        Err(e) => assert!(e.starts_with("runsc state c1_sandbox:pod1.state: "), "{e}"),
    }
});
