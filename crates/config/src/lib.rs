//! robust-config
