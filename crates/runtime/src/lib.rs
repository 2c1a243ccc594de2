//! robust-runtime
