//! The HTTP side of `tandem serve`: webhook receivers and their request authentication.
//!
//! Receivers verify, deduplicate, filter and enqueue; they contain no sync logic.

pub mod signature;
