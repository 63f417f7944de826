//! `p2p-sha256`: digests, in JSON, text or `sha256sum` form, and `--check`,
//! with GNU `sha256sum`'s options, messages and exit status.

use crate::checkfile::{Entry, Line, LineStyle, Parser, split_lines};
use crate::cli::{ShaCli, ShaFormat};
use crate::client::{Fatal, PathSource, run_query};
use crate::error::ErrorCode;
use crate::input::{Names, Stdin};
use crate::output::{EXIT_FAILED, EXIT_OK, Printer, Style, quiet_on_closed_pipe};
use crate::proto::{Item, Outcome, PathBytes, Query, QueryKind, ShaFields, Target};
use crate::quote::quote_str;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const NAME: &str = "p2p-sha256";

/// Runs `p2p-sha256`; returns the exit status.
pub fn run(cli: ShaCli) -> i32 {
    quiet_on_closed_pipe();
    if let Err(message) = gnu_conflicts(&cli) {
        // As sha256sum: the message, the hint, and status 1.
        eprintln!("{NAME}: {message}\nTry '{NAME} --help' for more information.");
        return EXIT_FAILED;
    }
    let format = format(&cli);
    let style = if format == ShaFormat::Json {
        Style::Json
    } else {
        Style::Text
    };
    let mut printer = Printer::new(NAME, style);
    printer.quote_names(true);
    if cli.check && (cli.job.resume.is_some() || cli.job.progress) {
        let f = Fatal {
            status: crate::output::EXIT_USAGE,
            message: "--resume and --progress go with a run that writes digests, not with --check"
                .into(),
        };
        return super::finish(NAME, Err(f), &mut printer);
    }
    if cli.check {
        return check(&cli, format, &mut printer);
    }
    let cluster = cli.placement.target().is_some();
    let source = match PathSource::from_input(&cli.input, Stdin::SHA256, cluster) {
        Ok(s) => s,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let plain = format == ShaFormat::Sha256sum;
    let target = match super::target(&cli.placement, &mut printer, plain) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let (watch, mut progress) = match super::job(
        NAME,
        &cli.job,
        &cli.connection,
        &cli.placement,
        format == ShaFormat::Json,
        QueryKind::Sha256,
        &mut printer,
    ) {
        Ok(j) => j,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let source = source.watched(watch);
    let line_style = LineStyle {
        tag: cli.tag,
        binary: cli.binary,
        zero: cli.zero,
    };
    let mut fold = super::Fold::new(&cli.placement, style == Style::Text);
    let result = run_query(
        &cli.connection,
        query(target),
        source,
        &mut printer,
        &mut |printer, item: Item<ShaFields>| {
            if let Some(p) = progress.as_mut() {
                p.item(&item, |f| Some(f.bytes));
            }
            let Some(item) = fold.take(item) else { return };
            match &item.outcome {
                Outcome::Ok(f) if style == Style::Text => {
                    if f.changed {
                        printer.changed(&item.peer, &item.path);
                    }
                    printer.ok += 1;
                    let mut line = Vec::new();
                    if printer.peer_prefix() {
                        line.extend_from_slice(item.peer.as_bytes());
                        line.extend_from_slice(b": ");
                    }
                    crate::checkfile::write_line(
                        &mut line,
                        &f.sha256,
                        item.path.as_bytes(),
                        line_style,
                    );
                    printer.bytes(&line);
                }
                _ => {
                    if let Outcome::Ok(f) = &item.outcome
                        && f.changed
                    {
                        printer.changed(&item.peer, &item.path);
                    }
                    printer.item(&item, &|_, _| Vec::new());
                }
            }
        },
    );
    if let Some(p) = progress {
        p.finish();
    }
    let bad = fold.finish(NAME, &mut printer, &|f, path| {
        let mut line = Vec::new();
        crate::checkfile::write_line(&mut line, &f.sha256, path, line_style);
        line
    });
    super::with_groups(super::finish(NAME, result, &mut printer), bad)
}

/// The format asked for; without `--format`, the flags that shape
/// sha256sum's lines ask for those lines.
fn format(cli: &ShaCli) -> ShaFormat {
    match cli.format {
        Some(f) => f,
        None if cli.tag || cli.zero || cli.binary || cli.text => ShaFormat::Sha256sum,
        None => ShaFormat::Json,
    }
}

/// The combinations GNU `sha256sum` refuses, in the order it checks them,
/// with its words.
fn gnu_conflicts(cli: &ShaCli) -> Result<(), &'static str> {
    if cli.check {
        if cli.zero {
            return Err("the --zero option is not supported when verifying checksums");
        }
        if cli.tag {
            return Err("the --tag option is meaningless when verifying checksums");
        }
        if cli.binary || cli.text {
            return Err("the --binary and --text options are meaningless when verifying checksums");
        }
        return Ok(());
    }
    let only = [
        (cli.ignore_missing, "--ignore-missing"),
        (cli.status, "--status"),
        (cli.warn, "--warn"),
        (cli.quiet, "--quiet"),
        (cli.strict, "--strict"),
    ];
    if let Some((_, flag)) = only.iter().find(|(set, _)| *set) {
        return Err(match *flag {
            "--ignore-missing" => {
                "the --ignore-missing option is meaningful only when verifying checksums"
            }
            "--status" => "the --status option is meaningful only when verifying checksums",
            "--warn" => "the --warn option is meaningful only when verifying checksums",
            "--quiet" => "the --quiet option is meaningful only when verifying checksums",
            _ => "the --strict option is meaningful only when verifying checksums",
        });
    }
    if cli.tag && cli.text {
        return Err("--tag does not support --text mode");
    }
    Ok(())
}

fn query(target: Option<Target>) -> Query {
    Query {
        kind: QueryKind::Sha256,
        lines_only: false,
        bytes_only: false,
        max_line_length: false,
        recursive: false,
        dereference: false,
        posixly_correct: false,
        cwd: None,
        paths: None,
        target,
    }
}

/// One verified line of a `--check` run, in JSON.
#[derive(Debug, Serialize)]
struct Checked {
    sha256: String,
    bytes: u64,
    expected: String,
    #[serde(rename = "match")]
    matches: bool,
}

/// What `--check` prints, from its flags.
#[derive(Debug, Clone, Copy)]
struct Report {
    text: bool,
    quiet: bool,
    status: bool,
    warn: bool,
    strict: bool,
    ignore_missing: bool,
}

/// Verifies each check file (the operands; none or `-`: standard input) in
/// turn, as `sha256sum -c` does; one [`Parser`] reads them all, as GNU's
/// state carries across files.
fn check(cli: &ShaCli, format: ShaFormat, printer: &mut Printer) -> i32 {
    if cli.input.files_from.is_some() || cli.input.files0_from.is_some() {
        return super::finish(
            NAME,
            Err(Fatal {
                status: crate::output::EXIT_USAGE,
                message:
                    "--files-from and --files0-from list files to hash; with --check name the \
                          check files as operands"
                        .into(),
            }),
            printer,
        );
    }
    let target = match super::target(&cli.placement, printer, format == ShaFormat::Sha256sum) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), printer),
    };
    if cli.placement.group && !cli.placement.all && cli.placement.peers.is_empty() {
        return super::finish(
            NAME,
            Err(Fatal {
                status: crate::output::EXIT_USAGE,
                message:
                    "--check --group folds members with the same failures: add --all or --peer"
                        .into(),
            }),
            printer,
        );
    }
    let report = Report {
        text: format != ShaFormat::Json,
        quiet: cli.quiet,
        status: cli.status,
        warn: cli.warn,
        strict: cli.strict,
        ignore_missing: cli.ignore_missing,
    };
    let files: Vec<PathBuf> = if cli.input.paths.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        cli.input.paths.clone()
    };
    let mut parser = Parser::new();
    let mut ok = true;
    for file in &files {
        match check_one(cli, file, &target, report, &mut parser, printer) {
            Ok(good) => ok &= good,
            Err(f) => return super::finish(NAME, Err(f), printer),
        }
    }
    printer.flush();
    if ok { EXIT_OK } else { EXIT_FAILED }
}

/// The lines of one check file, with the malformed lines' numbers kept
/// where they fall, so that `--warn` names them between the results as
/// GNU's line-by-line reading does.
struct CheckList {
    entries: Vec<Entry>,
    /// For each entry, the malformed lines just before it.
    warnings_before: Vec<Vec<u64>>,
    /// Malformed lines after the last entry.
    warnings_after: Vec<u64>,
    malformed: u64,
}

fn read_list(data: &[u8], from_stdin: bool, parser: &mut Parser) -> CheckList {
    let mut list = CheckList {
        entries: Vec::new(),
        warnings_before: Vec::new(),
        warnings_after: Vec::new(),
        malformed: 0,
    };
    for (number, line) in split_lines(data) {
        match parser.line(line, from_stdin) {
            Line::Skip => {}
            Line::Entry(e) => {
                list.entries.push(e);
                list.warnings_before
                    .push(std::mem::take(&mut list.warnings_after));
            }
            Line::Malformed => {
                list.malformed += 1;
                list.warnings_after.push(number);
            }
        }
    }
    list
}

/// Reads a check file whole: standard input for `-`.
fn read_check_file(file: &Path) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    if file.as_os_str() == "-" {
        return std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .map(|_| data)
            .map_err(|_| "read error".to_string());
    }
    let mut f = std::fs::File::open(file).map_err(|e| crate::error::Error::from_io(&e).message)?;
    f.read_to_end(&mut data)
        .map(|_| data)
        .map_err(|_| "read error".to_string())
}

/// Verifies one check file; true when it passes as GNU's would.
fn check_one(
    cli: &ShaCli,
    file: &Path,
    target: &Option<Target>,
    report: Report,
    parser: &mut Parser,
    printer: &mut Printer,
) -> Result<bool, Fatal> {
    let from_stdin = file.as_os_str() == "-";
    let shown = if from_stdin {
        quote_str(b"standard input")
    } else {
        quote_str(file.as_os_str().as_bytes())
    };
    let data = match read_check_file(file) {
        Ok(d) => d,
        Err(why) => {
            printer.flush();
            eprintln!("{NAME}: {shown}: {why}");
            return Ok(false);
        }
    };
    let list = read_list(&data, from_stdin, parser);
    let warn_line = |n: u64| {
        eprintln!("{NAME}: {shown}: {n}: improperly formatted SHA256 checksum line");
    };
    let mut tally = Tally::default();
    // --all or --peer: every member verifies the whole list (--spread
    // shares it out, each path checked once, as on one host).
    let fleet_mode = cli.placement.all || !cli.placement.peers.is_empty();
    let mut fleet = Fleet::default();
    if !list.entries.is_empty() {
        let paths: Vec<PathBuf> = list
            .entries
            .iter()
            .map(|e| PathBuf::from(OsString::from_vec(e.name.clone())))
            .collect();
        let cluster = target.is_some();
        // Local results come back in the order given; cluster results in
        // any order (and once per member), matched to lines by path.
        let mut by_path: HashMap<PathBytes, VecDeque<usize>> = HashMap::new();
        if cluster {
            for (i, p) in paths.iter().enumerate() {
                by_path
                    .entry(PathBytes::from(p.as_path()))
                    .or_default()
                    .push_back(i);
            }
            if report.warn {
                list.warnings_before
                    .iter()
                    .flatten()
                    .for_each(|&n| warn_line(n));
            }
        }
        let every_member = cli.placement.all || cli.placement.peers.len() > 1;
        let mut next = 0usize;
        let result = run_query(
            &cli.connection,
            query(target.clone()),
            // A name `-` is standard input, as in GNU's check (a check file
            // read from there cannot name it); members cannot read ours.
            PathSource::Args(
                paths.into_iter(),
                Names::operands(if cluster {
                    Stdin::COUNT
                } else {
                    Stdin {
                        dash: true,
                        implicit: None,
                    }
                }),
            ),
            printer,
            &mut |printer, item: Item<ShaFields>| {
                let index = if cluster {
                    match by_path.get_mut(&item.path) {
                        Some(q) if every_member || q.len() == 1 => q.front().copied(),
                        Some(q) => q.pop_front(),
                        None => None,
                    }
                } else {
                    let i = next;
                    next += 1;
                    Some(i)
                };
                let Some(index) = index.filter(|&i| i < list.entries.len()) else {
                    return;
                };
                if !cluster && report.warn {
                    printer.flush();
                    list.warnings_before[index]
                        .iter()
                        .for_each(|&n| warn_line(n));
                }
                if fleet_mode {
                    fleet.item(
                        &list.entries[index],
                        item,
                        report,
                        cli.placement.group,
                        printer,
                    );
                } else {
                    tally.item(&list.entries[index], item, report, printer);
                }
            },
        );
        result?;
    }
    printer.flush();
    if report.warn {
        list.warnings_after.iter().for_each(|&n| warn_line(n));
    }
    let plural = |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    if list.entries.is_empty() {
        eprintln!("{NAME}: {shown}: no properly formatted checksum lines found");
        return Ok(false);
    }
    let m = list.malformed;
    if m > 0 && !report.status {
        eprintln!(
            "{NAME}: WARNING: {m} {} improperly formatted",
            plural(m, "line is", "lines are")
        );
    }
    if fleet_mode {
        let manifest = if from_stdin {
            "-".to_string()
        } else {
            file.display().to_string()
        };
        let passed = fleet.report(&manifest, report, cli.placement.group, printer);
        return Ok(passed && (!report.strict || m == 0));
    }
    if !report.status {
        let u = tally.unreadable;
        if u > 0 {
            eprintln!(
                "{NAME}: WARNING: {u} listed {} could not be read",
                plural(u, "file", "files")
            );
        }
        let x = tally.mismatched;
        if x > 0 {
            eprintln!(
                "{NAME}: WARNING: {x} computed {} did NOT match",
                plural(x, "checksum", "checksums")
            );
        }
        if report.ignore_missing && !tally.matched {
            eprintln!("{NAME}: {shown}: no file was verified");
        }
    }
    Ok(tally.matched
        && tally.mismatched == 0
        && tally.unreadable == 0
        && (!report.strict || m == 0))
}

/// What the results of one check file came to.
#[derive(Debug, Default)]
struct Tally {
    matched: bool,
    mismatched: u64,
    unreadable: u64,
}

impl Tally {
    /// Reports one result for the line `entry`.
    fn item(
        &mut self,
        entry: &Entry,
        item: Item<ShaFields>,
        report: Report,
        printer: &mut Printer,
    ) {
        let name = quote_str(&entry.name);
        let prefix = if report.text && printer.peer_prefix() {
            format!("{}: ", item.peer)
        } else {
            String::new()
        };
        match item.outcome {
            Outcome::Failed { error } => {
                if report.ignore_missing && error.code == ErrorCode::NotFound {
                    return;
                }
                self.unreadable += 1;
                let failed: Item<Checked> = Item {
                    id: None,
                    peer: item.peer,
                    path: item.path,
                    outcome: Outcome::Failed { error },
                };
                if report.text || report.status {
                    // The message on stderr, as the open or read failed.
                    if let Outcome::Failed { error } = &failed.outcome {
                        printer.say(&failed.peer, &name, &error.message);
                    }
                    if !report.status {
                        printer.raw(&format!("{prefix}{name}: FAILED open or read\n"));
                    }
                } else {
                    printer.item(&failed, &|_, _| Vec::new());
                }
            }
            Outcome::Ok(f) => {
                let matches = entry.expected.matches(&f.sha256);
                if matches {
                    self.matched = true;
                } else {
                    self.mismatched += 1;
                }
                if report.status || (matches && report.quiet) {
                    return;
                }
                if report.text {
                    let verdict = if matches { "OK" } else { "FAILED" };
                    printer.raw(&format!("{prefix}{name}: {verdict}\n"));
                } else {
                    printer.json(&Item {
                        id: None,
                        peer: item.peer,
                        path: item.path,
                        outcome: Outcome::Ok(Checked {
                            sha256: f.sha256,
                            bytes: f.bytes,
                            expected: entry.expected.as_str().to_string(),
                            matches,
                        }),
                    });
                }
            }
        }
    }
}

// The fleet check: `--check MANIFEST --all` (or `--peer`) verifies the
// manifest on every member, and reports per member.

/// What failed for one member and one path: `mismatch`, `missing` (not
/// found), or the error code.
#[derive(Debug, Clone, Serialize)]
struct Failure {
    #[serde(flatten)]
    path: PathBytes,
    failed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<crate::error::Error>,
}

impl Failure {
    /// What makes two members' failures the same: the path, what failed,
    /// the digest found (not the message, which names the member).
    fn key(&self) -> FailureKey {
        (
            self.path.as_bytes().to_vec(),
            self.failed.clone(),
            self.sha256.clone(),
        )
    }

    /// The GNU-like text line: `PATH: FAILED` or `PATH: FAILED open or read`.
    fn text(&self) -> String {
        let name = quote_str(self.path.as_bytes());
        match &self.error {
            None => format!("{name}: FAILED"),
            Some(_) => format!("{name}: FAILED open or read"),
        }
    }
}

/// What two members' failures must share to be the same.
type FailureKey = (Vec<u8>, String, Option<String>);

/// A failure line in JSON: the member, then the failure.
#[derive(Serialize)]
struct FailureLine<'a> {
    peer: &'a str,
    #[serde(flatten)]
    failure: &'a Failure,
}

/// What one member's results for one manifest came to.
#[derive(Debug, Default, Clone)]
struct MemberCheck {
    ok: u64,
    /// Mismatches and errors other than a missing file.
    failed: u64,
    missing: u64,
    failures: Vec<Failure>,
}

impl MemberCheck {
    /// True when this member passes: nothing failed, nothing missing
    /// (unless `--ignore-missing`), and some file matched.
    fn passes(&self, report: Report) -> bool {
        self.failed == 0 && (report.ignore_missing || self.missing == 0) && self.ok > 0
    }

    fn key(&self) -> (u64, u64, u64, Vec<FailureKey>) {
        let mut f: Vec<_> = self.failures.iter().map(Failure::key).collect();
        f.sort();
        (self.ok, self.failed, self.missing, f)
    }

    /// `MANIFEST: 3 OK, 1 FAILED, 0 missing`.
    fn text(&self, manifest: &str) -> String {
        format!(
            "{manifest}: {} OK, {} FAILED, {} missing",
            self.ok, self.failed, self.missing
        )
    }
}

/// A member's summary line in JSON.
#[derive(Serialize)]
struct MemberSummary<'a> {
    peer: &'a str,
    manifest: &'a str,
    ok: u64,
    failed: u64,
    missing: u64,
}

/// Members with the same failures, in JSON (`--group`).
#[derive(Serialize)]
struct FleetGroup<'a> {
    manifest: &'a str,
    ok: u64,
    failed: u64,
    missing: u64,
    failures: &'a [Failure],
    count: usize,
    peers: &'a [String],
}

/// Every member's results for one manifest.
#[derive(Debug, Default)]
struct Fleet {
    members: HashMap<String, MemberCheck>,
    /// Lines about no member (the local daemon went away): a failure.
    orphans: u64,
}

impl Fleet {
    /// Takes one member's result for the line `entry`; a failure is printed
    /// at once unless `group` (or `--status`).
    fn item(
        &mut self,
        entry: &Entry,
        item: Item<ShaFields>,
        report: Report,
        group: bool,
        printer: &mut Printer,
    ) {
        if item.peer.is_empty() {
            self.orphans += 1;
            printer.item(&item, &|_, _| Vec::new());
            return;
        }
        let member = self.members.entry(item.peer.clone()).or_default();
        let failure = match item.outcome {
            Outcome::Ok(f) if entry.expected.matches(&f.sha256) => {
                member.ok += 1;
                return;
            }
            Outcome::Ok(f) => {
                member.failed += 1;
                Failure {
                    path: item.path,
                    failed: "mismatch".into(),
                    sha256: Some(f.sha256),
                    expected: Some(entry.expected.as_str().to_string()),
                    error: None,
                }
            }
            Outcome::Failed { error } => {
                let missing = error.code == ErrorCode::NotFound;
                if missing {
                    member.missing += 1;
                    if report.ignore_missing {
                        return;
                    }
                } else {
                    member.failed += 1;
                }
                Failure {
                    path: item.path,
                    failed: if missing {
                        "missing".into()
                    } else {
                        error.code.as_str().into()
                    },
                    sha256: None,
                    expected: None,
                    error: Some(error),
                }
            }
        };
        if !group {
            if let (true, Some(error)) = (report.text, &failure.error) {
                // As sha256sum: why it could not be read, on stderr.
                printer.say(
                    &item.peer,
                    &quote_str(failure.path.as_bytes()),
                    &error.message,
                );
            }
            if !report.status {
                if report.text {
                    printer.raw(&format!("{}: {}\n", item.peer, failure.text()));
                } else {
                    printer.json(&FailureLine {
                        peer: &item.peer,
                        failure: &failure,
                    });
                }
            }
        }
        member.failures.push(failure);
    }

    /// Prints a summary per member (with `group`, per set of members with
    /// the same failures, largest first, with their failures); `--quiet`
    /// leaves out the members that pass, `--status` prints nothing. True
    /// when every member passed.
    fn report(self, manifest: &str, report: Report, group: bool, printer: &mut Printer) -> bool {
        use crate::nodeset::natural_cmp;
        let passed = self.orphans == 0 && self.members.values().all(|m| m.passes(report));
        let mut members: Vec<(String, MemberCheck)> = self.members.into_iter().collect();
        members.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        if report.status {
            return passed;
        }
        if !group {
            for (peer, m) in &members {
                if report.quiet && m.passes(report) {
                    continue;
                }
                if report.text {
                    printer.raw(&format!("{peer}: {}\n", m.text(manifest)));
                } else {
                    printer.json(&MemberSummary {
                        peer,
                        manifest,
                        ok: m.ok,
                        failed: m.failed,
                        missing: m.missing,
                    });
                }
            }
            return passed;
        }
        // Members with the same failures, in the order their first member comes.
        let mut groups: Vec<(MemberCheck, Vec<String>)> = Vec::new();
        let mut index: HashMap<_, usize> = HashMap::new();
        for (peer, mut m) in members {
            m.failures
                .sort_by(|a, b| a.path.cmp(&b.path).then(a.failed.cmp(&b.failed)));
            match index.get(&m.key()) {
                Some(&i) => groups[i].1.push(peer),
                None => {
                    index.insert(m.key(), groups.len());
                    groups.push((m, vec![peer]));
                }
            }
        }
        // Largest first; a stable sort keeps ties in their first member's order.
        groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
        for (m, peers) in &groups {
            if report.quiet && m.passes(report) {
                continue;
            }
            if report.text {
                let mut block = crate::group::header(peers);
                for f in &m.failures {
                    block.push_str(&f.text());
                    if let Some(e) = &f.error {
                        block.push_str(&format!(" ({}: {})", e.code, e.message));
                    }
                    block.push('\n');
                }
                block.push_str(&m.text(manifest));
                block.push('\n');
                printer.raw(&block);
            } else {
                printer.json(&FleetGroup {
                    manifest,
                    ok: m.ok,
                    failed: m.failed,
                    missing: m.missing,
                    failures: &m.failures,
                    count: peers.len(),
                    peers,
                });
            }
        }
        passed
    }
}
