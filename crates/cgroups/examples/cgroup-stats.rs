//! Prints the cgroup and the metrics of a process (default: itself).
//!
//! `cargo run -p robust-cgroups --example cgroup-stats -- [PID]`

use robust_cgroups::{Cgroup, Metrics};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pid = match std::env::args().nth(1) {
        Some(p) => p.parse()?,
        None => std::process::id(),
    };
    let cgroup = Cgroup::for_pid(pid)?;
    println!("{cgroup:#?}");
    println!("pids: {:?}", cgroup.pids()?);
    let metrics = cgroup.metrics()?;
    match &metrics {
        Metrics::V1(m) => println!("{m:#?}"),
        Metrics::V2(m) => println!("{m:#?}"),
    }
    let any = metrics.to_any();
    println!("Any: type_url={} ({} bytes)", any.type_url, any.value.len());
    Ok(())
}
