//! Typed errors with the documented wire codes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;

/// The documented error codes; every failed item carries exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    PermissionDenied,
    NotExported,
    IsDirectory,
    NotADirectory,
    /// Too many levels of symbolic links (ELOOP) on this host's own path.
    SymlinkLoop,
    Timeout,
    Unreachable,
    Unauthorized,
    InvalidRequest,
    Internal,
    /// `p2p-get`: the file changed while it was sent.
    Changed,
    /// `p2p-get`: the destination exists (no `--force`).
    Exists,
    /// `p2p-get`: what arrived does not hash to the member's digest.
    Mismatch,
}

impl ErrorCode {
    /// The code as it appears on the wire and in the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotExported => "not_exported",
            ErrorCode::IsDirectory => "is_directory",
            ErrorCode::NotADirectory => "not_a_directory",
            ErrorCode::SymlinkLoop => "symlink_loop",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Internal => "internal",
            ErrorCode::Changed => "changed",
            ErrorCode::Exists => "exists",
            ErrorCode::Mismatch => "mismatch",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item-level failure: a code for scripts and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// Maps an OS error to the closest documented code, keeping the OS text.
    pub fn from_io(err: &io::Error) -> Self {
        let code = match err.raw_os_error() {
            Some(libc::ENOENT) => ErrorCode::NotFound,
            Some(libc::EACCES) | Some(libc::EPERM) => ErrorCode::PermissionDenied,
            Some(libc::EISDIR) => ErrorCode::IsDirectory,
            Some(libc::ENOTDIR) => ErrorCode::NotADirectory,
            // Below an export, exports.rs words ELOOP as not_exported itself.
            Some(libc::ELOOP) => ErrorCode::SymlinkLoop,
            Some(libc::EXDEV) => ErrorCode::NotExported,
            Some(libc::ETIMEDOUT) => ErrorCode::Timeout,
            Some(libc::ECONNREFUSED) | Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => {
                ErrorCode::Unreachable
            }
            Some(libc::ENAMETOOLONG) | Some(libc::EINVAL) => ErrorCode::InvalidRequest,
            _ => match err.kind() {
                io::ErrorKind::NotFound => ErrorCode::NotFound,
                io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
                io::ErrorKind::TimedOut => ErrorCode::Timeout,
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                    ErrorCode::InvalidRequest
                }
                _ => ErrorCode::Internal,
            },
        };
        Error::new(code, os_message(err))
    }
}

/// The OS text without Rust's " (os error N)" suffix, as other tools print it.
fn os_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::from_io(&err)
    }
}

impl From<nix::Error> for Error {
    fn from(err: nix::Error) -> Self {
        Error::from_io(&io::Error::from_raw_os_error(err as i32))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_codes() {
        let e = Error::from_io(&io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(e.message, "No such file or directory");
        let e = Error::from_io(&io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        let e = Error::from_io(&io::Error::from_raw_os_error(libc::EISDIR));
        assert_eq!(e.code, ErrorCode::IsDirectory);
        let e = Error::from_io(&io::Error::from_raw_os_error(libc::ELOOP));
        assert_eq!(e.code, ErrorCode::SymlinkLoop);
        assert_eq!(e.code.as_str(), "symlink_loop");
    }

    #[test]
    fn codes_serialize_snake_case() {
        let s = serde_json::to_string(&ErrorCode::NotADirectory).unwrap();
        assert_eq!(s, "\"not_a_directory\"");
        assert_eq!(ErrorCode::NotADirectory.as_str(), "not_a_directory");
    }
}
