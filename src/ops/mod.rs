//! The file computations: pure functions over bytes, a reader or an open file.
//!
//! Nothing here knows about sockets, clients or peers; the daemon calls these
//! from its worker pool and the tests call them directly.

pub mod count;
pub mod sha;
pub mod stat;
pub mod wc;
