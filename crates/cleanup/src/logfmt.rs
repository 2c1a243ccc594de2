//! logfmt values: [`robust_logfmt`], kept under this path for the crates
//! that log through cleanup.

pub use robust_logfmt::{parse, quote};
