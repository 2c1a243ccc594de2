//! robust-cleanup
