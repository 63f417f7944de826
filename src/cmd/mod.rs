//! One module per command: its flags come from [`crate::cli`], its run
//! function turns them into a query and prints the results.

pub mod count;
pub mod join;
pub mod keygen;
pub mod leave;
pub mod peers;
pub mod sha256;
pub mod stat;
pub mod wc;

use crate::cli::Placement;
use crate::client::Fatal;
use crate::output::{EXIT_USAGE, Printer, Style};
use crate::proto::Target;

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

/// Where the query runs, checked; text lines name their member when several
/// members may answer (unless `plain`, for formats other tools read).
fn target(p: &Placement, printer: &mut Printer, plain: bool) -> Result<Option<Target>, Fatal> {
    if !(p.tags.is_empty() || p.all || p.spread) {
        return Err(Fatal {
            status: EXIT_USAGE,
            message: "--where selects members for --all or --spread; add one of them".into(),
        });
    }
    printer.several_members(p.target().is_some(), plain);
    Ok(p.target())
}
