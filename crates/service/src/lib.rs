//! robust-service
