//! `sweep`: clean the task bundles of this node that no live shim owns.
//!
//! ```text
//! containerd-shim-robust-v2 sweep [--namespace NS] [--id ID] [--dry-run]
//!     [--state-dir DIR] [--min-age DURATION]
//! ```
//! `--state-dir` is containerd's state dir or its task subdirectory
//! ([`sweep::resolve_state_dir`]).
//! Prints one table row per bundle (namespace, id, shim state, action,
//! result); exits non-zero when a clean failed. Safe to run again and
//! again: a bundle whose shim is alive is never touched.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use robust_cleanup::sweep::{self, SweepOptions};
use robust_reaper::Reaper;

use crate::args::Args;

pub fn run(args: Args) -> Result<()> {
    let mut opts = SweepOptions::default();
    if !args.state_dir.is_empty() {
        opts.state_dir = PathBuf::from(&args.state_dir);
    }
    if !args.namespace.is_empty() {
        robust_config::ids::validate_namespace(&args.namespace)?;
        opts.namespace = Some(args.namespace.clone());
    }
    if !args.id.is_empty() {
        robust_config::ids::validate_container_id(&args.id)?;
        opts.id = Some(args.id.clone());
    }
    opts.state_dir =
        sweep::resolve_state_dir(&opts.state_dir).map_err(|e| anyhow::anyhow!("sweep: {e}"))?;
    opts.dry_run = args.dry_run;
    if !args.min_age.is_empty() {
        opts.min_age = parse_age(&args.min_age)?;
    }
    let reaper = if opts.dry_run {
        None
    } else {
        let (r, exits) = Reaper::start().context("start reaper")?;
        std::thread::spawn(move || for _ in exits {});
        Some(r)
    };
    let rows = sweep::sweep(&opts, reaper.as_ref()).map_err(|e| anyhow::anyhow!("sweep: {e}"))?;
    print!("{}", sweep::format_table(&rows));
    let failed = rows.iter().filter(|r| r.failed).count();
    if failed > 0 {
        anyhow::bail!("sweep: {failed} bundle(s) could not be cleaned (see the table)");
    }
    Ok(())
}

/// `0`, `30` (seconds), `30s`, `1500ms`, `2m`, `1h`.
fn parse_age(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--min-age {s:?}: expected a number with ms, s, m or h"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => anyhow::bail!("--min-age {s:?}: unknown unit {unit:?} (ms, s, m, h)"),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_age("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_age("1500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_age("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_age("soon").is_err());
        assert!(parse_age("5d").is_err());
        assert!(parse_age("").is_err());
    }
}
