//! robust-shim's drop-in parity suite: every lifecycle case runs once against our shim
//! (`<case>::robust`, runtime io.containerd.robust.v2 / CRI handler `robust`) and once
//! against containerd's reference shim (`<case>::reference`, io.containerd.runc.v2 /
//! CRI handler `runc`), through the isolated containerd of integration/containerd.sh.
//!
//! Run it with `make test`, or by hand (see integration/README.md):
//!   integration/containerd.sh start && eval "$(integration/containerd.sh env)"
//!   cargo test -p robust-integration --release -- --test-threads=4 run_rm_exit_code

mod it;
