//! One module per command: its flags come from [`crate::cli`], its run
//! function turns them into a query and prints the results.

pub mod count;
pub mod join;
pub mod keygen;
pub mod peers;
pub mod sha256;
pub mod stat;
pub mod wc;

use crate::client::Fatal;
use crate::output::{Printer, Style};

/// Ends a command: reports a fatal error if there was one, flushes, and
/// returns the exit status.
fn finish(cmd: &str, result: Result<(), Fatal>, printer: &mut Printer) -> i32 {
    printer.flush();
    match result {
        Ok(()) => printer.status(),
        Err(f) => {
            eprintln!("{cmd}: {}", f.message);
            f.status
        }
    }
}

fn style(text: bool) -> Style {
    if text { Style::Text } else { Style::Json }
}
