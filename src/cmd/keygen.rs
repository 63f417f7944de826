//! `p2p-keygen`: print a new random cluster key.

use crate::cli::KeygenCli;
use crate::crypto::keys::Key;

/// Runs `p2p-keygen`; returns the exit status.
pub fn run(_cli: KeygenCli) -> i32 {
    match Key::generate() {
        Ok(k) => {
            println!("{}", *zeroize::Zeroizing::new(k.encode()));
            0
        }
        Err(e) => {
            eprintln!("p2p-keygen: no randomness available: {e}");
            1
        }
    }
}
