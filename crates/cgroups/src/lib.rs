//! robust-cgroups
