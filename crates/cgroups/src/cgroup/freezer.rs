//! The freezer: v1 `freezer.state`, v2 `cgroup.freeze` / `cgroup.events`.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::{Cgroup, Inner};
use crate::error::CgroupError;
use crate::{files, parse};

/// How long [`Cgroup::freeze`] / [`Cgroup::thaw`] wait for the kernel.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

impl Cgroup {
    /// Whether the cgroup is frozen or being frozen.
    ///
    /// cgroup v1: `freezer.state` is `FROZEN` or `FREEZING`; cgroup v2:
    /// `cgroup.freeze` is `1`.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.inner {
            Inner::V1(_) => {
                let path = self.freezer_dir()?.join("freezer.state");
                let state = files::read(&path)?;
                match state.trim() {
                    "THAWED" => Ok(false),
                    "FROZEN" | "FREEZING" => Ok(true),
                    other => Err(CgroupError::Parse {
                        path,
                        reason: format!("unexpected freezer state {other:?}"),
                    }),
                }
            }
            Inner::V2(dir) => {
                let path = dir.join("cgroup.freeze");
                match files::read_optional(&path)?.as_deref().map(str::trim) {
                    Some("1") => Ok(true),
                    Some("0") => Ok(false),
                    Some(other) => Err(CgroupError::Parse {
                        path,
                        reason: format!("unexpected value {other:?}"),
                    }),
                    None => Err(self.missing_v2_freezer(dir)),
                }
            }
        }
    }

    /// Freezes every process of the cgroup and waits until the kernel
    /// reports it frozen (at most a few seconds).
    ///
    /// On cgroup v1 a freeze that does not complete in time is rolled back
    /// (thawed) before [`CgroupError::FreezeTimeout`] is returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    /// Thaws the cgroup and waits until the kernel reports it thawed.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    fn freezer_dir(&self) -> Result<&Path, CgroupError> {
        match &self.inner {
            Inner::V1(map) => map.get("freezer").map(PathBuf::as_path).ok_or_else(|| {
                CgroupError::MissingController {
                    controller: "freezer".into(),
                }
            }),
            Inner::V2(p) => Ok(p),
        }
    }

    fn missing_v2_freezer(&self, dir: &Path) -> CgroupError {
        if dir.is_dir() {
            CgroupError::MissingController {
                controller: "freezer (cgroup.freeze)".into(),
            }
        } else {
            CgroupError::NotFound {
                path: dir.to_path_buf(),
            }
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen { "FROZEN" } else { "THAWED" };
        match &self.inner {
            Inner::V1(_) => {
                let dir = self.freezer_dir()?;
                let path = dir.join("freezer.state");
                let result = wait_for(dir, state, || {
                    // Re-writing FROZEN is what makes the kernel retry tasks
                    // that could not be frozen on the first attempt.
                    files::write(&path, state)?;
                    Ok(files::read(&path)?.trim() == state)
                });
                if frozen && matches!(result, Err(CgroupError::FreezeTimeout { .. })) {
                    // Do not leave the cgroup stuck in FREEZING.
                    let _ = files::write(&path, "THAWED");
                }
                result
            }
            Inner::V2(dir) => {
                let freeze = dir.join("cgroup.freeze");
                if !freeze.exists() {
                    return Err(self.missing_v2_freezer(dir));
                }
                files::write(&freeze, if frozen { "1" } else { "0" })?;
                let events = dir.join("cgroup.events");
                let want = u64::from(frozen);
                wait_for(dir, state, || {
                    let Some(text) = files::read_optional(&events)? else {
                        return Err(CgroupError::NotFound { path: dir.clone() });
                    };
                    // Kernels without the "frozen" key: trust the write.
                    Ok(parse::parse_flat_keyed(&text)
                        .get("frozen")
                        .copied()
                        .unwrap_or(want)
                        == want)
                })
            }
        }
    }
}

/// Polls `done` with a growing sleep until it returns true or the freeze
/// timeout expires.
fn wait_for(
    dir: &Path,
    state: &'static str,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<(), CgroupError> {
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut delay = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                state,
                timeout: FREEZE_TIMEOUT,
            });
        }
        thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}
