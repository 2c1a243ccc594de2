//! robust-reaper
