//! `p2pd`'s config file: TOML whose keys are the daemon's long flags.
//!
//! ```toml
//! # /etc/p2pd/p2pd.toml
//! port = 65432
//! bind = "0.0.0.0"
//! advertise = "10.0.0.4:65432"
//! join = ["10.0.0.5:65432", "10.0.0.6:65432"]
//! tag = ["role=db", "dc=west"]
//! gossip-interval = 200
//! ```
//!
//! Every long flag of `p2pd` is a key, spelled as on the command line
//! (`gossip-interval`), except `config`, `help` and `version`; so is the
//! positional `port`. The positional seed (`p2pd PORT HOST:PORT`) is just a
//! `join`. A repeatable flag takes an array or a single value; a flag without
//! a value takes `true` or `false`; numbers are TOML integers, everything else
//! a string. A relative path is taken relative to the file's directory, not to
//! wherever the daemon was started.
//!
//! The file is `--config FILE` (or `P2PD_CONFIG`), else
//! `$XDG_CONFIG_HOME/p2p/p2pd.toml` (`~/.config/p2p/p2pd.toml`), else
//! `/etc/p2pd/p2pd.toml`, the first that exists. Precedence: flags, then the
//! environment, then the file, then the built-in defaults.
//!
//! The seed prototype's `config.py` had `AUTH_TOKEN` and
//! `GOSSIP_INTERVAL_SECONDS`. Their equivalents: `secret-file = "cluster.key"`
//! (or `P2PD_SECRET`, or a systemd credential) for the shared secret, which
//! is now a key file that never crosses the wire; and `gossip-interval`, in
//! milliseconds. Certified members add `ca`, `cert` and `node-key`.
//!
//! A file with a syntax error, an unknown key or a bad value is refused as a
//! whole, with its path, the line and a message, before anything starts.

use crate::cli::DaemonCli;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use std::any::TypeId;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The system-wide config file, used when no other is found.
pub const SYSTEM_CONFIG: &str = "/etc/p2pd/p2pd.toml";

/// Arguments that are not keys: the file cannot name itself, nor ask for help.
const NOT_KEYS: &[&str] = &["config", "help", "version"];

/// Positional arguments whose value the file gives under another key: the
/// seed's `HOST:PORT` is a `join`, and a seed on the command line overrides
/// the file's `join` as a `--join` would.
const POSITIONAL_ALIASES: &[(&str, &str)] = &[("seed", "join")];

/// Environment variables that the daemon reads itself (not through clap)
/// and that stand above a key of the file: `P2PD_SECRET` holds the keys that
/// `secret-file` would name, and the environment beats the file.
const ENV_OUTSIDE_CLAP: &[(&str, &str)] = &[("secret-file", "P2PD_SECRET")];

/// Why `p2pd` cannot start with this command line and config file.
#[derive(Debug)]
pub enum ConfigError {
    /// The command line or the environment is wrong, or help or the version
    /// was asked for: clap's own error, printed by [`clap::Error::exit`].
    Usage(clap::Error),
    /// The config file could not be read.
    Read { path: PathBuf, error: io::Error },
    /// The config file is wrong at this line and column (1-based).
    File {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl ConfigError {
    /// Prints the error and exits: clap's way (0 for help, 2 for usage), or
    /// `p2pd: MESSAGE` and status 2 for the file.
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Usage(e) => e.exit(),
            other => {
                eprintln!("p2pd: {other}");
                std::process::exit(2)
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Usage(e) => write!(f, "{}", e.to_string().trim_end()),
            ConfigError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            ConfigError::File {
                path,
                line,
                message,
                ..
            } => write!(f, "{}:{line}: {message}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses `p2pd`'s command line (with the program name first), merged with
/// its environment and config file.
pub fn load_daemon_cli(args: impl IntoIterator<Item = OsString>) -> Result<DaemonCli, ConfigError> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    load_with(args.into_iter().collect(), &env, &locate)
}

/// The config file to read: `explicit` (`--config`) when given, else the
/// per-user file, else the system one, when they exist.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    locate_in(
        explicit,
        crate::paths::user_config_dir().as_deref(),
        Path::new(SYSTEM_CONFIG),
    )
}

fn locate_in(explicit: Option<&Path>, user_dir: Option<&Path>, system: &Path) -> Option<PathBuf> {
    if let Some(p) = explicit {
        // Even when it does not exist: reading it then says so, which is
        // better than silently running without the file that was asked for.
        return Some(p.to_path_buf());
    }
    user_dir
        .map(|d| d.join("p2pd.toml"))
        .filter(|p| p.exists())
        .or_else(|| system.exists().then(|| system.to_path_buf()))
}

/// [`load_daemon_cli`] with the outside world passed in, for tests.
fn load_with(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
    locate: &dyn Fn(Option<&Path>) -> Option<PathBuf>,
) -> Result<DaemonCli, ConfigError> {
    let mut cmd = DaemonCli::command();
    let matches = merged_matches(&mut cmd, args, env, locate)?;
    let cli = DaemonCli::from_arg_matches(&matches)
        .map_err(|e| ConfigError::Usage(e.format(&mut cmd)))?;
    // Each tag was checked alone by its value parser; the set as a whole
    // (how many, how many bytes) only here.
    let tags: std::collections::BTreeMap<&String, &String> =
        cli.tags.iter().map(|(k, v)| (k, v)).collect();
    if let Err(e) = crate::membership::check_tags(tags) {
        return Err(ConfigError::Usage(
            cmd.error(ErrorKind::TooManyValues, format!("--tag: {e}")),
        ));
    }
    Ok(cli)
}

/// The heart of it. Clap parses the command line once, which tells which
/// arguments came from the command line or the environment; the file's
/// values for all the others are added to the command line as flags, and
/// clap parses the result, so clap alone decides what is valid and fills
/// the defaults.
fn merged_matches(
    cmd: &mut Command,
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
    locate: &dyn Fn(Option<&Path>) -> Option<PathBuf>,
) -> Result<ArgMatches, ConfigError> {
    // The file's values are checked one by one on a copy that neither reads
    // the environment nor requires anything, so an error is about that value.
    let mut checker = cmd
        .clone()
        .mut_args(|a| a.env(None::<&'static str>).required(false));
    cmd.build();
    let first = cmd
        .try_get_matches_from_mut(args.iter())
        .map_err(ConfigError::Usage)?;
    let explicit = first.try_get_one::<PathBuf>("config").ok().flatten();
    let Some(path) = locate(explicit.map(PathBuf::as_path)) else {
        return Ok(first);
    };
    let bytes = std::fs::read(&path).map_err(|error| ConfigError::Read {
        path: path.clone(),
        error,
    })?;
    let settings = parse_file(cmd, &mut checker, &path, &bytes)?;
    let argv = merged_argv(cmd, &first, &args, settings, env).map_err(|(span, message)| {
        let (line, column) = line_col(&bytes, span.start);
        ConfigError::File {
            path: path.clone(),
            line,
            column,
            message,
        }
    })?;
    cmd.try_get_matches_from_mut(argv)
        .map_err(ConfigError::Usage)
}

/// What the file's values of an argument must be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Integer,
    Float,
    Bool,
    Path,
    Text,
}

impl Ty {
    fn of(arg: &Arg) -> Ty {
        let id = arg.get_value_parser().type_id();
        let integers = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<u128>(),
            TypeId::of::<usize>(),
            TypeId::of::<i8>(),
            TypeId::of::<i16>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<i128>(),
            TypeId::of::<isize>(),
        ];
        if integers.iter().any(|t| id == *t) {
            Ty::Integer
        } else if id == TypeId::of::<f64>() || id == TypeId::of::<f32>() {
            Ty::Float
        } else if id == TypeId::of::<bool>() {
            Ty::Bool
        } else if id == TypeId::of::<PathBuf>() {
            Ty::Path
        } else {
            Ty::Text
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Ty::Integer => "an integer",
            Ty::Float => "a number",
            Ty::Bool => "true or false",
            Ty::Path | Ty::Text => "a string",
        }
    }
}

/// How an argument is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A flag without a value: `true` gives it once.
    Flag,
    /// A flag counted by repetition (`-vvv`): an integer.
    Count,
    /// A flag or positional with values; `many` when it repeats.
    Value { many: bool, ty: Ty },
}

/// A key of the file and the argument it sets.
struct Key<'c> {
    name: String,
    arg: &'c Arg,
    kind: Kind,
}

/// Every key the file may have, derived from the command so that a flag
/// added to `p2pd` is a key at once.
fn keys(cmd: &Command) -> Vec<Key<'_>> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_KEYS.contains(&id) || POSITIONAL_ALIASES.iter().any(|(p, _)| *p == id) {
            continue;
        }
        let name = match (arg.is_positional(), arg.get_long()) {
            (true, _) => id.replace('_', "-"),
            (false, Some(long)) => long.to_string(),
            // A short-only flag has no name to write in the file.
            (false, None) => continue,
        };
        let repeats = arg
            .get_num_args()
            .is_some_and(|r| r.max_values() > 1 && r.takes_values());
        let kind = match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => Kind::Flag,
            ArgAction::Count => Kind::Count,
            ArgAction::Append => Kind::Value {
                many: true,
                ty: Ty::of(arg),
            },
            ArgAction::Set => Kind::Value {
                many: repeats,
                ty: Ty::of(arg),
            },
            _ => continue,
        };
        out.push(Key { name, arg, kind });
    }
    out
}

/// What one key of the file adds to the command line.
enum Apply {
    /// The flag, this many times.
    Flag(usize),
    /// These values, each checked by the argument's own parser.
    Values(Vec<OsString>),
}

/// A key of the file with its place (for errors) and checked values.
struct Setting<'c> {
    key: Key<'c>,
    span: std::ops::Range<usize>,
    apply: Apply,
}

/// A position in the file and what is wrong there.
type Located = (std::ops::Range<usize>, String);

/// Parses and checks the whole file: syntax, keys, types and values.
fn parse_file<'c>(
    cmd: &'c Command,
    checker: &mut Command,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<Setting<'c>>, ConfigError> {
    let err = |(span, message): Located| {
        let (line, column) = line_col(bytes, span.start);
        ConfigError::File {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        err((at..at, "the file is not UTF-8 text".to_string()))
    })?;
    let table = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        err((span, format!("TOML syntax: {}", e.message())))
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut known: Vec<Option<Key<'c>>> = keys(cmd).into_iter().map(Some).collect();
    let mut settings = Vec::new();
    // Report the first problem in the order of the file, as a reader would.
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let name: &str = k.get_ref();
        let Some(slot) = known
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|key| key.name == name))
        else {
            return Err(err((k.span(), unknown_key(name, cmd))));
        };
        let Some(key) = slot.take() else {
            // TOML itself refuses a key given twice; this cannot happen.
            continue;
        };
        let apply = values(&key, v, base, checker).map_err(err)?;
        settings.push(Setting {
            key,
            span: k.span(),
            apply,
        });
    }
    Ok(settings)
}

/// The command-line form of one key's value, type-checked and run through
/// the argument's value parser.
fn values(
    key: &Key<'_>,
    v: &Spanned<DeValue<'_>>,
    base: &Path,
    checker: &mut Command,
) -> Result<Apply, Located> {
    let wrong = |found: &DeValue<'_>, expected: &str| {
        format!(
            "{}: expected {expected}, found {}",
            key.name,
            describe(found)
        )
    };
    match key.kind {
        Kind::Flag => match v.get_ref() {
            DeValue::Boolean(b) => Ok(Apply::Flag(usize::from(*b))),
            other => Err((v.span(), wrong(other, "true or false"))),
        },
        Kind::Count => match v.get_ref() {
            DeValue::Boolean(b) => Ok(Apply::Flag(usize::from(*b))),
            DeValue::Integer(i) => {
                let n = i128::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| (v.span(), format!("{}: expected 0 to 255", key.name)))?;
                Ok(Apply::Flag(usize::from(n)))
            }
            other => Err((v.span(), wrong(other, "an integer"))),
        },
        Kind::Value { many, ty } => {
            let expected = match key.arg.get_value_names().and_then(|n| n.first()) {
                Some(n) => format!("{} ({n})", ty.describe()),
                None => ty.describe().to_string(),
            };
            let items: Vec<&Spanned<DeValue<'_>>> = match v.get_ref() {
                DeValue::Array(a) if many => a.iter().collect(),
                DeValue::Array(_) => {
                    return Err((
                        v.span(),
                        format!(
                            "{}: expected {expected}, found an array (it takes one value)",
                            key.name
                        ),
                    ));
                }
                _ => vec![v],
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let text = scalar(item.get_ref(), ty)
                    .ok_or_else(|| (item.span(), wrong(item.get_ref(), &expected)))?;
                let text = match ty {
                    Ty::Path if !text.is_empty() && Path::new(&text).is_relative() => {
                        base.join(&text).into_os_string()
                    }
                    _ => OsString::from(text),
                };
                check(checker, key, &text)
                    .map_err(|m| (item.span(), format!("{}: {m}", key.name)))?;
                out.push(text);
            }
            Ok(Apply::Values(out))
        }
    }
}

/// A TOML scalar as command-line text, when it has the type `ty` wants.
fn scalar(v: &DeValue<'_>, ty: Ty) -> Option<String> {
    match (ty, v) {
        (Ty::Integer | Ty::Float, DeValue::Integer(i)) => {
            // Through a number, so that 0x10 and 1_000 reach clap as 16 and 1000.
            i128::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n.to_string())
        }
        (Ty::Float, DeValue::Float(f)) => Some(f.as_str().to_string()),
        (Ty::Bool, DeValue::Boolean(b)) => Some(b.to_string()),
        (Ty::Path | Ty::Text, DeValue::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn describe(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Runs the argument's value parser on one value, by parsing a command line
/// that holds only it. (clap does not expose a value parser to call alone.)
fn check(checker: &mut Command, key: &Key<'_>, value: &OsStr) -> Result<(), String> {
    let mut argv = vec![OsString::from(checker.get_name())];
    if key.arg.is_positional() {
        argv.push("--".into());
        // Earlier positionals take their defaults so this value lands in its slot.
        for p in checker.get_positionals() {
            if p.get_id() == key.arg.get_id() {
                break;
            }
            match p.get_default_values().first() {
                Some(d) => argv.push(d.into()),
                // No value to put before it; the final parse still checks it.
                None => return Ok(()),
            }
        }
        argv.push(value.to_os_string());
    } else {
        let mut flag = OsString::from(format!("--{}=", key.name));
        flag.push(value);
        argv.push(flag);
    }
    match checker.try_get_matches_from_mut(argv) {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            ErrorKind::ValueValidation | ErrorKind::InvalidValue | ErrorKind::InvalidUtf8 => {
                Err(value_message(&e, &value.to_string_lossy()))
            }
            // Anything else (a conflict, a missing companion) is about the
            // combination, which the final parse judges.
            _ => Ok(()),
        },
    }
}

/// The part of clap's error that is about the value, without the usage.
fn value_message(e: &clap::Error, value: &str) -> String {
    if let Some(source) = std::error::Error::source(e) {
        let m = source.to_string();
        return if !value.is_empty() && m.contains(value) {
            m
        } else {
            format!("invalid value {value:?}: {m}")
        };
    }
    if value.is_empty() {
        return "an empty value is not allowed".to_string();
    }
    match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) if !valid.is_empty() => {
            format!(
                "invalid value {value:?} (possible values: {})",
                valid.join(", ")
            )
        }
        _ => format!("invalid value {value:?}"),
    }
}

/// `unknown key`, with the nearest known key when one is close.
fn unknown_key(name: &str, cmd: &Command) -> String {
    if NOT_KEYS.contains(&name) {
        return format!("`{name}` cannot be set in a config file");
    }
    if let Some((_, alias)) = POSITIONAL_ALIASES.iter().find(|(p, _)| *p == name) {
        return format!("unknown key `{name}`; in a config file it is `{alias}`");
    }
    let names: Vec<String> = keys(cmd).into_iter().map(|k| k.name).collect();
    let nearest = names
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d);
    match nearest {
        Some((_, k)) => format!("unknown key `{name}` (did you mean `{k}`?)"),
        None => format!("unknown key `{name}`; the keys are p2pd's long flags (see p2pd --help)"),
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let replace = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = replace.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Whether the command line or the environment already gave this key, so
/// the file's value must yield.
fn given_outside_file(
    first: &ArgMatches,
    key: &Key<'_>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> bool {
    let explicit = |id: &str| {
        matches!(
            first.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    explicit(key.arg.get_id().as_str())
        || POSITIONAL_ALIASES
            .iter()
            .any(|(pos, alias)| *alias == key.name && explicit(pos))
        || ENV_OUTSIDE_CLAP
            .iter()
            .any(|(k, var)| *k == key.name && env(var).is_some())
}

/// The command line clap parses the second time: the file's flags first,
/// then the original arguments, then the file's positionals at the end
/// (after `--`, so no value can be taken for a flag).
fn merged_argv(
    cmd: &Command,
    first: &ArgMatches,
    args: &[OsString],
    settings: Vec<Setting<'_>>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, Located> {
    let mut out: Vec<OsString> = vec![
        args.first()
            .cloned()
            .unwrap_or_else(|| cmd.get_name().into()),
    ];
    let mut positional: Vec<Setting<'_>> = Vec::new();
    for s in settings {
        if given_outside_file(first, &s.key, env) {
            continue;
        }
        if s.key.arg.is_positional() {
            positional.push(s);
            continue;
        }
        match s.apply {
            Apply::Flag(n) => {
                for _ in 0..n {
                    out.push(format!("--{}", s.key.name).into());
                }
            }
            Apply::Values(vs) => {
                for v in vs {
                    let mut flag = OsString::from(format!("--{}=", s.key.name));
                    flag.push(v);
                    out.push(flag);
                }
            }
        }
    }
    out.extend(args.iter().skip(1).cloned());
    if positional.is_empty() {
        return Ok(out);
    }
    // The command line fills the first positional slots; the file may fill
    // the next ones, and a gap between takes the slot's default.
    let slots: Vec<&Arg> = cmd.get_positionals().collect();
    let on_line = slots
        .iter()
        .take_while(|a| first.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .count();
    let last = slots
        .iter()
        .rposition(|a| positional.iter().any(|s| s.key.arg.get_id() == a.get_id()))
        .unwrap_or(0);
    let mut tail: Vec<OsString> = Vec::new();
    for slot in slots.iter().take(last + 1).skip(on_line) {
        if let Some(s) = positional
            .iter_mut()
            .find(|s| s.key.arg.get_id() == slot.get_id())
        {
            if let Apply::Values(vs) = &mut s.apply {
                tail.append(vs);
            }
        } else if let Some(d) = slot.get_default_values().first() {
            tail.push(d.into());
        } else {
            // A gap means some later slot comes from the file: blame it.
            let later = positional.first();
            let span = later.map(|s| s.span.clone()).unwrap_or(0..0);
            let name = later.map(|s| s.key.name.as_str()).unwrap_or("?");
            return Err((
                span,
                format!(
                    "{name}: cannot be set without `{}`",
                    slot.get_id().as_str().replace('_', "-")
                ),
            ));
        }
    }
    if !args.iter().skip(1).any(|a| a == "--") {
        out.push("--".into());
    }
    out.extend(tail);
    Ok(out)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn only_explicit(p: Option<&Path>) -> Option<PathBuf> {
        p.map(Path::to_path_buf)
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("p2pd")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// Writes `text` as a config file and loads it with `args`, with no
    /// environment.
    fn load(text: &str, args: &[&str]) -> (tempfile::TempDir, Result<DaemonCli, ConfigError>) {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("p2pd.toml");
        fs::write(&file, text).unwrap();
        let mut all = vec!["--config", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let r = load_with(argv(&all), &no_env, &only_explicit);
        (t, r)
    }

    fn file_error(text: &str) -> (usize, String) {
        let (t, r) = load(text, &[]);
        match r {
            Err(ConfigError::File {
                path,
                line,
                message,
                ..
            }) => {
                assert_eq!(path, t.path().join("p2pd.toml"));
                (line, message)
            }
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    #[test]
    fn no_file_is_the_plain_command_line() {
        let c = load_with(argv(&["65433"]), &no_env, &|_| None).unwrap();
        assert_eq!(c.port, 65433);
        assert_eq!(c.gossip_interval, 100);
    }

    #[test]
    fn file_beats_defaults() {
        let (_t, r) = load(
            "port = 65440\ngossip-interval = 300\nbind = \"127.0.0.2\"\nname = \"db1\"\n\
             cache-entries = 0x10\n",
            &[],
        );
        let c = r.unwrap();
        assert_eq!(c.port, 65440);
        assert_eq!(c.gossip_interval, 300);
        assert_eq!(c.bind.to_string(), "127.0.0.2");
        assert_eq!(c.name.as_deref(), Some("db1"));
        assert_eq!(c.cache_entries, 16);
        assert_eq!(
            c.probe_interval, 1000,
            "keys not in the file keep their defaults"
        );
    }

    #[test]
    fn flags_beat_the_file() {
        let (_t, r) = load(
            "port = 65440\ngossip-interval = 300\njoin = [\"a:1\"]\ntag = [\"role=db\"]\n",
            &[
                "--gossip-interval",
                "400",
                "--tag",
                "role=web",
                "65450",
                "b:2",
            ],
        );
        let c = r.unwrap();
        assert_eq!(c.port, 65450);
        assert_eq!(c.gossip_interval, 400);
        assert_eq!(c.tags, vec![("role".to_string(), "web".to_string())]);
        // The positional seed is a join: given on the command line, it
        // replaces the file's `join` as `--join` would.
        assert_eq!(c.seed.as_deref(), Some("b:2"));
        assert!(c.join.is_empty(), "{:?}", c.join);
    }

    #[test]
    fn a_join_flag_replaces_the_files_joins() {
        let (_t, r) = load("join = [\"a:1\", \"b:2\"]\n", &["--join", "c:3"]);
        assert_eq!(r.unwrap().join, vec!["c:3"]);
    }

    #[test]
    fn repeatable_flags_take_arrays_or_one_value() {
        let (_t, r) = load(
            "join = [\"10.0.0.5:65432\", \"10.0.0.6:65432\"]\ntag = \"role=db\"\n",
            &[],
        );
        let c = r.unwrap();
        assert_eq!(c.join, vec!["10.0.0.5:65432", "10.0.0.6:65432"]);
        assert_eq!(c.tags, vec![("role".to_string(), "db".to_string())]);
        assert!(c.seed.is_none());
    }

    #[test]
    fn file_positional_port_with_flags_on_the_line() {
        let (_t, r) = load("port = 65441\n", &["--name", "x", "--"]);
        let c = r.unwrap();
        assert_eq!(c.port, 65441);
        assert_eq!(c.name.as_deref(), Some("x"));
    }

    #[test]
    fn relative_paths_are_beside_the_file() {
        let (t, r) = load(
            "secret-file = \"cluster.key\"\nsocket = \"/run/x.sock\"\n",
            &[],
        );
        let c = r.unwrap();
        assert_eq!(c.secret_file, Some(t.path().join("cluster.key")));
        assert_eq!(c.socket, Some(PathBuf::from("/run/x.sock")));
    }

    #[test]
    fn certificate_files_come_from_the_file_beside_it() {
        let (t, r) = load(
            "ca = \"ca.pub\"\ncert = \"node.crt\"\nnode-key = \"/etc/p2pd/node.key\"\n",
            &[],
        );
        let c = r.unwrap();
        assert_eq!(c.ca, Some(t.path().join("ca.pub")));
        assert_eq!(c.cert, Some(t.path().join("node.crt")));
        assert_eq!(c.node_key, Some(PathBuf::from("/etc/p2pd/node.key")));
        // One without the others is refused, as on the command line.
        let (_t, r) = load("ca = \"ca.pub\"\n", &[]);
        assert!(r.is_err());
    }

    #[test]
    fn p2pd_secret_beats_the_files_secret_file() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("p2pd.toml");
        fs::write(&file, "secret-file = \"/etc/p2pd/cluster.key\"\n").unwrap();
        let args = argv(&["--config", file.to_str().unwrap()]);
        let with_secret = |name: &str| (name == "P2PD_SECRET").then(|| OsString::from("k"));
        let c = load_with(args.clone(), &with_secret, &only_explicit).unwrap();
        assert_eq!(c.secret_file, None);
        let c = load_with(args, &no_env, &only_explicit).unwrap();
        assert_eq!(c.secret_file, Some(PathBuf::from("/etc/p2pd/cluster.key")));
    }

    #[test]
    fn syntax_errors_say_where() {
        let (line, m) = file_error("port = 65440\ngossip-interval = = 3\n");
        assert_eq!(line, 2);
        assert!(m.starts_with("TOML syntax:"), "{m}");
        let (line, _) = file_error("port = 1\nport = 2\n");
        assert_eq!(line, 2, "a key given twice");
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        let (line, m) = file_error("port = 65440\n\n# timings\ngosip-interval = 300\n");
        assert_eq!(line, 4);
        assert_eq!(
            m,
            "unknown key `gosip-interval` (did you mean `gossip-interval`?)"
        );
        let (_, m) = file_error("gossip_interval = 300\n");
        assert!(m.contains("did you mean `gossip-interval`"), "{m}");
        let (_, m) = file_error("colour = \"red\"\n");
        assert!(m.starts_with("unknown key `colour`;"), "{m}");
        let (_, m) = file_error("seed = \"a:1\"\n");
        assert_eq!(m, "unknown key `seed`; in a config file it is `join`");
        let (_, m) = file_error("config = \"/x\"\n");
        assert!(m.contains("cannot be set in a config file"), "{m}");
    }

    #[test]
    fn wrong_types_are_refused() {
        let (line, m) = file_error("name = \"a\"\ngossip-interval = \"300\"\n");
        assert_eq!(line, 2);
        assert_eq!(
            m,
            "gossip-interval: expected an integer (MS), found a string"
        );
        let (_, m) = file_error("name = 5\n");
        assert_eq!(m, "name: expected a string (NAME), found an integer");
        let (_, m) = file_error("bind = [\"127.0.0.1\"]\n");
        assert!(m.contains("found an array (it takes one value)"), "{m}");
        let (line, m) = file_error("join = [\"a:1\",\n  2]\n");
        assert_eq!(line, 2, "the element's own line");
        assert!(m.starts_with("join: expected a string"), "{m}");
        let (_, m) = file_error("[port]\nx = 1\n");
        assert!(m.contains("found a table"), "{m}");
        let (_, m) = file_error("probe-interval = 1.5\n");
        assert!(m.contains("found a float"), "{m}");
    }

    #[test]
    fn out_of_range_values_say_the_range_and_line() {
        let (line, m) = file_error("port = 65440\ngossip-interval = 5\n");
        assert_eq!(line, 2);
        assert_eq!(m, "gossip-interval: 5 is not in 10..=60000");
        let (t, r) = load("\n\ngossip-interval = 5\n", &[]);
        let shown = r.unwrap_err().to_string();
        assert_eq!(
            shown,
            format!(
                "{}:3: gossip-interval: 5 is not in 10..=60000",
                t.path().join("p2pd.toml").display()
            )
        );
        let (_, m) = file_error("port = 70000\n");
        assert!(m.starts_with("port: 70000 is not in"), "{m}");
        let (_, m) = file_error("bind = \"localhost\"\n");
        assert!(m.starts_with("bind: invalid value \"localhost\""), "{m}");
        let (_, m) = file_error("advertise = \"10.0.0.4\"\n");
        assert!(
            m.starts_with("advertise: invalid value \"10.0.0.4\""),
            "{m}"
        );
        let (_, m) = file_error("socket = \"\"\n");
        assert_eq!(m, "socket: an empty value is not allowed");
    }

    #[test]
    fn names_and_tags_out_of_bounds_are_refused() {
        let (_d, r) = load("", &["--name", "a\nb"]);
        assert!(matches!(r, Err(ConfigError::Usage(_))));
        let (_d, r) = load("", &["--name", &"n".repeat(1000)]);
        assert!(matches!(r, Err(ConfigError::Usage(_))));
        let (_d, r) = load("", &["--tag", &format!("k={}", "v".repeat(1000))]);
        assert!(matches!(r, Err(ConfigError::Usage(_))));
        let many: Vec<String> = (0..17).map(|i| format!("k{i}=v")).collect();
        let mut args = Vec::new();
        for t in &many {
            args.extend(["--tag", t.as_str()]);
        }
        let (_d, r) = load("", &args);
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("at most 16 tags"), "{e}");
        let (line, m) = file_error("name = \"bad name\"\n");
        assert_eq!(line, 1);
        assert!(m.contains("member name"), "{m}");
        let (_d, r) = load("", &["--name", "node-1.example:65432", "--tag", "role=db"]);
        assert!(r.is_ok());
    }

    #[test]
    fn bad_tags_are_refused_at_their_line() {
        let (line, m) = file_error("tag = [\"role=db\",\n\"nodc\"]\n");
        assert_eq!(line, 2);
        assert_eq!(m, "tag: expected KEY=VALUE, got \"nodc\"");
    }

    #[test]
    fn exports_with_groups_are_a_list_of_strings_as_on_the_command_line() {
        let (t, r) = load(
            "export = [\"/srv/pub\", \"secret:groups=ops,audit\"]\n",
            &["--export", "/srv/x:groups=web"],
        );
        let c = r.unwrap();
        // The line's flag replaces the file's list; relative ones are beside the file.
        assert_eq!(c.exports, vec![PathBuf::from("/srv/x:groups=web")]);
        let (t2, r) = load(
            "export = [\"/srv/pub\", \"secret:groups=ops,audit\"]\n",
            &[],
        );
        assert_eq!(
            r.unwrap().exports,
            vec![
                PathBuf::from("/srv/pub"),
                t2.path().join("secret:groups=ops,audit")
            ]
        );
        drop(t);
        let (line, m) = file_error("export = [\"/srv/pub\",\n\"/srv/s:groups=o ps\"]\n");
        assert_eq!(line, 2);
        assert!(m.contains("the group \"o ps\" is not"), "{m}");
    }

    #[test]
    fn bad_values_are_refused_even_when_a_flag_overrides_them() {
        let (_t, r) = load("gossip-interval = 5\n", &["--gossip-interval", "300"]);
        assert!(matches!(r, Err(ConfigError::File { line: 1, .. })), "{r:?}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("nope.toml");
        let r = load_with(
            argv(&["--config", file.to_str().unwrap()]),
            &no_env,
            &locate,
        );
        match r {
            Err(e @ ConfigError::Read { .. }) => {
                assert!(e.to_string().contains("nope.toml"), "{e}");
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn not_utf8_is_refused() {
        let (line, m) = file_error("name = \"a\"\nport = \u{0}\n");
        assert_eq!(line, 2);
        assert!(m.starts_with("TOML syntax"), "{m}");
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("p2pd.toml");
        fs::write(&file, b"name = \"a\"\n\xff\n").unwrap();
        let r = load_with(
            argv(&["--config", file.to_str().unwrap()]),
            &no_env,
            &only_explicit,
        );
        assert!(matches!(r, Err(ConfigError::File { line: 2, .. })), "{r:?}");
    }

    #[test]
    fn usage_errors_stay_clap_errors() {
        let r = load_with(argv(&["--gossip-interval", "5"]), &no_env, &|_| None);
        match r {
            Err(ConfigError::Usage(e)) => assert_eq!(e.kind(), ErrorKind::ValueValidation),
            other => panic!("{other:?}"),
        }
        let r = load_with(argv(&["--help"]), &no_env, &|_| None);
        assert!(
            matches!(&r, Err(ConfigError::Usage(e)) if e.kind() == ErrorKind::DisplayHelp),
            "{r:?}"
        );
    }

    #[test]
    fn keys_are_the_long_flags() {
        let cmd = DaemonCli::command();
        let names: Vec<String> = keys(&cmd).into_iter().map(|k| k.name).collect();
        for k in [
            "port",
            "join",
            "bind",
            "advertise",
            "tag",
            "secret-file",
            "gossip-interval",
            "probe-interval",
            "socket",
            "name",
            "workers",
            "cache-entries",
            "state-dir",
        ] {
            assert!(names.contains(&k.to_string()), "{k} missing from {names:?}");
        }
        for k in ["config", "help", "version", "seed"] {
            assert!(!names.contains(&k.to_string()), "{k} is not a key");
        }
    }

    #[test]
    fn locate_prefers_explicit_then_user_then_system() {
        let t = tempfile::tempdir().unwrap();
        let user = t.path().join("home-config");
        let system = t.path().join("etc-p2pd.toml");
        let explicit = t.path().join("given.toml");
        assert_eq!(locate_in(None, Some(&user), &system), None);
        assert_eq!(
            locate_in(Some(&explicit), Some(&user), &system),
            Some(explicit.clone()),
            "an explicit file is used even when missing, so reading it fails"
        );
        fs::write(&system, "").unwrap();
        assert_eq!(locate_in(None, Some(&user), &system), Some(system.clone()));
        assert_eq!(locate_in(None, None, &system), Some(system.clone()));
        let user_file = user.join("p2pd.toml");
        fs::create_dir_all(user_file.parent().unwrap()).unwrap();
        fs::write(&user_file, "").unwrap();
        assert_eq!(locate_in(None, Some(&user), &system), Some(user_file));
        assert_eq!(
            locate_in(Some(&explicit), Some(&user), &system),
            Some(explicit)
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("gosip", "gossip"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    /// Set in the environment of the child process that
    /// `environment_sits_between_flags_and_file` starts.
    const CHILD: &str = "P2P_CONFIG_TEST_CHILD";

    /// The environment is the process's own, read by clap; changing it in a
    /// test would race with the other tests' threads, so this test runs the
    /// check below in a child process that has its own environment.
    #[test]
    fn environment_sits_between_flags_and_file() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("p2pd.toml");
        fs::write(
            &file,
            "socket = \"/file.sock\"\ngossip-interval = 300\nsecret-file = \"/k\"\n",
        )
        .unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::tests::environment_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("P2PD_CONFIG", &file)
            .env("P2P_SOCKET", "/env.sock")
            .env("P2PD_SECRET", "from-env")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs only as the child of `environment_sits_between_flags_and_file`.
    #[test]
    fn environment_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        // P2PD_CONFIG names the file; P2P_SOCKET beats its `socket`.
        let c = load_daemon_cli(argv(&[])).unwrap();
        assert_eq!(c.socket, Some(PathBuf::from("/env.sock")));
        assert_eq!(c.gossip_interval, 300);
        assert_eq!(
            c.secret_file, None,
            "P2PD_SECRET beats the file's secret-file"
        );
        // A flag beats both.
        let c = load_daemon_cli(argv(&["--socket", "/flag.sock"])).unwrap();
        assert_eq!(c.socket, Some(PathBuf::from("/flag.sock")));
    }
}
