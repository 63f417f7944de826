//! `p2p-sha256`: digests, in JSON, text or `sha256sum` form, and `--check`.

use crate::cli::{ShaCli, ShaFormat};
use crate::client::{PathSource, read_check_file, run_query};
use crate::input::Stdin;
use crate::output::{Printer, Style, quiet_on_closed_pipe, sha256sum_line};
use crate::proto::{Item, Outcome, Query, QueryKind, ShaFields, Target};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

const NAME: &str = "p2p-sha256";

/// Runs `p2p-sha256`; returns the exit status.
pub fn run(cli: ShaCli) -> i32 {
    quiet_on_closed_pipe();
    let style = if cli.format == ShaFormat::Json {
        Style::Json
    } else {
        Style::Text
    };
    let mut printer = Printer::new(NAME, style);
    if let Some(file) = &cli.check {
        return check(&cli, file, &mut printer);
    }
    let source =
        match PathSource::from_input(&cli.input, Stdin::SHA256, cli.placement.target().is_some()) {
            Ok(s) => s,
            Err(f) => return super::finish(NAME, Err(f), &mut printer),
        };
    let plain = cli.format == ShaFormat::Sha256sum;
    let target = match super::target(&cli.placement, &mut printer, plain) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let result = run_query(
        &cli.connection,
        query(target),
        source,
        &mut printer,
        &mut |printer, item: Item<ShaFields>| {
            if let Outcome::Ok(f) = &item.outcome
                && f.changed
            {
                printer.changed(&item.peer, &item.path);
            }
            printer.item(&item, &|f, path| sha256sum_line(&f.sha256, path));
        },
    );
    super::finish(NAME, result, &mut printer)
}

fn query(target: Option<Target>) -> Query {
    Query {
        kind: QueryKind::Sha256,
        lines_only: false,
        bytes_only: false,
        recursive: false,
        dereference: false,
        cwd: None,
        paths: None,
        target,
    }
}

/// One verified line of a `--check` run.
#[derive(Debug, Serialize)]
struct Checked {
    sha256: String,
    bytes: u64,
    expected: String,
    #[serde(rename = "match")]
    matches: bool,
}

/// Verifies a `sha256sum` file, reporting as `sha256sum -c` does in text form.
fn check(cli: &ShaCli, file: &Path, printer: &mut Printer) -> i32 {
    let (entries, malformed) = match read_check_file(file) {
        Ok(e) => e,
        Err(f) => return super::finish(NAME, Err(f), printer),
    };
    let text = cli.format != ShaFormat::Json;
    let target = match super::target(&cli.placement, printer, false) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), printer),
    };
    let mut mismatched = 0u64;
    let mut unreadable = 0u64;
    let paths: Vec<PathBuf> = entries.iter().map(|(_, p)| PathBuf::from(p)).collect();
    // Results may come back in any order (and, with --all, once per member),
    // so each is matched to its line by path; a path listed twice is checked
    // against its lines in turn.
    let mut expected_of: HashMap<String, VecDeque<String>> = HashMap::new();
    for (hash, path) in &entries {
        expected_of
            .entry(path.clone())
            .or_default()
            .push_back(hash.clone());
    }
    let every_member = cli.placement.all || cli.placement.peers.len() > 1;
    let result = if paths.is_empty() {
        Ok(())
    } else {
        run_query(
            &cli.connection,
            query(target),
            PathSource::paths(paths),
            printer,
            &mut |printer, item: Item<ShaFields>| {
                let expected = match expected_of.get_mut(&item.path) {
                    Some(q) if every_member || q.len() == 1 => q.front().cloned(),
                    Some(q) => q.pop_front(),
                    None => None,
                }
                .unwrap_or_default();
                match item.outcome {
                    Outcome::Ok(f) => {
                        let matches = f.sha256 == expected;
                        if !matches {
                            mismatched += 1;
                        }
                        let checked = Item {
                            id: None,
                            peer: item.peer,
                            path: item.path,
                            outcome: Outcome::Ok(Checked {
                                sha256: f.sha256,
                                bytes: f.bytes,
                                expected,
                                matches,
                            }),
                        };
                        printer.item(&checked, &|c, path| {
                            format!("{path}: {}\n", if c.matches { "OK" } else { "FAILED" })
                        });
                    }
                    Outcome::Failed { error } => {
                        unreadable += 1;
                        let failed: Item<Checked> = Item {
                            id: None,
                            peer: item.peer,
                            path: item.path.clone(),
                            outcome: Outcome::Failed { error },
                        };
                        printer.item(&failed, &|_, _| String::new());
                        if text {
                            printer.raw(&format!("{}: FAILED open or read\n", item.path));
                        }
                    }
                }
            },
        )
    };
    printer.flush();
    let plural = |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    if malformed > 0 {
        let m = malformed as u64;
        eprintln!(
            "{NAME}: WARNING: {m} {} improperly formatted",
            plural(m, "line is", "lines are")
        );
    }
    if unreadable > 0 {
        eprintln!(
            "{NAME}: WARNING: {unreadable} listed {} could not be read",
            plural(unreadable, "file", "files")
        );
    }
    if mismatched > 0 {
        eprintln!(
            "{NAME}: WARNING: {mismatched} computed {} did NOT match",
            plural(mismatched, "checksum", "checksums")
        );
    }
    if entries.is_empty() {
        eprintln!(
            "{NAME}: {}: no properly formatted checksum lines found",
            file.display()
        );
        return crate::output::EXIT_FAILED;
    }
    let status = super::finish(NAME, result, printer);
    if status == 0 && mismatched > 0 {
        crate::output::EXIT_FAILED
    } else {
        status
    }
}
