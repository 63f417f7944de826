//! The command-line definitions of every binary, in one place, so that the
//! binaries, the man pages and the shell completions agree.

use clap::builder::TypedValueParser;
use clap::{Args, CommandFactory, Parser, ValueEnum};
use std::path::PathBuf;

/// Long help shared by the query commands: where paths come from.
const QUERY_AFTER: &str = "\
By default paths are opened by the command itself, with your own permissions, and \
handed to the local p2pd, which computes the answer and streams one JSON object per \
line back. With --peer, --all or --spread the paths are sent to those members, which \
read them below the directories they export (p2pd --export DIR). Exit status: 0 when \
every item succeeded, 1 when some failed, 2 for a usage error, 3 when the local daemon \
cannot be reached.";

/// The man page section shared by the query commands: where a query runs.
const WHERE_IT_RUNS: &str = "By default the query runs on this host: the command opens each path \
itself, with your permissions (relative paths against the current directory), and the local \
p2pd computes the answer.\n\n\
--peer NAME|HOST:PORT (repeatable) runs it on those members instead; --all on every member \
that has not left, this one included, one line per member per path: alive and suspect members \
are asked, and each member seen as down gets an unreachable line for each path at once, whose \
message says since when (\"the member is down since 2026-12-02T04:10:03Z (12 s ago)\", the \
since of p2p-peers), so every member is accounted for and the exit status is 1; --spread on \
the alive and suspect members with each path computed exactly once, by whichever member is \
free (faster members take more), for files on a shared filesystem; a down member gets nothing \
to do. Paths are handed out in batches bounded by count and by bytes (a member holds at most \
128 MiB of files it has not answered yet, or one file larger than that), so a few large files \
go to as many members rather than all to the first one asked. The local p2pd talks to at most --max-links members at once (64 by default, fewer if \
its descriptor limit is low); with --all the others wait for a free link and results still \
print as they arrive; with --spread the members asked are picked at random for each query, \
the others standing in for any that fails. --where KEY=VALUE narrows --all and --spread to members with that \
tag (the filter was --tag before sha256sum's --tag took the name). Paths are sent as text (relative ones made absolute against the current directory) and \
each member opens them below the directories it exports (p2pd --export DIR); anything else is \
refused with not_exported, and neither .., symlinks nor /proc lead out of an export.\n\n\
Results print as they arrive, from whichever member answers first. A member that cannot be \
reached gives an unreachable line for each of its paths; one that holds another cluster key \
gives unauthorized, and so does a member whose export names groups (p2pd --export DIR:groups=G) \
that your node's certificate carries none of; one that stays silent for --timeout seconds (default 10; a member busy \
with a large file says so every second) gives timeout, and so does one that says it is busy \
for 60 times --timeout (10 minutes by default) without sending a result. With --spread such a member's paths are \
redone by the others, so every path still gets exactly one line. A --spread member that is \
slow or frozen but still connected does not hold the job up either: once every path has been \
handed out, a member with nothing left to do is given a copy of what another member has held \
for three times as long as answered paths of that size took (at least 1 s; 10 s before any \
answer), with at most two members working on a path at once and none given it twice (a copy \
whose member fails or answers with an error lets another member try); the first good answer is \
printed and the other dropped, and \
the slow member's session is closed once all it still works on is answered, which stops that \
work on it.\n\n\
--format text starts each line with the member's name, as pdsh does; p2p-sha256 --format \
sha256sum does not, so its output stays readable by sha256sum -c (with --all, \
| sort -u shows the distinct digests).";

/// What every command checks before it trusts a socket (man pages' SECURITY).
const SOCKET_TRUST: &str = "Before it sends a byte, the command checks the socket it is about to \
use. Every directory from the socket's own up to / must belong to root or to you and be \
writable by nobody else; above the socket's own directory a root-owned sticky directory such \
as /tmp is accepted, and the socket's own directory may instead be one directly below a \
root-owned /run (a systemd RuntimeDirectory=, such as /run/p2p for User=p2pd), whoever owns \
it. Once connected, the daemon on the other end (SO_PEERCRED) must run as you, as root, or as \
the owner of that /run directory. Otherwise the command says which directory, owner or uid is \
wrong and exits 3, and no descriptor and no byte has left it: a user who plants \
/tmp/p2p-UID or any other socket learns nothing and cannot answer in the daemon's name.";

/// What the query commands let a user learn, and with whose rights.
const QUERY_SECURITY: &str = "On this host the command opens each file itself, with your \
rights, and passes the open descriptor to p2pd; the daemon answers only descriptors open for \
reading (an O_PATH or write-only descriptor is refused with permission_denied, even when the \
result is cached) and never opens a path for another user. A daemon running as root or as a \
service user therefore never tells you about a file you could not read.\n\n\
With --peer, --all or --spread the other members answer with their own daemon's rights, for \
files below their exports only: every user allowed on any member's socket can learn the \
counts, sha256 and metadata (type, size, mode, owner and group, inode, links, times, symlink \
targets) of what a member exports. This member is the \
exception for its own local users: when p2pd runs as another user than you (and you are not \
root), the command also opens each path itself and passes the descriptor, and this member \
answers you only for a path below its exports that you can open, the very same file (device \
and inode); otherwise permission_denied.\n\n\
Users other than p2pd's own user and root name members by name (or by the address p2p-peers \
shows); a raw HOST:PORT that is no member's address is refused with permission_denied, \
without any connection or lookup. A member named twice is asked once; a --peer list names \
at most 64 members.";

/// The paths a query is about.
#[derive(Debug, Clone, Args)]
pub struct Input {
    /// Paths to query; relative paths are resolved against the current directory
    // Any name, the empty one included: that is an item's error, as in GNU wc.
    #[arg(value_name = "PATH", value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    pub paths: Vec<PathBuf>,

    /// Read the paths from FILE, one per line ('-' reads standard input; blank lines are skipped)
    #[arg(long, value_name = "FILE", conflicts_with = "files0_from")]
    pub files_from: Option<PathBuf>,

    /// With --files-from, paths are separated by NUL bytes instead of newlines (as --files0-from)
    #[arg(short = '0', long = "null", requires = "files_from")]
    pub null: bool,

    /// Read the paths from F, separated by NUL bytes ('-' reads standard input), as GNU wc does
    #[arg(long = "files0-from", value_name = "F")]
    pub files0_from: Option<PathBuf>,
}

/// Where a query runs: this host by default, or members of the cluster.
#[derive(Debug, Clone, Default, Args)]
pub struct Placement {
    /// Run on this member instead, by name or HOST:PORT; paths are as they are there (repeatable)
    #[arg(long = "peer", value_name = "NAME|HOST:PORT", conflicts_with_all = ["all", "spread"])]
    pub peers: Vec<String>,

    /// Run on every member that has not left, this one included: one line per member per path (a down member's is an unreachable error)
    #[arg(long, conflicts_with = "spread")]
    pub all: bool,

    /// Compute each path once, on whichever alive member is free (for shared filesystems)
    #[arg(long)]
    pub spread: bool,

    /// With --all or --spread, only members with this tag, KEY=VALUE (repeatable; all must match)
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Seconds a member may stay silent before its paths are given up (--spread: redone elsewhere)
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_timeout)]
    pub timeout: f64,

    /// Fold identical answers: one line per distinct answer for a path, with its members (printed when the query ends)
    #[arg(long)]
    pub group: bool,
}

impl Placement {
    /// The query target, or `None` for this host with the caller's rights.
    pub fn target(&self) -> Option<crate::proto::Target> {
        if self.peers.is_empty() && !self.all && !self.spread {
            return None;
        }
        Some(crate::proto::Target {
            peers: self.peers.clone(),
            all: self.all,
            spread: self.spread,
            tags: self.tags.iter().cloned().collect(),
            timeout_ms: Some((self.timeout * 1000.0).round() as u64),
        })
    }

    /// True when several members may answer, so text lines name the member.
    pub fn multi(&self) -> bool {
        self.all || self.spread || self.peers.len() > 1
    }
}

/// Finishing and watching a long job: `--resume` and the progress line.
#[derive(Debug, Clone, Default, Args)]
pub struct Job {
    /// Skip the paths that have a good line in FILE, the JSON output of an earlier run of this command (failed lines are redone; FILE may be the file this run appends to)
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,

    /// Show the progress line on stderr even when stderr is not a terminal (then one whole line a second at most)
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,

    /// Never show the progress line (shown for --all and --spread when stderr is a terminal)
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,
}

/// Parses the flags of a command that has the member filter; its old
/// spelling, `--tag KEY=VALUE` (before sha256sum's `--tag` took the name), is
/// refused with a hint to use `--where` (exit 2; 1 in `p2p-wc`, through
/// [`parse_as_gnu`]). In `p2p-sha256`, `--tag` is sha256sum's flag.
pub fn parse_with_where_hint<T: Parser>() -> T {
    parse_with_status::<T>(crate::output::EXIT_USAGE)
}

/// Parses the flags of `p2p-wc` or `p2p-sha256`: as GNU's `wc` and
/// `sha256sum`, an unknown option or a bad option value exits 1, not 2.
pub fn parse_as_gnu<T: Parser + FromPlain>() -> T {
    let env = std::env::var_os("P2P_SOCKET");
    if let Some(plain) = PlainArgs::read(std::env::args_os().skip(1), env) {
        return T::from_plain(plain);
    }
    parse_with_status::<T>(1)
}

/// A command line of operands only, with at most one `--socket=PATH`
/// before, between or after them: the common case, read without clap.
/// Building clap's parser and running it is a third of the instructions of
/// a one-file `p2p-wc`; this is a loop over the arguments. Anything else
/// (any argument that starts with `-`, `-` and `--` included) goes to clap,
/// which stays the one definition of the flags; `tests::plain_args_read_as_clap_reads_them`
/// holds this to what clap makes of the same command lines.
#[derive(Debug)]
pub struct PlainArgs {
    pub paths: Vec<PathBuf>,
    /// `--socket=PATH`, else P2P_SOCKET, as clap takes them.
    pub socket: Option<PathBuf>,
}

impl PlainArgs {
    /// `args` without the program name; `env` is P2P_SOCKET's value.
    pub fn read(
        args: impl Iterator<Item = std::ffi::OsString>,
        env: Option<std::ffi::OsString>,
    ) -> Option<PlainArgs> {
        use std::os::unix::ffi::OsStrExt;
        let mut paths = Vec::new();
        let mut socket = None;
        for a in args {
            let b = a.as_bytes();
            if b.first() != Some(&b'-') {
                paths.push(PathBuf::from(a));
                continue;
            }
            match b.strip_prefix(b"--socket=") {
                Some(v) if !v.is_empty() && socket.is_none() => {
                    socket = Some(PathBuf::from(std::ffi::OsStr::from_bytes(v)));
                }
                _ => return None,
            }
        }
        let socket = match (socket, env) {
            (Some(s), _) => Some(s),
            // clap takes an empty value for an error: let it say so.
            (None, Some(e)) if e.is_empty() => return None,
            (None, e) => e.map(PathBuf::from),
        };
        Some(PlainArgs { paths, socket })
    }

    fn input(&mut self) -> Input {
        Input {
            paths: std::mem::take(&mut self.paths),
            files_from: None,
            null: false,
            files0_from: None,
        }
    }

    /// The placement no flag changes: this host.
    fn placement() -> Placement {
        Placement {
            timeout: 10.0,
            ..Placement::default()
        }
    }
}

/// A command's flags when the command line is [`PlainArgs`]: clap's
/// defaults, the operands and the socket.
pub trait FromPlain {
    fn from_plain(plain: PlainArgs) -> Self;
}

impl FromPlain for WcCli {
    fn from_plain(mut p: PlainArgs) -> WcCli {
        WcCli {
            input: p.input(),
            lines: false,
            words: false,
            bytes: false,
            chars: false,
            max_line_length: false,
            total: Total::Auto,
            debug: false,
            format: Format::Json,
            placement: PlainArgs::placement(),
            job: Job::default(),
            connection: Connection { socket: p.socket },
        }
    }
}

impl FromPlain for ShaCli {
    fn from_plain(mut p: PlainArgs) -> ShaCli {
        ShaCli {
            input: p.input(),
            check: false,
            binary: false,
            text: false,
            tag: false,
            zero: false,
            ignore_missing: false,
            quiet: false,
            status: false,
            strict: false,
            warn: false,
            format: None,
            placement: PlainArgs::placement(),
            job: Job::default(),
            connection: Connection { socket: p.socket },
        }
    }
}

/// Parses the flags, exiting with `status` on a usage error (0 for `--help`
/// and `--version`), with the `--where` hint for the old `--tag` filter.
fn parse_with_status<T: Parser>(status: i32) -> T {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match T::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let old = e.kind() == ErrorKind::UnknownArgument
                && matches!(e.get(ContextKind::InvalidArg),
                    Some(ContextValue::String(a)) if a == "--tag" || a.starts_with("--tag="));
            if old {
                let bin = T::command().get_name().to_string();
                let args: Vec<String> = std::env::args().collect();
                let value =
                    args.iter()
                        .enumerate()
                        .find_map(|(i, a)| match a.strip_prefix("--tag") {
                            Some("") => args.get(i + 1).cloned(),
                            Some(v) => v.strip_prefix('=').map(str::to_string),
                            None => None,
                        });
                let value = value.unwrap_or_else(|| "KEY=VALUE".into());
                eprintln!(
                    "{bin}: the member filter is now --where {value}, not --tag (in p2p-sha256 \
                     --tag is sha256sum's BSD-format flag, so every command spells the filter --where)"
                );
                std::process::exit(status);
            }
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit()
            }
            // clap writes the message (coloured only on a terminal); the
            // status is ours.
            let _ = e.print();
            std::process::exit(status)
        }
    }
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.05..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a number of seconds from 0.05 to 86400, got {s:?}"
        )),
    }
}

/// How a command reaches its daemon.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The local p2pd socket [default: the only running daemon, or the one on port 65432]
    #[arg(long, env = "P2P_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Output of the query commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line
    Json,
    /// Columns for people, like the classic tool
    Text,
}

/// When `p2p-wc` prints a total (`--total`, GNU's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// When more than one path is given.
    Auto,
    Always,
    /// The total alone, without the per-path lines.
    Only,
    Never,
}

/// `--total`'s value: a word of [`Total`], or any unambiguous start of
/// one, as GNU's argmatch takes them.
fn parse_total(s: &str) -> Result<Total, String> {
    const WORDS: [(&str, Total); 4] = [
        ("auto", Total::Auto),
        ("always", Total::Always),
        ("only", Total::Only),
        ("never", Total::Never),
    ];
    if let Some(&(_, t)) = WORDS.iter().find(|(w, _)| *w == s) {
        return Ok(t);
    }
    let matching: Vec<Total> = WORDS
        .iter()
        .filter(|(w, _)| !s.is_empty() && w.starts_with(s))
        .map(|&(_, t)| t)
        .collect();
    match matching.as_slice() {
        [t] => Ok(*t),
        [] => Err(format!(
            "invalid argument '{s}'; valid arguments are 'auto', 'always', 'only', 'never'"
        )),
        _ => Err(format!(
            "ambiguous argument '{s}'; valid arguments are 'auto', 'always', 'only', 'never'"
        )),
    }
}

/// Output of `p2p-sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShaFormat {
    /// One JSON object per line
    Json,
    /// Columns for people
    Text,
    /// Lines that `sha256sum -c` accepts
    Sha256sum,
}

/// p2pd: the p2p daemon. Answers file queries from the p2p-* commands.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2pd",
    version,
    about = "The p2p daemon: answers file queries (counts, hashes, metadata) for the p2p-* commands",
    after_help = "With no arguments p2pd serves on port 65432 with a socket in your runtime \
directory, so the p2p-* commands find it without options. Logging goes to stderr; set \
RUST_LOG=debug for more. SIGINT or SIGTERM stops it cleanly.\n\n\
At start p2pd raises its soft limit on open descriptors (RLIMIT_NOFILE) to the hard limit and \
logs the limit it runs with. Cluster queries (--peer, --all, --spread of the p2p-* commands) \
hold at most --max-links member links open at once over all queries (default 64; config key \
max-links); a quarter of the descriptor limit (at least 24) is kept for everything else, and \
when half of the rest allows fewer links than --max-links, fewer are used and the log says so. \
Sessions that ended their query cleanly are kept for 20 s for the next one, as many as fit in \
that half beside the links (p2p-status sessions_kept), so that a repeated --all over a large \
cluster skips most handshakes. Members beyond that wait for a \
free link: --all at 5,000 members works within a 1,024-descriptor limit, with a bounded \
number of threads."
)]
pub struct DaemonCli {
    /// Port for peers (TCP) and gossip (UDP), 0 for one the kernel picks (see --port-file); the local socket is named after it
    #[arg(value_name = "PORT", default_value_t = crate::paths::DEFAULT_PORT)]
    pub port: u16,

    /// A member to join through at start; the same as --join HOST:PORT
    #[arg(value_name = "HOST:PORT")]
    pub seed: Option<String>,

    /// Join through HOST:PORT at start, retrying with back-off until one answers (repeatable)
    #[arg(long = "join", value_name = "HOST:PORT")]
    pub join: Vec<String>,

    /// Address to listen on for peers, TCP and UDP on PORT
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,

    /// Address the other members use to reach this one [default: BIND:PORT]
    #[arg(long, value_name = "IP:PORT")]
    pub advertise: Option<std::net::SocketAddr>,

    /// A tag every member sees, KEY=VALUE (repeatable; at most 16, 160 bytes in all)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Cluster key file: base64 keys, one per line, the first sends [default: $P2PD_SECRET, else ~/.config/p2p/cluster.key, created if missing]
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// The cluster CA's public key (p2p-ca init): with it, only members with a certificate of this CA are accepted [default: the systemd credential ca.pub]
    #[arg(long = "ca", value_name = "CA.pub", requires_all = ["cert", "node_key"])]
    pub ca: Option<PathBuf>,

    /// This node's certificate from the CA (p2p-ca sign), with --ca [default: the systemd credential node.crt]
    #[arg(long, value_name = "NODE.crt", requires_all = ["ca", "node_key"])]
    pub cert: Option<PathBuf>,

    /// This node's secret key (p2p-keygen --node), with --ca; refused if others may read it [default: the systemd credential node.key]
    #[arg(long, value_name = "NODE.key", requires_all = ["ca", "cert"])]
    pub node_key: Option<PathBuf>,

    /// While the cluster moves to certificates: with --ca, still accept members that hold the cluster key but no certificate (as shared-key mode does), and gossip with them; drop it once every member has a certificate
    #[arg(long)]
    pub accept_uncertified: bool,

    /// Find and join the members on this link: send a beacon sealed with the cluster key to a link-local multicast group every few seconds, and join the members heard (off by default: every holder of the key on the link reads who the members are)
    #[arg(long, overrides_with = "no_discover")]
    pub discover: bool,

    /// No LAN discovery (the default; overrides a --discover or `discover = true` before it)
    #[arg(long, overrides_with = "discover")]
    pub no_discover: bool,

    /// UDP port of LAN discovery's beacons, the same on every member
    #[arg(long, value_name = "PORT", default_value_t = crate::proto::beacon::DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub discover_port: u16,

    /// Log filter: error, warn, info, debug, trace, or per module (p2p=debug,warn)
    #[arg(long, env = "RUST_LOG", value_name = "FILTER", default_value = "info")]
    pub log_level: String,

    /// Let peers read files below DIR (repeatable); with :groups=G1,G2, only members whose certificate carries one of the groups (needs --ca); nothing is exported by default
    #[arg(long = "export", value_name = "DIR[:groups=G,...]", value_parser = clap::builder::OsStringValueParser::new().try_map(export_value))]
    pub exports: Vec<PathBuf>,

    /// Milliseconds between gossip rounds
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub gossip_interval: u64,

    /// Milliseconds between failure-detection probes
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub probe_interval: u64,

    /// Milliseconds a suspected member has to refute before it is declared down (longer while this daemon runs late: see CLUSTER)
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub suspicion_timeout: u64,

    /// Path of the local socket [default: $XDG_RUNTIME_DIR/p2p/p2pd-PORT.sock; without XDG_RUNTIME_DIR, /run/p2p/ for root, /tmp/p2p-UID/ for others]
    #[arg(long, env = "P2P_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Name of this node in results: 1 to 64 ASCII letters, digits, . _ - : @ [default: HOSTNAME:PORT]
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,

    /// Worker threads for file queries [default: number of CPUs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// How many file versions the result cache remembers (0 turns it off)
    #[arg(long, value_name = "N", default_value_t = 16384)]
    pub cache_entries: usize,

    /// Read settings from this TOML file, whose keys are the long flags [default: ~/.config/p2p/p2pd.toml, else /etc/p2pd/p2pd.toml, when present]
    #[arg(long, env = "P2PD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Keep this node's identity and last known members here, to rejoin them after a restart
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Local connections one user may hold at once (p2pd's own user and root are not limited)
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=224))]
    pub connections_per_user: u16,

    /// Seconds a local client may send nothing while none of its paths is being worked on
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0, value_parser = parse_idle_timeout)]
    pub idle_timeout: f64,

    /// Once serving, write the peer port bound (a number and a newline) to FILE, atomically; removed at exit
    #[arg(long, value_name = "FILE")]
    pub port_file: Option<PathBuf>,

    /// Member links cluster queries may hold open at once, over all queries (fewer if the descriptor limit allows fewer)
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=16384))]
    pub max_links: u16,

    /// p2p-wc --spread counts a file larger than BYTES as byte ranges spread over the members, in ranges of at most BYTES (and at most 64 MiB); 0 never splits
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub split_above: u64,
}

fn parse_idle_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a number of seconds from 1 to 86400, got {s:?}"
        )),
    }
}

/// Parses KEY=VALUE, within the bounds of a member's tags.
fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => {
            crate::membership::check_tag(k, v).map_err(|e| e.to_string())?;
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses a member name, within the bounds of an identity.
fn parse_name(s: &str) -> Result<String, String> {
    crate::membership::check_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// p2p-wc: count lines, words, bytes and characters, like wc.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-wc",
    version,
    about = "Count lines, words, bytes and characters of files, as GNU wc does in a UTF-8 locale",
    after_help = QUERY_AFTER,
    args_override_self = true,
    infer_long_args = true
)]
pub struct WcCli {
    #[command(flatten)]
    pub input: Input,

    /// Print the line count
    #[arg(short = 'l', long)]
    pub lines: bool,

    /// Print the word count
    #[arg(short = 'w', long)]
    pub words: bool,

    /// Print the byte count
    #[arg(short = 'c', long)]
    pub bytes: bool,

    /// Print the character count
    #[arg(short = 'm', long)]
    pub chars: bool,

    /// Print the maximum display width of a line (max_line_length; tabs to the next multiple of 8)
    #[arg(short = 'L', long)]
    pub max_line_length: bool,

    /// When to print a total: auto (more than one path), always, only (the total alone), never
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = parse_total)]
    pub total: Total,

    /// Say on stderr which line-count acceleration is used, as GNU wc does
    #[arg(long)]
    pub debug: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    #[command(flatten)]
    pub placement: Placement,

    #[command(flatten)]
    pub job: Job,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-sha256: SHA-256 of files, like sha256sum.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-sha256",
    version,
    about = "Compute or check SHA-256 digests of files, interoperable with sha256sum",
    after_help = QUERY_AFTER
)]
pub struct ShaCli {
    #[command(flatten)]
    pub input: Input,

    /// Read digests and names from the FILEs (sha256sum's format, BSD tags too; '-' or none: standard input) and verify them
    #[arg(short = 'c', long)]
    pub check: bool,

    /// Mark lines with '*', binary mode (with --format sha256sum; on Linux the digest is the same)
    #[arg(short = 'b', long, overrides_with = "text")]
    pub binary: bool,

    /// Mark lines with ' ', text mode (the default; with --format sha256sum)
    #[arg(short = 't', long, overrides_with = "binary")]
    pub text: bool,

    /// Write BSD-style lines, SHA256 (NAME) = DIGEST (with --format sha256sum, which it selects)
    #[arg(long)]
    pub tag: bool,

    /// End each line with NUL, not newline, and escape no name (with --format sha256sum, which it selects)
    #[arg(short = 'z', long)]
    pub zero: bool,

    /// With --check: a listed file that does not exist is no failure and prints nothing
    #[arg(long)]
    pub ignore_missing: bool,

    /// With --check: print nothing for files that match
    #[arg(long, overrides_with_all = ["status", "warn"])]
    pub quiet: bool,

    /// With --check: print nothing; the exit status tells
    #[arg(long, overrides_with_all = ["quiet", "warn"])]
    pub status: bool,

    /// With --check: improperly formatted lines make the exit status 1
    #[arg(long)]
    pub strict: bool,

    /// With --check: name each improperly formatted line on stderr
    #[arg(short = 'w', long, overrides_with_all = ["quiet", "status"])]
    pub warn: bool,

    /// Output format [default: json; sha256sum with --tag, -z, -b or -t]
    #[arg(long, value_enum)]
    pub format: Option<ShaFormat>,

    #[command(flatten)]
    pub placement: Placement,

    #[command(flatten)]
    pub job: Job,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-count: count the entries of directories.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-count",
    version,
    about = "Count the files, directories, symlinks and other entries of directories",
    after_help = QUERY_AFTER
)]
pub struct CountCli {
    #[command(flatten)]
    pub input: Input,

    /// Count the whole tree below each directory (symlinks are never followed)
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    #[command(flatten)]
    pub placement: Placement,

    #[command(flatten)]
    pub job: Job,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-stat: metadata and content summary of files.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-stat",
    version,
    about = "Show files' metadata as stat does (a symlink as itself unless -L), with wc counts and SHA-256 from one read",
    after_help = QUERY_AFTER
)]
pub struct StatCli {
    #[command(flatten)]
    pub input: Input,

    /// Follow symlinks: describe the file a link points to, not the link
    #[arg(short = 'L', long)]
    pub dereference: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    #[command(flatten)]
    pub placement: Placement,

    #[command(flatten)]
    pub job: Job,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-get: files from members.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-get",
    version,
    about = "Fetch files from members, below their exports, verified by SHA-256 end to end and written atomically",
    after_help = "Exit status: 0 when every file was fetched; 1 when some file failed (each failure is \
also a line on stdout in JSON form and a one-line message on stderr); 2 for a usage error; 3 when the \
local daemon cannot be reached."
)]
pub struct GetCli {
    /// MEMBER:/PATH (one file, or with -r a directory), or with --all or --any the /PATH the members have
    #[arg(value_name = "SOURCE", value_parser = clap::builder::OsStringValueParser::new())]
    pub source: std::ffi::OsString,

    /// Where to write: a file, or an existing directory to write into [default: ./NAME]; with --all or -r, a directory (required)
    #[arg(value_name = "DEST", value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    pub dest: Option<PathBuf>,

    /// Fetch the tree below a directory: its regular files and directories (symlinks and special files are skipped, with a message)
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// Fetch PATH from every member that has not left, into DEST/MEMBER/PATH (a down member's is an unreachable error)
    #[arg(long, conflicts_with = "recursive")]
    pub all: bool,

    /// Fetch the file at PATH that several members hold with the same content, in chunks from several of them at once, each chunk checked (members with other content are not used)
    #[arg(long, conflicts_with_all = ["recursive", "all"])]
    pub any: bool,

    /// With --any, the members that may send chunks, by name or HOST:PORT (repeatable) [default: every alive member but this one]
    #[arg(long = "peer", value_name = "NAME|HOST:PORT", requires = "any")]
    pub peers: Vec<String>,

    /// With --all or --any, only members with this tag, KEY=VALUE (repeatable; all must match)
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_tag, conflicts_with = "peers")]
    pub tags: Vec<(String, String)>,

    /// Replace a destination that exists
    #[arg(short = 'f', long)]
    pub force: bool,

    /// Pick up DEST.p2p-partial, what an interrupted or failed --continue left: the part it holds is hashed again and only the rest is sent; kept when a transfer fails
    #[arg(short = 'c', long = "continue")]
    pub resume: bool,

    /// Seconds a member may stay silent before its file is given up
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_timeout)]
    pub timeout: f64,

    /// Output format: one JSON line per file, or text (sha256sum lines of what was written)
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    /// Show the progress line on stderr even when stderr is not a terminal (then one whole line a second at most)
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,

    /// Never show the progress line (shown when stderr is a terminal)
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-peers: the cluster's members.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-peers",
    version,
    about = "List the cluster's members as the local p2pd sees them, or watch them change",
    after_help = "Exit status: 0 on success, 1 when the daemon refused the request (too many \
watchers), 2 for a usage error, 3 when the local daemon cannot be reached or, with --watch, went away."
)]
pub struct PeersCli {
    /// Only members in this state (repeatable)
    #[arg(long, value_name = "STATE", value_parser = ["alive", "suspect", "down", "left", "revoked"])]
    pub state: Vec<String>,

    /// Only members with this tag, KEY=VALUE (repeatable; all must match)
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Keep running and print one line per membership change
    #[arg(long)]
    pub watch: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-status: the local daemon's counters.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-status",
    version,
    about = "Print the local p2pd's counters: uptime, members, queries, items, bytes read, cache, workers, rejections",
    after_help = "Exit status: 0 on success, 1 when the daemon refused the request (a p2pd older than \
this command), 2 for a usage error, 3 when the local daemon cannot be reached."
)]
pub struct StatusCli {
    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Json)]
    pub format: StatusFormat,

    #[command(flatten)]
    pub connection: Connection,
}

/// Output of `p2p-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// One JSON object
    Json,
    /// The Prometheus text exposition format, for node_exporter's textfile collector
    Prometheus,
}

/// The address `p2p-ui` serves on without --listen.
pub const UI_LISTEN: &str = "127.0.0.1:8429";

/// A `--host` name of p2p-ui: a DNS name, an IPv4 address or a bracketed
/// IPv6 one, without a port.
fn parse_ui_host(s: &str) -> Result<String, String> {
    let v6 = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    let name = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    if v6 || name {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("a host name or address without a port (an IPv6 address in brackets)".into())
    }
}

/// p2p-ui: a web dashboard of the local daemon.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-ui",
    version,
    about = "Serve a web dashboard of the local p2pd on loopback: members live, queries, drift, counters",
    after_help = "Prints the URL to open, with a random token, on standard output. Exit status: 0 once \
stopped by SIGINT or SIGTERM, 2 for a usage error or an address that cannot be bound, 3 when the \
local daemon cannot be reached."
)]
pub struct UiCli {
    /// Where to serve, ADDR:PORT (port 0 takes a free one); an address other than loopback is warned about
    #[arg(long, value_name = "ADDR:PORT", default_value = UI_LISTEN)]
    pub listen: std::net::SocketAddr,

    /// Another name the dashboard is reached by (as the browser's Host, without the port), besides 127.0.0.1, localhost, [::1] and the --listen address; repeatable
    #[arg(long = "host", value_name = "NAME", value_parser = parse_ui_host)]
    pub hosts: Vec<String>,

    /// Open the dashboard in the desktop's browser (xdg-open), best effort
    #[arg(long)]
    pub open: bool,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-join: join the cluster through known members.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-join",
    version,
    about = "Make the local p2pd join a cluster through one or more of its members",
    after_help = "Exit status: 0 when every address was joined, 1 when some failed, 2 for a usage \
error, 3 when the local daemon cannot be reached."
)]
pub struct JoinCli {
    /// Members to join through
    #[arg(value_name = "HOST:PORT", required = true)]
    pub addrs: Vec<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-leave: the local daemon leaves the cluster and exits.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-leave",
    version,
    about = "Make the local p2pd leave the cluster gracefully and exit",
    after_help = "Exit status: 0 once the daemon has left and exited, 1 when it refused, 3 when it \
cannot be reached."
)]
pub struct LeaveCli {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    #[command(flatten)]
    pub connection: Connection,
}

/// p2p-keygen: a new cluster key.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-keygen",
    version,
    about = "Print a new random cluster key (32 bytes, base64) for p2pd --secret-file or P2PD_SECRET",
    after_help = "Example: p2p-keygen -o cluster.key (created with mode 0600; an existing file is \
left alone unless --force is given)"
)]
pub struct KeygenCli {
    /// Write the key to FILE instead of standard output, creating it with mode 0600 (refused if FILE exists)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// With --output, replace FILE if it exists (atomically, by a new 0600 file renamed over it)
    #[arg(long, requires = "output")]
    pub force: bool,

    /// Make a node key pair instead: the secret half to FILE (0600), the public half beside it with the extension .pub
    #[arg(long, requires = "output")]
    pub node: bool,
}

/// p2p-ca: the cluster's certificate authority.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-ca",
    version,
    about = "Make a cluster CA and sign node certificates with it",
    after_help = "Example: p2p-ca init /root/p2p-ca && p2p-ca sign --dir /root/p2p-ca --name web01 \
--group web node.pub > web01.crt"
)]
pub struct CaCli {
    #[command(subcommand)]
    pub action: CaAction,
}

/// What p2p-ca does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CaAction {
    /// Make a new CA key pair in DIR: ca.key (mode 0600) and ca.pub (for every member's --ca)
    Init {
        /// The directory to hold the CA (created with mode 0700 if missing)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Sign a certificate for the node public key in NODE.pub and print it
    Sign {
        /// The CA's directory, holding ca.key
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// The member name the certificate is for (p2pd --name)
        #[arg(long, value_name = "NAME")]
        name: String,
        /// A group the member belongs to (repeatable)
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
        /// How long the certificate is valid from now: a number with s, m, h or d
        #[arg(long, value_name = "DURATION", default_value = "365d")]
        valid: String,
        /// The node's public key file, as p2p-keygen --node wrote it
        #[arg(value_name = "NODE.pub")]
        public: PathBuf,
    },
    /// Print a signed revocation list of the SERIALs (hex, as sign prints them), for p2p-revoke
    Revoke {
        /// The CA's directory, holding ca.key
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// A list printed before, whose serials stay revoked in the new one
        #[arg(long, value_name = "FILE")]
        list: Option<PathBuf>,
        /// Serials to revoke
        #[arg(value_name = "SERIAL")]
        serials: Vec<String>,
    },
}

/// p2p-revoke: hand a revocation list to the local daemon.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "p2p-revoke",
    version,
    about = "Hand the CA's revocation list to the local p2pd, which refuses the revoked members from then on",
    after_help = "Example: p2p-ca revoke --dir /root/p2p-ca 6a8a93087806d1ea > revoked && p2p-revoke revoked"
)]
pub struct RevokeCli {
    /// The revocation list, as p2p-ca revoke printed it
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    #[command(flatten)]
    pub connection: Connection,
}

/// Every binary's clap command, by binary name, for man pages and completions.
pub fn commands() -> Vec<clap::Command> {
    vec![
        DaemonCli::command(),
        WcCli::command(),
        ShaCli::command(),
        CountCli::command(),
        StatCli::command(),
        GetCli::command(),
        PeersCli::command(),
        StatusCli::command(),
        UiCli::command(),
        JoinCli::command(),
        LeaveCli::command(),
        KeygenCli::command(),
        CaCli::command(),
        RevokeCli::command(),
    ]
}

const EXIT_STATUS: &str = "0 when every item succeeded; 1 when some item failed (each failure is also a \
line on stdout in JSON form and a one-line message on stderr); 2 for a usage or configuration \
error; 3 when the local p2pd cannot be reached (the message says how to start it).";

const ERROR_FIELDS: &str = "A failed item prints {\"peer\",\"path\",\"error\":{\"code\",\"message\"}}. \
Codes: not_found, permission_denied, not_exported, is_directory, not_a_directory, \
symlink_loop (too many levels of symbolic links in a path of this host), timeout, \
unreachable, unauthorized, invalid_request (also: an empty name, or a FIFO or device that a \
member was asked to read), internal. A failure with no name to show (an empty name) prints \
only its message on stderr.";

const PATH_B64_FIELD: &str = "A path is bytes. A name that is valid UTF-8 is a plain string in \
path. One that is not keeps a readable path (each invalid sequence shown as U+FFFD, the \
replacement character) and adds path_b64: the exact bytes of the name in base64 (standard \
alphabet, padded), so `base64 -d` gives the file's name back. --format text (and sha256sum) \
writes the raw bytes of names; messages on stderr show a name on one line, with \\xHH for bytes \
that are not UTF-8 and C escapes (\\n, \\t, \\\\) for control characters.\n\n";

const CHANGED_FIELD: &str = "A file that changes while it is read is read again, up to twice; if it \
still changes, the line carries \"changed\": true (the numbers belong to no single version of \
it), a warning goes to stderr and the exit status is 1, as with tar. The field is absent \
otherwise.\n\n";

// --group and the roll call (group.rs, nodeset.rs), and the fleet check.

/// The man page section on long jobs: finishing one, and watching it.
fn long_jobs_section(bin: &str) -> String {
    let good = match bin {
        "p2p-wc" => "counts",
        "p2p-sha256" => "sha256",
        "p2p-count" => "files and dirs",
        _ => "size and mode",
    };
    let check = if bin == "p2p-sha256" {
        " --check takes neither --resume nor --progress (exit 2)."
    } else {
        ""
    };
    format!(
        "--resume FILE finishes a job that did not end (the command or its daemon was killed, \
         the host rebooted): FILE is the JSON output of an earlier run of {bin}, read whole before \
         the query starts, so it may be the file this run appends to:\n\n    find /shared/data \
         -type f | {bin} --spread --files-from - --resume manifest.jsonl >> manifest.jsonl\n\n\
         A path that has a good line in FILE (one with {good}, matched by path as given, so name \
         the paths as the first run did, or by the exact bytes of path_b64 for a name that is \
         not UTF-8) is skipped and prints nothing; a path \
         whose lines there all failed is done again. So after the resume every path has one good \
         line, and only the paths in flight when the first run died were computed twice. A torn \
         line left by a crash (an object cut short) is skipped with a warning, and when FILE is \
         standard output and ends inside such a line, the new output starts on a line of its \
         own. FILE must hold {bin}'s own result lines: another command's output (wrong fields), \
         text output or anything that is not JSON is refused, exit 2. --resume goes with one \
         line per path: on this host, one --peer or --spread, in JSON; not with --all, several \
         --peer, --group or --format text (exit 2).\n\n\
         While a --spread or --all query runs and stderr is a terminal, one line on stderr \
         tells how far it is: \"1200 of 5000 paths, 3.10 GiB, 410.52 MiB/s, ETA 9 seconds, 3 \
         members working, 0 failed\". The total is known once the list of paths has been read \
         to its end (until then it reads 5000+); with --all the line counts answers, one per \
         path and member (the members that have not left, as the local p2pd lists them at the \
         start). Bytes are those the answers report; members working are those that answered \
         and have not failed since, members failed those an answer said were unreachable, \
         silent (timeout) or of another key; paths that failed and, with --resume, paths \
         skipped are added in parentheses. Messages about failed paths are printed above the \
         line. --progress shows the line for any query, and on a stderr that is no terminal \
         (a pipe, a log) as whole lines, at most one a second and one at the end; \
         --no-progress never shows it. It never goes to stdout, which is the same with or \
         without it.{check}"
    )
}

/// The man page section of the query commands on `--group`, with the text
/// form `bin` prints, and the roll call of members at the end of a query.
fn grouping_section(bin: &str) -> String {
    let text = match bin {
        "p2p-wc" => "the wc line",
        "p2p-sha256" => "the sha256sum line, also with --format sha256sum",
        "p2p-count" => "the columns of --format text",
        _ => "the stat block",
    };
    let total = if bin == "p2p-wc" {
        " p2p-wc prints no total with --group."
    } else {
        ""
    };
    format!(
        "--group folds identical answers, as dshbak -c and clush -b do. For each path, the \
         members whose answers are the same (the same JSON fields, byte for byte{}) make one \
         group; the members that failed make one group per error code, whatever their messages \
         say (the message shown is that of the group's first member). Each group is one JSON \
         line: path (and path_b64), the answer's fields or its error, count (how many members) \
         and peers (their names, in natural order: node2 before node10). Paths come in byte \
         order; within a path the largest group comes first, and groups of the same size put \
         answers before failures, then go by their first member's name. Grouping needs every \
         answer, so nothing is printed until the query ends, and the failures are in their \
         groups, not on stderr. The exit status is 1 when some path has more than one group or \
         a group of failures; 0 when every member gave the same answer.{total}\n\n\
         --format text prints each group as clush -b does: a rule, the members (numbered names \
         folded into ranges) and their number, as in web[01-40],db3 (41), a rule, then the \
         answer as the text format prints it: {text}; a failure prints NAME: MESSAGE (CODE). \
         Names are folded as ClusterShell's nodeset -f folds them, on one numeric part: the last \
         one that differs among names alike but for their numbers (web01:65432 and web02:65432 \
         are web[01-02]:65432; r1n1, r1n2 and r2n1 are r1n[1-2],r2n1); zero padding is kept, a \
         range taking the width of its first number (n[08-10], but n[1,01]); names without \
         digits stay as they are.\n\n\
         --group goes with --all, --peer and --where. With --spread, or on this host, each path \
         has one answer: it is accepted, and count is 1 on every line.\n\n\
         ROLL CALL: at the end of a query with --all or --peer in a text format, one line on \
         stderr sums up the members seen in the results, such as {bin}: asked 5 members \
         (node[0-4]): 3 answered, 2 failed (timeout: node2; unreachable: node[3-4]). A member \
         counts as failed when one of its lines says that its link failed (unreachable, \
         timeout, unauthorized), by the first such code; one that answered not_found for a file \
         did answer.",
        if bin == "p2p-wc" {
            ": only the counts asked for"
        } else {
            ""
        }
    )
}

/// `p2p-sha256`'s man page on `--check MANIFEST --all`.
const FLEET_CHECK: &str = "p2p-sha256 --check MANIFEST --all (or --peer, and with --where) verifies \
one manifest on every member, a fleet's baseline: each member hashes every path of the \
manifest and the command compares each member's digests with the manifest's. It prints a line \
for each path that fails on a member, as the answers arrive: peer, path and failed: mismatch \
(with sha256, the digest found, and expected), missing (the file is not there; with error) or \
the error code (permission_denied, not_exported, unreachable, timeout, ...; with error). Then, \
for each check file, a summary line per member, in name order: peer, manifest, ok, failed \
(mismatches and errors) and missing. A member passes when nothing failed, nothing is missing \
and some file matched; with --ignore-missing a missing file is counted but neither printed nor \
a failure. The exit status is 1 when some member does not pass (and, as for a local check, when \
a check file has no digest line, or with --strict an improperly formatted one). --quiet leaves \
out the summaries of the members that pass; --status prints nothing on stdout; -w and --strict \
are as for a local check.\n\n\
With --group, the members with the same failures (the same paths failing the same way, the \
same digests found) are folded, once every answer is in: one JSON line per set of members, \
with manifest, ok, failed, missing, failures (the failure objects, without peer; an error's \
message is the first member's), count and peers, the largest set first (ties in the order of \
their first member). --check --group without --all or --peer is a usage error (exit 2).\n\n\
--format text prints GNU-like lines, MEMBER: PATH: FAILED or MEMBER: PATH: FAILED open or read \
(and why on stderr, as sha256sum does), then MEMBER: MANIFEST: 3 OK, 1 FAILED, 0 missing for \
each member; with --group, a clush -b block per set of members (see GROUPING) with its failures \
and its summary.\n\n\
With --spread the manifest is shared out instead, each path checked once by some member, and \
reported as a local check is.";

/// The man page section of the query commands that read files: where names
/// come from, and standard input, streams and pseudo-files.
fn input_section(bin: &str) -> String {
    let stdin = match bin {
        "p2p-wc" => {
            "With no PATH, or with -, p2p-wc reads standard input, as GNU wc does: the command \
             passes its own descriptor 0 to the daemon, so a pipe (echo hi | p2p-wc), a \
             redirected file, read from its current offset ((head -c 5 >/dev/null; p2p-wc -c) < \
             f), /dev/stdin and <(cmd) all work. Its path is \"\" with no PATH (the text format \
             names no file, as wc) and \"-\" for -."
        }
        "p2p-sha256" => {
            "With no PATH, or with -, p2p-sha256 reads standard input, as GNU sha256sum does: the \
             command passes its own descriptor 0 to the daemon. Its path is \"-\" either way, as \
             sha256sum prints it."
        }
        _ => {
            "- is standard input, as for GNU stat: its descriptor 0 is described (a pipe as a fifo, \
             a redirected file with its counts and digest). A PATH is required."
        }
    };
    format!(
        "{stdin} Standard input is read on this host only: with --peer, --all or --spread it is a \
         usage error (exit 2).\n\n\
         Pipes, FIFOs, sockets, character and block devices, and the regular files of kernel \
         pseudo-filesystems (procfs, sysfs, debugfs, tracefs, cgroupfs, configfs, securityfs, bpffs, \
         efivarfs, pstore, selinuxfs, smackfs: told by the f_type of fstatfs(2)), whose size means \
         nothing, are read to their end and never cached: /proc/uptime is fresh every time, and \
         /dev/zero is read until the command is interrupted (see INTERRUPTION). A \
         FIFO is read once a writer has come. Members answering --peer, --all or --spread read \
         regular files only.\n\n\
         Results of other regular files are cached by device, inode, size, mtime and ctime, and \
         only for a read that began after the file's last change by the kernel's clock (a file \
         changed in the same clock tick could change again with the same times; whole-second \
         times must be two seconds old), and only when the file is read from its start.\n\n\
         Names may come from a list instead of operands: --files-from FILE, one per line (blank \
         lines are skipped), or NUL-separated with -0 --files-from FILE or --files0-from=F (GNU \
         wc's spelling). In a NUL-separated list an empty name is the error \
         \"F:N: invalid zero-length file name\" (N counts the names), and an empty PATH operand \
         \"invalid zero-length file name\": the item fails (invalid_request, exit 1) and the \
         other names are still done. With - as the list, standard input is the list, so a name - \
         in it is an error; in a list read from a file, - is standard input. Operands cannot be \
         combined with a list (exit 2), and a list that names nothing reads nothing."
    )
}

const CLIENT_ENV: &str = "P2P_SOCKET: the daemon's socket, as --socket.";

const CLIENT_FILES: &str = "$XDG_RUNTIME_DIR/p2p/p2pd-PORT.sock, then /run/p2p/p2pd-PORT.sock: \
where the daemon's socket is looked for when neither --socket nor P2P_SOCKET names one; \
$XDG_RUNTIME_DIR counts for root too. Without it the first place is /run/p2p/ for root and \
/tmp/p2p-UID/ for other users. The first of these directories that holds a \
socket is used: its socket for port 65432, else its only one (several, none of them for 65432, \
is a usage error). A directory that fails the checks under SECURITY (another user's) is passed \
over for the next; when no other holds a socket the command names it and exits 3.";

/// What stops when a query command is interrupted (man pages' INTERRUPTION).
const INTERRUPTION: &str = "When the command is interrupted (Ctrl-C, killed, or its output is a \
pipe whose reader went away, as with | head), the daemons stop its work: the local p2pd \
notices the closed connection while it computes, not only when it next writes a result, \
stops a file it is reading within one chunk of 64 MiB (a few tens of milliseconds), and drops \
the command's paths not started yet. For --peer, --all and --spread it closes its sessions \
to the members, and each member stops the work of that query the same way. p2p-status(1) \
counts such queries in queries_cancelled.";

/// p2p-status(1)'s DESCRIPTION.
const STATUS_DESCRIPTION: &str = "Prints the local p2pd's counters as one JSON object, or with \
--format prometheus in the Prometheus text exposition format (version 0.0.4), ready for \
node_exporter's textfile collector: write it to a temporary file in the collector's directory \
and rename it into place, from a timer. Counters count since the daemon started; gauges \
(members, busy workers, queued jobs, sessions) are as of the request. Reading them costs the \
daemon one lock of its worker queues and one copy of its member list; counting costs one \
atomic addition per item, per 64 MiB read and per event, and no lock.";

/// p2p-status(1)'s OUTPUT: every field, by its stable name.
const STATUS_OUTPUT: &str = "One JSON object. Fields are only ever added, never renamed:\n\n\
name, version: the daemon's member name and version.\n\n\
uptime_seconds: whole seconds since the daemon started.\n\n\
members: an object, alive, suspect, down, left, revoked: members known in each state, this \
daemon included (it counts as alive unless its own certificate is revoked).\n\n\
queries_local, queries_remote: queries served, from commands on this host's socket (cluster \
queries the daemon passed on to members included) and from members over the peer port.\n\n\
queries_cancelled: queries whose asker went away while their work was in progress (a command \
interrupted, or, for a member, the asking daemon closing its session), whose work was then \
given up. A hang-up after the last answer is not counted.\n\n\
items_local, items_remote: items this daemon answered, for local commands and for members (an \
item given up by a cancellation is not counted; paths a command could not open itself never \
reach the daemon).\n\n\
bytes_read: bytes of file content read to compute answers (not the reads of a directory \
count's walk).\n\n\
cache_hits, cache_misses: regular files read from their start whose answer the result cache \
had, or had not.\n\n\
workers, workers_busy, jobs_queued: worker threads, those running a job now, and jobs waiting \
for one.\n\n\
sessions_in: authenticated sessions from members served on the peer port now (kept between \
their queries).\n\n\
sessions_kept: sessions to members this daemon keeps open for its next cluster query (a \
query to a member asked within 20 s skips the handshakes).\n\n\
watchers: membership watchers (p2p-peers --watch) connected now; once one is counted, it \
sees every change that follows.\n\n\
local_health: how late this daemon finds itself running its part of failure detection, from 0 \
(on time) to 8, as Lifeguard's local health: each probe that starts more than a quarter of \
--probe-interval late raises it by one, each on time lowers it by one, and being declared down \
by the others raises it by one. While it is above 0 this daemon probes, waits for answers and \
lets suspects refute for 1 + local_health times as long, so that a host starved of CPU does not \
declare members down that did answer. It stays 0 on a host with time to spare.\n\n\
datagrams_rejected: an object of gossip datagrams dropped since the start, by reason: \
authentication (no installed key opens it: another cluster, tampering, garbage; with --ca \
also one not signed by a current certificate of the CA, or signed with one this member has not \
learned yet), replay (its \
stamp was seen, is below the replay window, or is of an earlier run of its sender), \
misaddressed (sealed for another member), malformed (too short or of an unknown version), \
identity (authentic, but carrying a member identity out of bounds, or, with --ca, sent in \
another member's name; records of a full sync count here too), revoked (signed by a member \
whose certificate the CA revoked), revocation (revocation news refused: not signed by our CA, \
malformed, or a list issued before the one in force; news in a sync or a join reply counts \
here too).\n\n\
connections_rejected: an object of connections to the peer port refused before any request: \
authentication (the initiator does not hold our cluster key), handshake (it broke off, timed \
out or sent something malformed during the handshake; a port probe counts here).\n\n\
beacons: an object for LAN discovery (see p2pd(1), --discover): heard (beacons of this \
cluster from other members), joined (joins tried through a member heard), authentication \
(datagrams on the discovery port that no key of ours opens: another cluster, or noise), \
replay (a beacon opened before, or of an earlier run of its sender), malformed (not a beacon, \
or a beacon naming another host than the one it came from).\n\n\
With --format prometheus the same values are, in this order: p2p_uptime_seconds (gauge), \
p2p_members{state} (gauge), p2p_queries_total{origin=\"local\"|\"remote\"}, \
p2p_queries_cancelled_total, p2p_items_total{origin}, p2p_read_bytes_total, \
p2p_cache_hits_total, p2p_cache_misses_total, p2p_workers, p2p_workers_busy, p2p_jobs_queued \
(gauges), p2p_sessions_in, p2p_watchers, p2p_local_health (gauges), \
p2p_datagrams_rejected_total{reason} and \
p2p_connections_rejected_total{reason}, p2p_beacons_total{result}, each with its HELP and \
TYPE lines.";

/// The SECURITY section of a command other than p2pd.
fn security(bin: &str) -> String {
    let own = match bin {
        "p2p-get" => {
            "A member sends only what it would answer a query about: regular files below its \
             exports (--export), opened beneath the root as every query opens them, and below an \
             export that names groups only to members whose certificate carries one. Every user \
             allowed on the socket may fetch what the members export, as they may query it.\n\n\
             The files are written by this command, running as you: it creates each temporary \
             file itself (never through a symlink) and passes the descriptor to p2pd, which \
             writes into that descriptor only and never opens a destination, so a p2pd running \
             as root or as a service user writes nowhere you could not."
        }
        "p2p-peers" => {
            "Every user allowed on the socket may list and watch the members: names, \
             addresses, tags and states. Watchers are bounded: 256 in all, 8 per user other \
             than p2pd's own user and root, 16 kept for those two; a watcher that stops \
             reading is dropped once 256 KiB behind."
        }
        "p2p-status" => {
            "Every user allowed on the socket may read the counters, as every such user may \
             list the members with p2p-peers: they are totals, and name no path, user, member \
             address or query. They do show how busy the daemon is (queries, bytes read), \
             which any local user could also tell from its CPU time."
        }
        "p2p-ui" => {
            "The dashboard runs as you and is one more client of p2pd: the members and counters \
             are what p2p-peers and p2p-status show you, and a query runs p2p-wc, p2p-sha256, \
             p2p-count or p2p-stat as you, so it opens files with your rights and can never read \
             more than you can.\n\n\
             Whoever can use the dashboard can do that too, so it is guarded: the URL printed at \
             start carries a random token (192 bits from the kernel) in its fragment \
             (#token=...), which a browser never sends over the network. The page keeps it in \
             its tab's sessionStorage, which belongs to this dashboard's origin alone (scheme, \
             host and port), drops it from the address bar, and sends it as Authorization: \
             Bearer TOKEN with every API request; any API request without it is refused (403). \
             There is no cookie: a browser sends a host's cookies to every port of that host, \
             so a server another user runs on 127.0.0.1 would receive it. The page itself (HTML, \
             CSS, JavaScript) holds no data and is served without the token. The Host header \
             must name the dashboard (127.0.0.1:PORT, localhost:PORT, [::1]:PORT, the --listen \
             address, or a --host name with the port), which defeats DNS rebinding; a request \
             whose Origin is another site's is refused; queries are POST only and need the \
             dashboard's own Origin or an X-P2P-UI header, which no other site can send without \
             a CORS preflight, never answered. Pages carry a Content-Security-Policy of \
             default-src 'self': the page loads nothing from elsewhere. Tokens are compared in \
             constant time.\n\n\
             It listens on loopback only unless --listen says otherwise, and then warns: the \
             dashboard speaks plain HTTP, so on a network the token could be overheard. Other \
             users of this host can connect to the port, but without the token they get nothing; \
             keep the printed URL to yourself (with --open the token is handed to the browser \
             through a file only you can read, not on a command line). At most 16 streams and \
             queries are served at once; more are refused with 503."
        }
        "p2p-join" => {
            "Only p2pd's own user and root may make it join: anyone else gets \
             permission_denied, and the daemon opens no connection and does no lookup for \
             them, so the socket cannot be used to probe addresses."
        }
        "p2p-leave" => {
            "Only p2pd's own user and root may make it leave; anyone else gets \
             permission_denied."
        }
        "p2p-keygen" => {
            return "The key is printed on standard output, or written to the --output file, \
                    and nowhere else, and its text is wiped from memory once written. Prefer \
                    --output to a shell redirection: the file is 0600 from the start (p2pd refuses \
                    a key file that group or others may read, or that belongs to another user than \
                    p2pd's own or root). Whoever holds the key is a cluster member: see SECURITY \
                    in p2pd(1)."
                .into();
        }
        "p2p-revoke" => {
            "Only p2pd's own user and root may install a revocation list; anyone else gets \
             permission_denied. The list itself is public: only the CA's key can make one."
        }
        "p2p-ca" => {
            return "ca.key signs certificates: whoever holds it can make a certificate for any \
                    name and group. Keep it off the cluster (an operator's machine, offline \
                    media); init writes it with mode 0600 and sign refuses to read it when group \
                    or others may, or when it belongs to another user than you or root. ca.pub \
                    and the certificates are public: they prove nothing without the node key \
                    they name, which never leaves its host."
                .into();
        }
        "p2p-count" => {
            return format!(
                "{QUERY_SECURITY}\n\n\
                 A count of this host runs in the command itself: p2p-count opens every \
                 directory it enters in its own process, with your rights, so the kernel \
                 decides as for anything else you do (mode bits, ACLs, security modules such as \
                 AppArmor or SELinux). When p2pd runs as another user and a placement includes \
                 this member, the counts the command took itself on its descriptor are this \
                 member's answer: p2pd never reads a directory for a user other than its own and \
                 root. What is not entered counts in unreadable and is named on stderr.\n\n\
                 {SOCKET_TRUST}"
            );
        }
        _ => QUERY_SECURITY,
    };
    format!("{own}\n\n{SOCKET_TRUST}")
}

/// The man page section on files split over members (`p2p-wc --spread`).
fn splitting_section(bin: &str) -> String {
    if bin == "p2p-wc" {
        return "With --spread a regular file larger than the local p2pd's --split-above \
            (256 MiB by default; 0 turns splitting off) is cut into byte ranges of at most 64 MiB \
            (or of --split-above bytes, if smaller), counted by different members at once like \
            so many files, and joined by the local p2pd into the exact whole-file count: one \
            line per path, whose peer names every member that counted a range, folded as \
            p2p-peers folds names (node[1-3]). Each end of a range moves to the next byte that \
            no UTF-8 character crosses, and each range reports whether it starts and ends \
            inside a word, so characters and words that straddle a cut count once. A member \
            that fails or freezes has its ranges redone by the others; a range that fails \
            (the file vanished, or is not exported there) makes the path's line that error. \
            -L is never split (the longest line would need the text across the cuts): such a \
            file goes whole to one member. Splitting needs the size: it happens when p2pd runs \
            as you (or you are root), and members of an earlier version, which cannot count \
            ranges, refuse such a query and the others take their share."
            .into();
    }
    let what = if bin == "p2p-sha256" {
        "SHA-256 is sequential"
    } else {
        "its SHA-256 is sequential"
    };
    format!(
        "With --spread each file goes whole to one member, however large: {what}, so a file \
         is never split into ranges as p2p-wc splits a huge one (see p2p-wc(1))."
    )
}

/// Sections of a binary's man page beyond what clap describes: output
/// fields, exit status, environment, files, examples. Paragraphs are separated
/// by blank lines; lines that start with two spaces are shown verbatim.
pub fn man_sections(bin: &str) -> Vec<(&'static str, String)> {
    let mut s: Vec<(&'static str, String)> = Vec::new();
    match bin {
        "p2pd" => {
            s.push((
                "DESCRIPTION",
                "p2pd answers file queries for the p2p-* commands over a Unix socket, with a \
                 bounded pool of worker threads. The commands open every file themselves and pass \
                 the open descriptor, so the daemon reads only what the caller may read, even when \
                 it runs as root. Results of unchanged files (same device, inode, size, mtime and \
                 ctime) are answered from a bounded in-memory cache: regular files only, read from \
                 their start, and only when the read began after their last change by the kernel's \
                 clock. Pipes, devices, sockets and the files of /proc, /sys and other \
                 pseudo-filesystems are read to their end every time (see INPUT in p2p-wc(1)).\n\n\
                 The socket is created with mode 0660 in a private directory (0700 when p2pd \
                 creates it). A stale socket is replaced; a live daemon's is not."
                    .into(),
            ));
            s.push((
                "CLUSTER",
                "On PORT p2pd listens for peers on TCP and gossips on UDP, at --bind (127.0.0.1 by \
                 default, so nothing leaves the host until you say so). PORT 0 takes a port the \
                 kernel picks that is free for both TCP and UDP (TCP is bound first, then UDP on \
                 the same number, another number being tried when that one is taken); the port \
                 bound names the default socket and node, is advertised (an --advertise port of 0 \
                 means it too), and is reported three ways once p2pd serves: in --port-file FILE \
                 (the number and a newline, written atomically after every socket is bound, so a \
                 script may wait for the file and then connect; removed at a clean exit), on the \
                 ready line of the log (\"peers on 127.0.0.1:PORT\"), and in systemd's STATUS \
                 (\"peers on port PORT\"). Membership is SWIM: members \
                 probe each other every --probe-interval, gossip every --gossip-interval, and a \
                 member that stops answering is suspected, then declared down (after --suspicion-timeout). \
                 A daemon that finds itself running late, its probes starting more than a \
                 quarter of --probe-interval after they were due (a host starved of CPU), \
                 probes less often and waits longer, for answers and for suspects to refute, by \
                 up to 9 times, and is quick again once it runs on time (Lifeguard's local \
                 health; p2p-status local_health): a busy host then does not declare down \
                 members that did answer, which would load every member with refutations in \
                 turn. \
                 Every 30 s each member also exchanges its whole member list with a random other \
                 member over TCP, which repairs whatever gossip missed. A member that leaves \
                 (SIGTERM, p2p-leave) sends every member a leave notice, and each passes it on to \
                 three others (in shared-key mode; with --ca only the leaver's own notice counts), \
                 so all show it as left rather than down. Join through any \
                 member with the positional HOST:PORT or --join (either retried with \
                 back-off until one answers) or p2p-join at run time; the joining node receives the \
                 full member list over an encrypted TCP session. Names must be unique: a node whose \
                 name is taken by a member that still answers is refused and exits 2. A member \
                 that comes back under its name at another address (a new DHCP lease) while the \
                 others still hold the old one is not refused for good: the member it joins \
                 through tries a session at the old address (1 s) and, with none, tells it to try \
                 again; it keeps trying with back-off and gets in as soon as the cluster has \
                 found the old address down (--suspicion-timeout after it stopped answering), so \
                 that a member only stalled for a moment keeps its name. The others learn the new \
                 address by gossip. The join itself proves the key (and, with --ca, that the \
                 certificate names the member). IPv6 works as IPv4: --bind ::1 (or any IPv6 \
                 address), --advertise [ADDR]:PORT, and joins and --peer addresses as [ADDR]:PORT. \
                 LAN discovery (off by default; --discover turns it on): every 3 s (plus up to 1 s of jitter) p2pd \
                 sends a beacon to the multicast group 239.255.101.32 (TTL 1, so no router \
                 passes it on) or, bound to IPv6, ff02::7032:6432 (link-local), on UDP \
                 --discover-port (65431), from --bind's interface; and joins, over the usual \
                 authenticated TCP session, every member it hears that it does not know yet. A \
                 beacon holds the sender's name, advertised address and incarnation, sealed \
                 with the cluster key like gossip (XChaCha20-Poly1305, its own version byte, \
                 a replay window per sender): another cluster's beacons do not open, a beacon \
                 is taken once, and one that names another host than the one it came from is \
                 dropped, all counted (p2p-status, beacons). A beacon leads at most to a join \
                 attempt, an authenticated session like any other, to the IP address it came \
                 from (at the port it names), one at a time and at most one every 5 s. Every \
                 holder of the cluster key on the link, a revoked member's included, reads the \
                 beacons: the members' names, addresses and incarnations (see THREAT MODEL). Every daemon of the host on the same port \
                 hears every beacon (SO_REUSEPORT). A member advertising an address it does not \
                 send from (NAT) is not found this way; --join still works.\n\n\
                 Every datagram is sealed with XChaCha20-Poly1305 under a key derived from the \
                 cluster key; TCP sessions use a Noise NNpsk0 handshake with another derived key, \
                 giving forward secrecy. The key never crosses the wire. Datagrams that fail \
                 authentication are dropped and counted; a TCP peer with another key is told \
                 unauthorized and disconnected.\n\n\
                 The key comes from --secret-file, else P2PD_SECRET, else \
                 ~/.config/p2p/cluster.key, which is created (mode 0600, 32 random bytes) on first \
                 start; copy it to the other hosts. A key file holds one base64 key per line: the \
                 first seals what is sent, all are accepted, so a key rotates without downtime (add \
                 the new key second everywhere, move it first, then remove the old one, with a SIGHUP \
                 after each step; see SIGNALS).\n\n\
                 With --ca CA.pub, --cert NODE.crt and --node-key NODE.key (the config file's ca, \
                 cert and node-key; else the systemd credentials ca.pub, node.crt and node.key), \
                 the daemon is a certified member (see p2p-ca(1) for making the files). Its TCP \
                 sessions then use Noise XXpsk0 (Noise_XXpsk0_25519_ChaChaPoly_SHA256): the cluster \
                 key is still the pre-shared key, and each end proves it holds the X25519 static \
                 key of a certificate that it sends, encrypted, in the handshake. A peer is \
                 accepted only when its certificate is signed by the CA of --ca, valid now \
                 (between its not-before and not-after), for the static key it proved, and, when \
                 it joins or syncs, for the member name it claims; anything else is refused, \
                 logged and counted among refused authentications, whoever holds the cluster \
                 key. The member name is the certificate's: --name may be left out, and a \
                 different --name is a configuration error, as is a certificate that is expired \
                 or not for --node-key at start. A certified daemon and a shared-key daemon do \
                 not talk over TCP at all (each refuses the other's handshake), so a cluster is \
                 certified throughout or not at all. Certificates cover the TCP sessions (join, \
                 sync, queries) and the gossip: every datagram a certified member sends is signed \
                 with its Ed25519 node key (datagram version 3). The signature is inside the sealed \
                 envelope and covers the datagram's header (sender, receiver, epoch, counter) and \
                 payload, so the replay window holds for it; it names the certificate by serial. \
                 Members learn each other's certificates from their TCP sessions and from gossip \
                 itself: a datagram signed with a certificate a member does not hold yet is \
                 dropped and answered by a signed who-are-you question carrying the asker's \
                 certificate, whose answer carries the other's (a certificate too large for a \
                 datagram, with many long groups, is shown by a TCP sync with the asker \
                 instead). A datagram not signed by a \
                 current, unrevoked certificate of the CA is dropped and counted as failing \
                 authentication. A member then asserts only its own identity: a datagram whose \
                 sender is not the member its signature names is dropped and logged, and an \
                 identity (name, address, incarnation, tags) is taken only once its owner has \
                 shown it, as the signer of a datagram or in answer to the question; gossip, \
                 joins and syncs that carry another identity are not believed, and its owner is \
                 asked instead (each address at most every 0.5 s).\n\n\
                 A query with --peer, --all or --spread is run by the local daemon, which asks \
                 the members over encrypted TCP sessions, at most --max-links (64) at once over \
                 all queries, each from a thread of the query's own; the members beyond wait for \
                 a free link, and with --all one that has answered everything sent so far makes \
                 way for a waiting one when the paths held for the waiting ones reach 8,192, so \
                 memory and threads stay bounded whatever the number of members. A session may \
                 be kept for 20 s for the next query, so a repeated --all skips the TCP and Noise handshakes; \
as many are kept as the descriptor limit leaves room for beside the links. At start \
                 p2pd raises its soft RLIMIT_NOFILE to the hard limit and logs the limit; when \
                 the limit leaves room for fewer links (half of what is left after a quarter of \
                 the limit, at least 24, kept for everything else), that is the bound, and the log \
                 says so. --all answers for every member that has not left: a member seen as down \
                 or revoked gets an unreachable line per path at once, saying so and since when, \
                 without a connection attempt; --spread asks the alive and suspect members, shuffled for \
                 each query."
                    .into(),
            ));
            s.push((
                "EXPORTS",
                "Other members may read files here only below the directories given with --export \
                 (repeatable; none by default, so a fresh daemon serves no file to anyone else). A \
                 query for a path elsewhere gets not_exported, with a message naming the flag to add. \
                 Paths are resolved beneath the export with openat2(2) RESOLVE_BENEATH and \
                 RESOLVE_NO_MAGICLINKS: neither .., nor a symlink pointing out (absolute or relative), \
                 nor /proc/self/root and its kind leads outside; a symlink that stays inside is \
                 followed. On kernels without openat2 every symlink and .. below an export is refused. \
                 A directory count never follows a symlink, and p2p-stat without -L describes a \
                 symlink that ends a path as itself (its target is shown as text, not followed). \
                 Files are read with the daemon's own \
                 rights, so export only what every key holder may read.\n\n\
                 With certificates (--ca), an export may name groups: --export DIR:groups=G1,G2 \
                 (in the config file the same string, export = [\"/srv/pub\", \"/srv/ops:groups=ops,audit\"]). \
                 Then only members whose certificate carries one of the groups read below DIR; \
                 any other member gets unauthorized for every query (wc, sha256, count, stat, a \
                 symlink's stat, --spread ranges), with a message naming the groups needed. A \
                 plain --export DIR stays readable by every member. Only a trailing :groups= in \
                 the last component is parsed (group names are those of certificates: 1 to 64 \
                 ASCII letters, digits, . _ - : @), so other names with : export as they are; a \
                 directory whose own name holds :groups= is given with a trailing /. When \
                 exports nest, the longest root a path is written below decides: with /srv for \
                 all and /srv/ops:groups=ops, only ops reads below /srv/ops, and members outside \
                 ops reach nothing there from /srv either: below /srv their paths are resolved \
                 without following symlinks or .., a path naming a place below /srv/ops (by any \
                 spelling) is refused, and so is a recursive count that would enter it (a bind \
                 mount of /srv/ops elsewhere below /srv is not recognized: do not make one). The \
                 same directory exported twice must name the same groups. Groups need a CA: \
                 p2pd refuses to start with groups but no --ca, and a SIGHUP that would bring \
                 them keeps the exports in force. Local users asking this daemon about its own \
                 files are not concerned: they are answered only on descriptors they opened \
                 themselves.\n\n\
                 Queries from the local commands are not affected: those open files with the \
                 caller's rights, as before. Queries that p2p-wc --all and its kind send reach this \
                 daemon too, as a member like any other, and obey the same exports."
                    .into(),
            ));
            s.push((
                "SECURITY",
                "Four kinds of party reach p2pd. What each can learn or do:\n\n\
                 The daemon's own user and root, on the local socket: everything below; they read \
                 with the daemon's rights on this host, and only they may make it join (p2p-join), \
                 leave (p2p-leave) or connect to a raw HOST:PORT.\n\n\
                 Any other local user who may open the socket (it is mode 0660: the members of its \
                 group): queries on files they can open themselves, and nothing more. The commands \
                 open the files and pass the descriptors; p2pd answers only descriptors open for \
                 reading (O_PATH and write-only ones are refused, the cache included) and opens no \
                 path for them. Nor does it count a directory for them: p2p-count walks this \
                 host's directories in the caller's own process, so mode bits, ACLs and security \
                 modules decide for the caller, and in a placement that includes this node the \
                 command's own counts on its descriptor are this node's answer; a count sent \
                 to p2pd directly on their descriptor is refused (permission_denied). Placements \
                 that include this node \
                 (--peer by name or address, --all, --spread) answer them only about paths below \
                 the exports that they can open themselves (their command passes its descriptor, \
                 which must be of the same file). They see the member list (names, addresses, tags, \
                 states) and may watch it. They name members by name; a raw HOST:PORT that is no \
                 member's address, and joins, are refused (permission_denied) without any \
                 connection or lookup. Their share is bounded: of 256 local connections a user may \
                 hold --connections-per-user (32) and 32 are kept for the owner and root; of 256 \
                 membership watchers, 8 per user, 16 kept; a connection must send its request \
                 within 10 s and is closed after --idle-timeout (300 s) of silence while none of \
                 its paths is being worked on. The workers serve one queue per caller (each local \
                 user, each remote member) in turn, and a large file is read in slices of \
                 256 MiB that go back to the end of its caller's queue, so another caller's \
                 huge file delays a small query by about one slice at most. A cluster query asks a \
                 member named several times once, takes at most 64 --peer members, holds at most 4 \
                 links to one member and at most 256 of the caller's descriptors.\n\n\
                 Cluster members (whoever holds a cluster key, and through them every user allowed \
                 on their sockets): they may join, gossip and read the member list, and read the \
                 counts, sha256 and metadata (type, size, mode, owner and group with their names \
                 here, inode, links, times, symlink targets) of every file below the --export roots \
                 that this daemon's user can read (see EXPORTS); nothing outside them. Their \
                 identity is bounded (a name of at most 64 bytes of ASCII letters, digits and . _ - : @; at most \
                 16 tags, keys of at most 32 bytes, values of at most 64, 160 bytes in all; an \
                 incarnation at most 30 days ahead of the receiver's clock); a join that breaks the bounds is refused \
                 with the reason, and a member outbids at once any claim on its own name or \
                 address, whatever incarnation it carries. Frames (1 MiB), connections (256), \
                 handshakes (3 s) and idle sessions (60 s) are bounded; a member that says it is \
                 working but sends no result for 60 times --timeout is given up.\n\n\
                 With --ca, a certified member (the cluster key, a current certificate of the CA \
                 and its node key) can do what a member can, under its certificate's name only: \
                 it cannot join or sync as another name, and its gossip cannot give another \
                 member a new address, tags or incarnation, nor speak in another member's name, \
                 because each datagram is signed and an identity is taken only from its owner. \
                 What stays SWIM's is the state of others: a member may report another suspect \
                 or down, as any SWIM member may; a suspect refutes it (its own refutation \
                 counter, its identity unchanged), a member declared down comes back under a new \
                 incarnation it shows itself. A holder of the cluster key alone, without a \
                 certificate, gets no datagram and no session taken at all (unless \
                 --accept-uncertified is given: see MOVING TO CERTIFICATES). Below an export \
                 that names groups (see EXPORTS) only a certified member in one of them reads; \
                 every other certified member is refused there (unauthorized). Two weeks before \
                 this daemon's own certificate expires it warns in the log, at start and then \
                 once a day, with the date; a renewed certificate is taken by SIGHUP.\n\n\
                 Anyone else on the network (no key): nothing. Their datagrams and handshakes fail \
                 authentication, are dropped and counted, and logged through one rate-limiter \
                 (the first at once, then a count every 10 s), at every log level. Captured \
                 traffic replayed changes nothing: each datagram carries its sender's epoch and a \
                 counter, checked against a sliding window per sender, so a datagram opens once \
                 at most; and a TCP connection counts as proven only once the initiator's first \
                 authenticated frame has arrived (within 3 s of connecting), so replayed handshake \
                 messages hold no place.\n\n\
                 The key never crosses the wire and never reaches a core dump: p2pd makes itself \
                 non-dumpable (PR_SET_DUMPABLE 0, which also keeps other processes of its user \
                 from ptrace and /proc/PID/mem) and sets RLIMIT_CORE to 0 at start (the unit adds \
                 LimitCORE=0). Key bytes, derived keys and the text they were read from are zeroed \
                 when dropped, and P2PD_SECRET is erased from the environment once read. A key file \
                 must belong to the daemon's user or root and allow no group or other access \
                 (0600 or stricter), as ssh requires, or p2pd refuses to start (exit 2). Member \
                 names and other peer-controlled strings are escaped in log lines; requests are \
                 never dumped."
                    .into(),
            ));
            s.push((
                "THREAT MODEL",
                "Who can do what to a cluster, by what they hold (local users are under \
                 SECURITY).\n\n\
                 The cluster key alone, without a certificate. In shared-key mode (no --ca \
                 anywhere): full membership. It may join under any name, gossip any member's \
                 address, tags and incarnation, report members down, and read every file below \
                 every member's exports. Taking such a holder out means rotating the key on every \
                 member. In a certified cluster: nothing; its handshakes are refused and its \
                 datagrams dropped, as for a stranger, except that it may still see that a \
                 member answers, and, where members run --discover, read their beacons: names, \
                 addresses and incarnations of the members on its link.\n\n\
                 A certified member (the key, a current unrevoked certificate of the CA and its \
                 node key). It joins, gossips and queries under its certificate's name only; it \
                 cannot assert another member's address, tags or incarnation, nor send in its \
                 name. It may report others suspect or down, which they refute. It reads below \
                 every export that names no groups. It cannot read below an export with groups \
                 unless its certificate carries one of them. Revoking its serial cuts it off on \
                 every member within seconds: its sessions close, its gossip is dropped, its \
                 rejoin is refused.\n\n\
                 A member of a group G. The same, plus reading below exports that name G \
                 (--export DIR:groups=G,...). Groups come only from the CA's signature, so a \
                 member cannot give itself one; a new group means a new certificate.\n\n\
                 The CA key. Whoever holds it can certify any name with any groups, so it stays \
                 off the cluster (p2p-ca(1)).\n\n\
                 During a move to certificates (--accept-uncertified on some members), those \
                 members give holders of the key alone what shared-key mode gives them, minus \
                 the exports with groups; the rule that a member asserts only its own identity \
                 holds only once no member accepts uncertified peers."
                    .into(),
            ));
            s.push((
                "MOVING TO CERTIFICATES",
                "A running shared-key cluster moves to certificates with no moment when it stops \
                 answering and no restart, one member at a time, in two rounds:\n\n\
                 1. Make the CA (p2p-ca init) and a node key and certificate for each member \
                 (p2p-keygen --node, p2p-ca sign --name NAME, where NAME is the member's current \
                 --name). Then, on each member in turn, add ca, cert, node-key and \
                 accept-uncertified = true to its configuration and send it SIGHUP (systemctl \
                 reload p2pd); the log says \"SIGHUP: certified as NAME\". Such a member shows \
                 its certificate, signs its gossip, meets certified members in certified \
                 sessions, and still accepts, and meets in shared-key sessions, members without \
                 a certificate; these in turn take its signed gossip as a key holder's. The \
                 members it knew stay known.\n\n\
                 2. Once every member runs with a certificate (p2p-peers shows cert_expires for \
                 each), remove accept-uncertified on each member in turn and send it SIGHUP. \
                 Sessions of members without a certificate are then shut, and from then on the \
                 key alone gets nobody in.\n\n\
                 A restart (systemctl restart p2pd) instead of each SIGHUP works as well; queries \
                 addressed to that member are then unreachable for a moment (about a second; with \
                 --state-dir it rejoins at once). The same SIGHUP renews a certificate: put the \
                 new one (same name, same CA) in place and reload; the member signs with it and \
                 shows it at once, so the old serial may then be revoked without cutting the \
                 member off. Going back to the shared key alone is a SIGHUP without ca, cert and \
                 node-key. A new name or a new CA needs a restart: such a reload is refused with \
                 an error in the log, and the certificate in force stays. The test suite runs \
                 this procedure on three members, both by SIGHUP and by restarts, and checks \
                 after every step that every member answers --all from every member."
                    .into(),
            ));
            s.push((
                "CONFIGURATION",
                "Settings come from flags, then the environment, then a TOML file, then the \
                 built-in defaults. The file is --config FILE (or P2PD_CONFIG), else \
                 ~/.config/p2p/p2pd.toml, else /etc/p2pd/p2pd.toml, the first that exists. Its keys \
                 are the long flags as written on the command line; repeatable flags take arrays; \
                 relative paths are taken from the file's directory:\n\n  port = 65432\n  bind = \"0.0.0.0\"\n  advertise = \"10.0.0.4:65432\"\n  join = [\"10.0.0.5:65432\"]\n  export = [\"/srv/data\"]\n  tag = [\"role=storage\"]\n  gossip-interval = 200\n  log-level = \"info\"\n\n\
                 A file with a syntax error, an unknown key or a bad value stops p2pd at start with \
                 the file, the line and what is wrong (exit status 2). The cluster key itself never \
                 goes in the file: secret-file names the file that holds it (or use P2PD_SECRET or a \
                 systemd credential). Intervals and timeouts are in milliseconds (gossip-interval = \
                 200 gossips five times a second)."
                    .into(),
            ));
            s.push((
                "STATE",
                "With --state-dir DIR, p2pd keeps its identity and the members it knows in \
                 DIR/state.json, written atomically (temporary file, fsync, rename) whenever \
                 membership changes and at exit. After a restart it takes an incarnation above any \
                 it had and rejoins the members it knew, with no --join. A state file that is cut \
                 short or not ours is renamed state.json.corrupt-TIME with a warning, and p2pd \
                 starts afresh."
                    .into(),
            ));
            s.push((
                "SYSTEMD",
                "contrib/systemd/p2pd.service runs p2pd as Type=notify: READY=1 is sent once the \
                 local socket, the peer port and gossip are bound (with STATUS=serving SOCKET as \
                 NAME, peers on port PORT), STOPPING=1 on the way out, and \
                 WATCHDOG=1 at half of WatchdogSec. The cluster key may come as a credential \
                 (LoadCredential=cluster.key:/etc/p2pd/cluster.key, read from \
                 $CREDENTIALS_DIRECTORY); a local socket passed by socket activation (LISTEN_FDS) \
                 is used instead of binding one. Log lines carry no timestamp under the journal."
                    .into(),
            ));
            s.push((
                "SIGNALS",
                "SIGINT, SIGTERM: tell the other members we leave (they show it as left, not \
                 down), give local queries in flight a second to finish, save the state, remove the \
                 socket and exit 0, all within 2 seconds. p2p-leave asks for the same.\n\n\
                 SIGHUP (systemctl reload p2pd): read the flags' sources again (the config file, and \
                 the key file) and apply, without leaving the cluster: --export, --tag (the other \
                 members see an update), --log-level, the keys, and the certificate (--ca, --cert, \
                 --node-key, --accept-uncertified; see MOVING TO CERTIFICATES). A file that no longer parses \
                 changes nothing, with an error in the log. Keys from P2PD_SECRET stay as they are. \
                 To rotate the key with no downtime: on every member put the new key on the second \
                 line and send SIGHUP; then move it to the first line and send SIGHUP; then remove the \
                 old line and send SIGHUP."
                    .into(),
            ));
            s.push((
                "ENVIRONMENT",
                "P2P_SOCKET: the socket path, as --socket.\n\n\
                 P2PD_CONFIG: the config file, as --config.\n\n\
                 P2PD_SECRET: cluster keys (base64, comma-separated), when --secret-file is not given.\n\n\
                 RUST_LOG: log filter, as --log-level (error, warn, info, debug, trace, or per module).\n\n\
                 JOURNAL_STREAM: when set (stderr goes to the systemd journal), log lines carry no timestamp.\n\n\
                 NOTIFY_SOCKET, WATCHDOG_USEC, CREDENTIALS_DIRECTORY, LISTEN_FDS: set by systemd; see SYSTEMD."
                    .into(),
            ));
            s.push((
                "FILES",
                "$XDG_RUNTIME_DIR/p2p/p2pd-PORT.sock: the local socket (mode 0660), unless --socket \
                 or P2P_SOCKET names another; without XDG_RUNTIME_DIR, /run/p2p/p2pd-PORT.sock for \
                 root and /tmp/p2p-UID/p2pd-PORT.sock for other users. Its directory is created \
                 0700 when missing, and refused when it belongs to another user or others may \
                 write to it. Under the systemd unit (XDG_RUNTIME_DIR=/run) it is \
                 /run/p2p/p2pd-PORT.sock, where the commands look last.\n\n\
                 ~/.config/p2p/cluster.key ($XDG_CONFIG_HOME/p2p/cluster.key when that is set): the \
                 per-user cluster key, created (0600, 32 random bytes) when no --secret-file, \
                 P2PD_SECRET, secret-file in the config file or systemd credential gives one. \
                 $CREDENTIALS_DIRECTORY/cluster.key under systemd (the unit passes \
                 /etc/p2pd/cluster.key).\n\n\
                 ~/.config/p2p/p2pd.toml, then /etc/p2pd/p2pd.toml: the config file, the first that \
                 exists, when --config and P2PD_CONFIG name none.\n\n\
                 DIR/state.json (and DIR/state.json.corrupt-TIME for one that could not be read): \
                 identity and known members, with --state-dir DIR; /var/lib/p2pd under the unit."
                    .into(),
            ));
            s.push((
                "EXIT STATUS",
                "0 after SIGINT or SIGTERM; 2 when it cannot start (socket in use, bad flags)."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "Start a daemon with the defaults, then ask it something:\n\n  p2pd &\n  p2p-wc notes.txt | jq .words\n\n\
                 A second daemon joining the first:\n\n  p2pd 65433 127.0.0.1:65432 &\n\n\
                 Let peers read below /srv/data, then ask every member:\n\n  p2pd --export /srv/data &\n  p2p-sha256 --all /srv/data/model.bin\n\n\
                 A second daemon on the same host, with its own port and socket:\n\n  p2pd 65433 &\n  P2P_SOCKET=$XDG_RUNTIME_DIR/p2p/p2pd-65433.sock p2p-wc notes.txt"
                    .into(),
            ));
        }
        "p2p-wc" => {
            s.push((
                "OUTPUT",
                "One JSON object per path, in the order the paths were given (with --peer, --all or \
                 --spread: one per member and path, as they arrive), flushed as results arrive: peer (the member that computed it), path (as given), lines, words, bytes, \
                 chars, and max_line_length with -L. With -l, -w, -c, -m or -L only the chosen \
                 counts appear; with none of them, the four counts (in --format text lines, words \
                 and bytes, as wc prints them). -c alone answers \
                 from the size of a regular file whose size can be trusted, without reading it (as \
                 GNU wc: when the size is a multiple of the page size, the last st_blksize bytes \
                 are read to check), from the offset of standard input when that is such a \
                 file. With \
                 --total=always or only, a last object carries \"total\": true and the sums (only: \
                 alone); max_line_length there is the longest of all, not a sum.\n\n\
                 Counts follow current GNU wc (coreutils 9.5 and later) in a UTF-8 locale \
                 (LC_ALL=C.UTF-8 wc -lwmcL), exactly. A word is a maximal run of anything that is \
                 not white space: white space is what glibc's iswspace says (tab, newline, vertical \
                 tab, form feed, carriage return, space, U+1680, U+2000-U+2006, U+2008-U+200A, \
                 U+2028, U+2029, U+205F, U+3000) and the no-break spaces U+00A0, U+2007, U+202F and \
                 U+2060, unless POSIXLY_CORRECT is set (see ENVIRONMENT). Control and unprintable characters, unassigned code points and bytes that \
                 are not valid UTF-8 are parts of words (Debian 12's wc 9.1 still skips them); \
                 invalid bytes count as no character. -L is the widest line in display columns: \
                 a newline, carriage return or form feed ends a line, a tab moves to the next \
                 multiple of 8, printable characters add their glibc wcwidth (2 for wide East \
                 Asian characters, 0 for combining marks), controls and invalid bytes add \
                 nothing.\n\n\
                 --format text prints exactly what GNU wc prints: the chosen counts in wc's order \
                 (lines, words, chars, bytes, max line length), each right-aligned to one width \
                 taken, as wc takes it, from the total size of the operands (1 for a single count \
                 of a single file, at least 7 when an operand is not a regular file), then the \
                 name, quoted only if it holds a newline; a total line by the --total rules; \
                 messages on stderr in wc's words (p2p-wc: NAME: No such file or directory), \
                 names quoted as wc quotes them. A directory prints a line of zeros and the \
                 error, as wc does. --debug says on stderr which line counter is used, once, when \
                 lines are counted without words, characters or -L.\n\n"
                    .to_string()
                    + PATH_B64_FIELD
                    + CHANGED_FIELD
                    + ERROR_FIELDS,
            ));
            s.push(("INPUT", input_section(bin)));
            s.push(("WHERE IT RUNS", WHERE_IT_RUNS.into()));
            s.push(("SPLITTING", splitting_section(bin)));
            s.push(("GROUPING", grouping_section(bin)));
            s.push(("LONG JOBS", long_jobs_section(bin)));
            s.push((
                "EXAMPLES",
                "  p2p-wc notes.txt | jq .words\n  p2p-wc -l *.log | jq -s 'map(.lines) | add'\n  \
                 find . -name '*.rs' -print0 | p2p-wc -0 --files-from - --format text\n  p2p-wc --all /etc/motd --format text\n  p2p-wc --all --group -l /etc/motd\n  p2p-wc --peer db1 --peer db2 /var/log/syslog | jq '{peer, lines}'"
                    .into(),
            ));
        }
        "p2p-sha256" => {
            s.push((
                "OUTPUT",
                "One JSON object per path, in the order given (with --peer, --all or --spread: one \
                 per member and path, as they arrive): peer, path, sha256 (lower-case hex), \
                 bytes.\n\n\
                 --format sha256sum (and text) prints the lines GNU sha256sum prints: the digest, two \
                 spaces and the name (a space and * with -b), or \"SHA256 (NAME) = DIGEST\" with --tag. A line whose name \
                 holds a backslash, newline or carriage return starts with a backslash, and those are \
                 written \\\\, \\n and \\r, so sha256sum -c reads every name back. -z ends lines with NUL \
                 instead and escapes nothing. Without --format, any of --tag, -z, -b or -t selects \
                 --format sha256sum.\n\n\
                 -c (--check) reads the FILE operands (none, or -, is standard input) as sha256sum -c \
                 does: the digest, two spaces (or a space and *) and the name; BSD's digest, one space and \
                 the name (once a line has it, every later line is read so); BSD tags \"SHA256 (NAME) = DIGEST\" and \
                 OpenSSL's \"SHA256(NAME)= DIGEST\", leading blanks, a leading backslash for escaped names, \
                 CRLF line ends, # comments, hex digits in either case and base64 digests (as cksum \
                 --base64 writes them). Names are bytes, UTF-8 or not. A line that is none of these is \
                 counted as improperly formatted; the others are still checked. A NAME of - reads \
                 standard input, unless the check file itself came from there.\n\n\
                 In JSON each checked line prints peer, path, sha256, bytes, expected (the digest of the \
                 line) and match. With --format text it prints \"NAME: OK\", \"NAME: FAILED\" or \"NAME: \
                 FAILED open or read\" as sha256sum -c does, names quoted as shell words when they need \
                 it ('a b', 'a'$'\\n''b'), and then on stderr, per check file: \"WARNING: N lines are \
                 improperly formatted\", \"WARNING: N listed files could not be read\", \"WARNING: N \
                 computed checksums did NOT match\" (singular for one), \"FILE: no properly formatted \
                 checksum lines found\", and with --ignore-missing \"FILE: no file was verified\" when no \
                 file matched. --quiet drops the lines of files that match; --status prints nothing but \
                 the errors about files that cannot be read and check files without a digest line; -w \
                 also names each improperly formatted line (\"FILE: N: improperly formatted SHA256 \
                 checksum line\"); the last of the three wins. A check file passes when it has a digest \
                 line, some file matched, none differed and none was unreadable (with --ignore-missing a \
                 missing file is skipped), and with --strict no line was improperly formatted; the exit \
                 status is 1 unless every check file passes.\n\n\
                 Messages name files quoted as GNU's do, so a name with a space or a newline stays one \
                 word of one line. The combinations sha256sum refuses (--tag or -z or -b/-t with -c; \
                 --ignore-missing, --quiet, --status, --strict or -w without it; --tag with -t) are \
                 refused with its words and exit status 1.\n\n"
                    .to_string()
                    + PATH_B64_FIELD
                    + CHANGED_FIELD
                    + ERROR_FIELDS,
            ));
            s.push(("INPUT", input_section(bin)));
            s.push(("WHERE IT RUNS", WHERE_IT_RUNS.into()));
            s.push(("SPLITTING", splitting_section(bin)));
            s.push(("GROUPING", grouping_section(bin)));
            s.push(("LONG JOBS", long_jobs_section(bin)));
            s.push(("FLEET CHECK", FLEET_CHECK.into()));
            s.push((
                "EXAMPLES",
                "  p2p-sha256 /etc/ssh/sshd_config | jq -r .sha256\n  \
                 p2p-sha256 --format sha256sum *.iso > SHA256SUMS && sha256sum -c SHA256SUMS\n  \
                 p2p-sha256 --check SHA256SUMS --format text --quiet\n  \
                 p2p-sha256 --tag /etc/hosts\n  p2p-sha256 --all /etc/ssh/sshd_config | jq -r '.peer + \" \" + .sha256'\n                 p2p-sha256 --all --group /etc/ssh/sshd_config --format text\n  \
                 p2p-sha256 --check /etc/ssh/SHA256SUMS --all --group\n    find /shared/data -type f | p2p-sha256 --spread --files-from - > manifest.jsonl"
                    .into(),
            ));
        }
        "p2p-count" => {
            s.push((
                "OUTPUT",
                "One JSON object per directory: peer, path, files (regular files), dirs, symlinks, \
                 other (FIFOs, sockets, devices), bytes (sum of regular file sizes), recursive, and \
                 unreadable (subdirectories that could not be read, or that may be listed but not \
                 searched; their contents are not counted). The directory itself is not counted. \
                 Symlinks are counted, never followed. Directories of any size are read as a \
                 stream; with -r the tree is walked by one thread per core (up to four), each \
                 regular file stat()ed once for its size. On this host the command walks the tree \
                 itself, with your rights; other members walk below their exports.\n\n\
                 Each directory that could not be read is also reported on stderr as find(1) \
                 reports it, after the line of its count: p2p-count: 'DIR': Permission denied \
                 (DIR is the path given joined with the directory below it; when several members \
                 answer, the member's name comes first: p2p-count: NAME: 'DIR': ...), and the exit \
                 status is 1. An answer names at most 10,000 such directories on this host and 64 \
                 from another member; one more line says how many others there were.\n\n\
                 --format text prints columns: files, dirs, symlinks, other, bytes, path.\n\n"
                    .to_string()
                    + PATH_B64_FIELD
                    + ERROR_FIELDS,
            ));
            s.push((
                "INPUT",
                "p2p-count has no standard input, as find has none: - is a directory named -, \
                 and a PATH or a list is required. Lists work as for p2p-wc: --files-from FILE \
                 (blank lines skipped), -0 --files-from FILE or --files0-from=F (an empty name is \
                 the error F:N: invalid zero-length file name)."
                    .into(),
            ));
            s.push(("WHERE IT RUNS", WHERE_IT_RUNS.into()));
            s.push(("GROUPING", grouping_section(bin)));
            s.push(("LONG JOBS", long_jobs_section(bin)));
            s.push((
                "EXAMPLES",
                "  p2p-count -r /srv/data | jq '.files + .dirs'\n  p2p-count --format text /var/log /tmp\n  p2p-count --all -r /srv/data --where role=storage | jq '{peer, files}'".into(),
            ));
        }
        "p2p-get" => {
            s.push((
                "DESCRIPTION",
                "p2p-get copies regular files from members of the cluster to this host: one \
                 file (MEMBER:/PATH, written to DEST, or into DEST when it is a directory, or to \
                 ./NAME), a tree (-r MEMBER:/DIR DEST, as cp -r: into DEST when it is a directory, \
                 else as DEST), or one file from every member (--all /PATH DIR, into \
                 DIR/MEMBER/PATH, the whole of PATH below DIR/MEMBER). The member is named as \
                 p2p-peers lists it; MEMBER:/PATH is split at its first :/, so a name of the form \
                 HOST:PORT works, and the path is absolute, as it is on the member.\n\n\
                 The file travels over the encrypted session between the local p2pd and the \
                 member. The member hashes it (SHA-256) as it reads and sends the digest at the \
                 end; the local p2pd hashes what it writes and the file is kept only when the two \
                 agree (else mismatch). A file that changes while it is sent (its size, mtime, \
                 ctime or inode differ at the end) is refused with changed, as the queries \
                 refuse to count one: try again.\n\n\
                 Writing is atomic: the file is written to a temporary file in DEST's directory, \
                 synced, renamed to DEST (renameat2 RENAME_NOREPLACE: an existing DEST is never \
                 replaced unless -f is given, not even one that appears meanwhile), and the \
                 directory is synced. The temporary file is .NAME.p2p-tmp.PID, removed when the \
                 transfer fails or the command is interrupted (SIGINT, SIGTERM, SIGHUP; the exit \
                 status is then 128 plus the signal number). With -c (--continue) it is \
                 NAME.p2p-partial instead: kept when the transfer fails or is interrupted, and \
                 picked up by the next p2p-get -c of the same DEST. What it holds is read back \
                 and hashed again (never trusted), only the rest is sent, and the whole file must \
                 still hash to the member's digest: a partial file that is not the start of the \
                 file gets mismatch and is removed.\n\n\
                 With -r the tree is listed by the member (depth first, never following a \
                 symlink), its directories are made here and its regular files fetched four \
                 at a time, each as above (with --all too: four members at a time; each line \
                 is printed as its file ends). Symlinks are neither followed nor made, and FIFOs, sockets \
                 and devices are not fetched: each is named on stderr as skipped, without \
                 changing the exit status. A directory of the tree that exists here is used; a \
                 symlink in its place is refused (not_a_directory), so a tree never lands where \
                 a link points. Names the member lists are checked: one with a .. or an empty \
                 component is skipped.\n\n\
                 A file of this member itself (MEMBER is this host's p2pd) is copied by the \
                 command, with your own rights, by the same rules, as cp would; the daemon is \
                 not asked to read it.\n\n\
                 With --any PATH DEST, one file that several members hold with the same content \
                 (a package, an image, a data set) is fetched from several of them at once. The \
                 candidates are every alive member but this one (--where KEY=VALUE narrows them \
                 by tag), or those named with --peer. Each is asked for the file's manifest: its \
                 size, its SHA-256, and the SHA-256 of each chunk (4 MiB, or more for a file \
                 above 47 GiB so that a manifest has at most 12,000 chunks; files above about \
                 750 GiB are refused), computed from one read under the same rules as a query \
                 (exports, groups, changed). The members whose manifests agree with the most \
                 others are the sources, up to 8; a member that holds other content is not used \
                 and is named on stderr (the exit status stays 0), and when as many members \
                 hold one content as another the file is refused with mismatch: name the \
                 member with MEMBER:/PATH. Chunks then come from every source at once, two at a \
                 time from each, lowest first to whichever source is free; each chunk is checked \
                 against its digest before it is written at its place in the temporary file. A \
                 source whose chunk does not match, that fails, falls silent for --timeout or \
                 is stopped is dropped, and its chunks are fetched from the others; the file \
                 fails only when every source is dropped. When no chunk is left to hand out, a \
                 free source also fetches a chunk that another has held three times as long as \
                 chunks have taken on average (at least 1 s; 10 s before any chunk is done): \
                 the first copy written wins and the slower link is cut, so one slow source \
                 does not hold up the end. At the end the file is read back and \
                 must hash to the manifest's SHA-256, then it is synced and renamed as above. \
                 With -c, the chunks DEST.p2p-partial holds whole are checked against the \
                 manifest and those that match are kept; only the others are fetched. This \
                 host's own copy is never a source (p2pd would read it with its own rights)."
                    .into(),
            ));
            s.push((
                "OUTPUT",
                "One JSON object per file: peer, path (on the member; path_b64 when it is not \
                 UTF-8), dest (where it was written; dest_b64 likewise), bytes and sha256. \
                 --format text prints sha256sum lines of the files written (sha256, two spaces, \
                 DEST), which sha256sum -c accepts: a DEST with a backslash or a newline is \
                 escaped as sha256sum escapes it (the line starts with a backslash). Messages \
                 quote names as GNU tools do.\n\n\
                 A file that fails prints {\"peer\",\"path\",\"error\":{\"code\",\"message\"}} \
                 and a message on stderr; besides the codes of the queries (not_found, \
                 permission_denied, not_exported, is_directory, unauthorized, unreachable, \
                 timeout, ...) there are changed (the file changed while it was sent), exists \
                 (DEST exists and -f was not given) and mismatch (what arrived does not hash to \
                 the member's digest). With --all a member that is down gets unreachable at \
                 once, and the others are still fetched.\n\n\
                 With --any, peer names the members the chunks came from, folded \
                 (node[1-3]), and the line adds sources, [{\"peer\",\"bytes\"}] (the bytes \
                 written that came from each member), and unused, [{\"peer\",\"error\"}]: \
                 every member asked and not used: those that held other content (mismatch), \
                 were down (unreachable) or did not have the file (not_found, not_exported, \
                 ...), the sources dropped mid-way (with why; such a member is also in sources \
                 for the chunks it gave before), and a source that sent nothing because each \
                 chunk it was given came from another first (timeout). When no member has the \
                 file, the line's error says why for the first few. \
                 jq '.sources[] | .peer' lists who sent what.\n\n\
                 The progress line (files, bytes, rate) is shown on stderr when it is a \
                 terminal; --progress shows it anywhere, --no-progress never."
                    .into(),
            ));
            s.push((
                "LIMITS",
                "A member sends a file on its worker pool, 32 MiB at a time, in the asking \
                 member's share of the workers, so transfers take turns with queries; a receiver \
                 that stops reading holds a worker at most for the peer session's write timeout \
                 (60 s). The local p2pd holds at most as many links to one member as for queries. \
                 A tree's listing holds at most 1,000,000 entries. --timeout bounds how long a \
                 member may stay silent. --any asks 16 members for their manifest at a time \
                 (a member hashing a large file tells the asker every second that it is still \
                 at it), uses at most 8 sources and two links to each, and holds one chunk per \
                 link in memory (4 MiB, up to 64 MiB for the largest files)."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "  p2p-get web3:/etc/ssh/sshd_config\n  p2p-get web3:/etc/ssh/sshd_config /tmp/web3.sshd_config\n  p2p-get --all /etc/ssh/sshd_config collected/\n  p2p-get -r db1:/srv/reports reports/\n  p2p-get -c big:/srv/data/dump.tar .   # again after an interruption: picks it up\n  p2p-get --any /srv/images/base.qcow2 /var/lib/images/   # chunks from every member that has it\n  p2p-get --any --where rack=r1 /srv/images/base.qcow2 . | jq -c '.sources'".into(),
            ));
            s.push(("EXIT STATUS", "0 when every file was fetched; 1 when some file failed; 2 for a usage error; 3 when the local p2pd cannot be reached; 128 plus the signal's number when interrupted.".into()));
            s.push(("ENVIRONMENT", CLIENT_ENV.into()));
            s.push(("FILES", CLIENT_FILES.into()));
        }
        "p2p-stat" => {
            s.push((
                "OUTPUT",
                "One JSON object per path: peer, path, type (file, directory, symlink, fifo, socket, \
                 char_device, block_device), size, mode (permission bits in octal, four digits), \
                 mtime (RFC 3339, UTC, with nanoseconds when non-zero), uid, gid, user and group \
                 (the owner's names on the member that answers; absent when it has none), inode, \
                 nlink (hard links), atime and ctime (last access and last status change, RFC 3339 \
                 UTC), birth (creation time, where the filesystem records one: statx(2) \
                 STATX_BTIME; absent otherwise), and for regular files lines, words, bytes, chars \
                 and sha256, computed from a single read. The metadata is taken before that read \
                 (which may move atime).\n\n\
                 As stat(1) does, a symlink is described as itself: type symlink, its own owner, \
                 times and size (the length of its target), and target (what readlink(2) \
                 returns; with target_b64 beside it when that is not UTF-8, as for path), with no \
                 content fields; a dangling link is no error. With -L \
                 (--dereference) the file it points to is described instead. On this host the \
                 command looks at the link itself; a member looks at it below its export without \
                 following it (the directories above it are resolved beneath the export, as for \
                 any query), so a link pointing out of an export shows its target text, and with \
                 -L is not_exported. A path whose symlinks loop gets symlink_loop with -L (and in \
                 p2p-wc, p2p-sha256, p2p-count). On this host, what has no content to read \
                 (directories, FIFOs, devices, sockets) is looked at by the command and never \
                 opened, as stat(1) does, so it needs only search rights on the directories \
                 above it; a regular file must be readable, for its counts and digest.\n\n\
                 --format text prints a block per path, in the manner of stat(1).\n\n"
                    .to_string()
                    + PATH_B64_FIELD
                    + CHANGED_FIELD
                    + ERROR_FIELDS,
            ));
            s.push(("INPUT", input_section(bin)));
            s.push(("WHERE IT RUNS", WHERE_IT_RUNS.into()));
            s.push(("SPLITTING", splitting_section(bin)));
            s.push(("GROUPING", grouping_section(bin)));
            s.push(("LONG JOBS", long_jobs_section(bin)));
            s.push((
                "EXAMPLES",
                "  p2p-stat notes.txt | jq '{size, mtime, sha256}'\n  p2p-stat --format text /etc/hosts\n  p2p-stat /etc/localtime | jq -r .target\n  p2p-stat -L /etc/localtime | jq -r '.user + \" \" + .sha256'\n  p2p-stat --peer 10.0.0.5:65432 /srv/data/report.csv".into(),
            ));
        }
        "p2p-peers" => {
            s.push((
                "OUTPUT",
                "One JSON object per member: name, addr (where it is reached), state (alive, \
                 suspect, down, left, or revoked: its certificate is revoked by the CA, and it is \
                 cut off), incarnation (grows with every restart of that member), \
                 tags (an object), self (true for the local daemon), since (when this daemon \
                 saw the member enter its current state, in RFC 3339, UTC, to the second, as in \
                 2026-12-02T04:10:03Z; for the local daemon, when it started). A query with --all \
                 reports a down or revoked member as unreachable with that time. With --ca, for \
                 each member whose certificate this daemon has verified (its own, a session's \
                 peer, the signer of a datagram): groups (the certificate's groups, an array, \
                 maybe empty) and cert_expires (its not-after, RFC 3339, UTC); neither field is \
                 there in shared-key mode, nor for a member not verified yet.\n\n\
                 With --watch, one line per change until interrupted: event (join, leave, fail, \
                 revoke or update) and the member's fields.\n\n\
                 --format text prints a table; the local daemon's name is marked with *. With \
                 certificates it has GROUPS and CERT_EXPIRES columns too (- where unknown)."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "  p2p-peers | jq -r 'select(.state == \"alive\") | .name'\n  \
                 p2p-peers --state down --format text\n  \
                 p2p-peers --watch | while read -r e; do echo \"$e\" | jq -r '.event + \" \" + .name'; done"
                    .into(),
            ));
        }
        "p2p-join" => {
            s.push((
                "OUTPUT",
                "One JSON object per address: addr and members (how many members we know of \
                 after joining through it), or addr and error {code, message}: unreachable (no \
                 answer), unauthorized (it holds another cluster key), invalid_request (refused, \
                 for example because our name is taken)."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "  p2p-join 10.0.0.5:65432 10.0.0.6:65432".into(),
            ));
        }
        "p2p-leave" => {
            s.push((
                "DESCRIPTION",
                "Asks the local p2pd to leave the cluster and exit, as SIGTERM does: the other \
                 members see it as left (not failed), queries in flight get a moment to finish, \
                 its state is saved and its socket removed. Only the daemon's own user or root may \
                 ask. The command returns once the daemon has closed the connection on its way out."
                    .into(),
            ));
            s.push((
                "OUTPUT",
                "One JSON object: left (true) and peer (the daemon's member name); with --format \
                 text, a sentence."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "  p2p-leave\n  P2P_SOCKET=/run/p2p/p2pd-65433.sock p2p-leave --format text".into(),
            ));
        }
        "p2p-keygen" => {
            s.push((
                "DESCRIPTION",
                "Prints 32 random bytes from the kernel, base64-encoded, on one line: a cluster \
                 key for p2pd --secret-file or P2PD_SECRET. Every member needs the same key.\n\n\
                 With --output FILE (-o) the key goes to FILE instead, which is created with mode \
                 0600 (O_CREAT|O_EXCL), so it is never readable by others, not even for a moment as \
                 with a shell redirection followed by chmod. An existing FILE, or a symlink in its \
                 place, is left alone and the command exits 1; --force replaces it, by writing a new \
                 0600 file beside it and renaming that over it."
                    .into(),
            ));
            s.push((
                "NODE KEYS",
                "With --node (and --output FILE), p2p-keygen makes a node key \
                 pair instead, for a certificate from the cluster CA (see p2p-ca(1)): an Ed25519 \
                 key that names the node and an X25519 key, its static key in the TCP handshake. \
                 The secret halves go to FILE (mode 0600, one line: p2p-node-secret-v1 and the \
                 base64 of the 32-byte Ed25519 seed and the 32-byte X25519 secret); the public \
                 halves to FILE with its extension replaced by .pub (one line: p2p-node-v1 and \
                 the base64 of both 32-byte public keys). Give the .pub file to the CA; FILE \
                 stays on the host, for p2pd --node-key."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "  p2p-keygen --node -o /etc/p2pd/node.key   # and /etc/p2pd/node.pub\n  \
                 p2p-keygen -o /etc/p2pd/cluster.key\n  \
                 p2p-keygen -o cluster.key --force\n  \
                 P2PD_SECRET=$(p2p-keygen) p2pd"
                    .into(),
            ));
        }
        "p2p-revoke" => {
            s.push((
                "DESCRIPTION",
                "p2p-revoke hands a revocation list (p2p-ca revoke) to the local p2pd. The daemon \
                 checks the CA's signature with its --ca key, installs the list in place of the \
                 one it held (refusing one issued earlier), and keeps it in --state-dir (the file \
                 revoked), where it is read again at start. From then on a member whose \
                 certificate serial is listed is refused: new sessions in both directions are \
                 refused, and those open are shut at once (kept query sessions included).\n\n\
                 The daemon then sends the list to every member it knows, in one gossip datagram \
                 each, together with the certificates of the revoked members it has seen (signed \
                 by the CA, they prove which member name a revoked serial belongs to). A member \
                 hearing a list newer than its own does the same: keeps it in its --state-dir, \
                 cuts the revoked members off, and passes the news on to three members picked at \
                 random. A list issued before the one in force, or not signed by the CA, is \
                 dropped and counted (datagrams_rejected.revocation in p2p-status(1)). Every \
                 member shows the revoked ones with state revoked in p2p-peers(1), drops their \
                 gossip, and refuses them when they come back, over gossip and over TCP. The \
                 list also rides in every push/pull sync (every 30 s with a random member) and \
                 in every join reply, so a member that was down meanwhile learns it when it comes \
                 back. A list too large for one datagram (about 160 serials) spreads by syncs and \
                 joins only. Gossip datagrams signed with a revoked certificate are dropped \
                 whatever name they carry (datagrams_rejected.revoked). A member cut off stays \
                 cut off under any other certificate of its name issued before the revoked one \
                 (an older certificate of the same key is refused, as superseded); only one \
                 issued later, a renewal, lets it back: for a member whose key was stolen, revoke \
                 its latest serial."
                    .into(),
            ));
            s.push((
                "OUTPUT",
                "One JSON object: revoked (serials in the list now in force) and peer (the \
                 daemon's member name); with --format text, a sentence."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "  p2p-ca revoke --dir /root/p2p-ca --list revoked 6a8a93087806d1ea > revoked.new\n  \
                 p2p-revoke revoked.new"
                    .into(),
            ));
        }
        "p2p-ca" => {
            s.push((
                "COMMANDS",
                "  p2p-ca init DIR\n  \
                 p2p-ca sign [--dir DIR] --name NAME [--group G]... [--valid DURATION] NODE.pub\n  \
                 p2p-ca revoke [--dir DIR] [--list FILE] SERIAL...\n\n\
                 sign's options: --dir DIR, the CA's directory, holding ca.key (default: the \
                 current directory); --name NAME, the member name the certificate is for (p2pd \
                 --name); --group G, a group the member belongs to (repeatable); --valid \
                 DURATION, how long the certificate is valid from now, a number followed by s, m, \
                 h or d (default: 365d).\n\n\
                 revoke prints a revocation list signed by the CA, for p2p-revoke(1): the \
                 SERIALs (16 hex digits, as sign prints them) and, with --list FILE, every serial \
                 of that earlier list. A list replaces the one a daemon holds whole, so each new \
                 list must carry every serial still revoked; a daemon refuses a list issued \
                 before the one it holds (or at the same second with other serials). A list made \
                 with --list within the second its earlier list was issued is dated a second \
                 after it. Layout: p2p-revoked-v1 and the base64 of magic \
                 \"p2pr\", version 1, issued (8 bytes, seconds since the epoch), a count (4) and \
                 the serials in ascending order (8 each), then the CA's Ed25519 signature (64) \
                 over all before it."
                    .into(),
            ));
            s.push((
                "DESCRIPTION",
                "p2p-ca is the cluster's certificate authority. p2p-ca init DIR makes a new \
                 Ed25519 key pair: DIR/ca.key, the secret half (mode 0600, one line: \
                 p2p-ca-secret-v1 and the base64 of the 32-byte seed), and DIR/ca.pub, the public \
                 half (p2p-ca-v1 and the base64 of the 32-byte key), which every member is given \
                 as p2pd --ca. An existing ca.key is never replaced.\n\n\
                 p2p-ca sign reads a node's public keys (p2p-keygen --node writes them) and prints \
                 a certificate on standard output that binds them to --name and the --group \
                 names, from five minutes ago (for members whose clocks are a little behind) to \
                 --valid from now. The serial is random. Names and groups are 1 to 64 ASCII \
                 letters, digits, '.', '_', '-', ':' or '@'; at most 32 groups, kept sorted and \
                 without duplicates."
                    .into(),
            ));
            s.push((
                "CERTIFICATE FORMAT",
                "A certificate file is one line: p2p-cert-v1, a space, and the base64 of these \
                 bytes (integers big-endian, times in seconds since the Unix epoch, signed):\n\n\
                 \x20 magic \"p2pc\"            4 bytes\n\
                 \x20 version (1)             1\n\
                 \x20 serial                  8\n\
                 \x20 not-before              8\n\
                 \x20 not-after               8\n\
                 \x20 Ed25519 public key     32\n\
                 \x20 X25519 public key      32\n\
                 \x20 name length, name      1 + 1..64\n\
                 \x20 group count            1 (0..32)\n\
                 \x20 per group: length, name 1 + 1..64\n\
                 \x20 CA signature          64 (Ed25519, over every byte before it)\n\n\
                 Nothing may follow the signature. A member accepts a certificate only when the \
                 signature verifies under its --ca key, the time is within [not-before, \
                 not-after), the X25519 key is the one the peer proved it holds in the handshake, \
                 and the name is the member name the peer claims. A later version of the layout \
                 gets a new version byte and a new label."
                    .into(),
            ));
            s.push((
                "EXAMPLES",
                "  p2p-ca init /root/p2p-ca\n  \
                 p2p-keygen --node -o node.key     # on the host; copy node.pub to the CA\n  \
                 p2p-ca sign --dir /root/p2p-ca --name web01 --group web --valid 90d node.pub > web01.crt\n  \
                 p2pd --name web01 --ca ca.pub --cert web01.crt --node-key node.key"
                    .into(),
            ));
        }
        "p2p-status" => {
            s.push(("DESCRIPTION", STATUS_DESCRIPTION.into()));
            s.push(("OUTPUT", STATUS_OUTPUT.into()));
            s.push((
                "EXAMPLES",
                "  p2p-status | jq '{uptime_seconds, members, workers_busy}'\n  \
                 p2p-status | jq '.cache_hits / (.cache_hits + .cache_misses)'\n  \
                 p2p-status --format prometheus > /var/lib/node_exporter/textfile/p2p.prom.$$ && \
                 mv /var/lib/node_exporter/textfile/p2p.prom.$$ /var/lib/node_exporter/textfile/p2p.prom"
                    .into(),
            ));
        }
        _ => {}
    }
    if bin == "p2p-ui" {
        s.push((
            "DESCRIPTION",
            "p2p-ui serves a small web dashboard of the local p2pd, for an operator who would \
             rather see than read: the members, live; queries with their results in a table; \
             the drift of a file across the fleet; the daemon's counters. The page is plain HTML, \
             CSS and JavaScript embedded in the binary: nothing is fetched from elsewhere, and it \
             works in current Firefox and Chromium, from the keyboard too.\n\n\
             On start it prints the URL to open, with a token, on standard output, and serves \
             until SIGINT or SIGTERM (which interrupt any query still running). By default it \
             listens on 127.0.0.1:8429; --listen 127.0.0.1:0 takes a free port, which the URL \
             names.\n\n\
             Members: name, address, state, incarnation, tags, since, and with a CA the \
             certificate's groups and expiry; the table follows the daemon's watch stream (as \
             p2p-peers --watch) through server-sent events, and a row that changes is highlighted \
             for a few seconds. Columns sort with a click (or Enter).\n\n\
             Query: a command (wc, sha256, count, stat), paths (one a line; relative ones against \
             the directory p2p-ui was started in) and where it runs (here, --peer, --all, \
             --spread, --where, --group). The command itself runs, as you, and its JSON lines \
             stream into a sortable table; the download buttons give those very lines (JSON \
             lines) or the same as CSV.\n\n\
             Drift: the paths asked with --all --group, as a matrix of paths by members, each \
             cell coloured by which distinct answer the member gave; members that differ from \
             the largest group come first, and so do the paths on which members disagree. A \
             click on a cell shows that member's whole answer.\n\n\
             Status: p2p-status's counters, read every 2 s, with small charts of queries, bytes \
             read and rejected datagrams per second over the last ten minutes."
                .into(),
        ));
        s.push((
            "API",
            "The page's endpoints, each needing the header Authorization: Bearer TOKEN (the \
             token of the printed URL): GET /api/members (the \
             member table as JSON), GET /api/events (server-sent events: snapshot, member, daemon), \
             GET /api/status (the counters and their history); POST /api/query and POST \
             /api/drift take a JSON form {\"command\": \"sha256\", \"paths\": [...], \
             \"placement\": \"here|peer|all|spread\", \"peers\": [...], \"where\": \
             [\"KEY=VALUE\"], \"group\": false, \"recursive\": false}. /api/query answers \
             an event stream: an out event per line the command prints, err per line on its \
             stderr, and exit with its status; /api/drift answers the matrix as one JSON object \
             at the end (spaces before it while the members answer; past 20,000 answer lines the \
             command is stopped and \"truncated\" is true). A page that goes away interrupts \
             the command behind either."
                .into(),
        ));
        s.push((
            "EXAMPLES",
            "  p2p-ui\n  p2p-ui --open\n  p2p-ui --listen 127.0.0.1:0 --socket /run/p2p/p2pd.sock\n  \
             ssh -L 8429:127.0.0.1:8429 host   # then open the printed URL here\n  \
             p2p-ui --listen 0.0.0.0:8429 --host ops1.example   # reached as ops1.example:8429\n  \
             curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8429/api/members"
                .into(),
        ));
        s.push((
            "EXIT STATUS",
            "0 once stopped by SIGINT or SIGTERM; 2 for a usage error or an address that cannot \
             be bound; 3 when the local p2pd cannot be reached at start (later, the page says the \
             daemon is down and the dashboard reconnects on its own)."
                .into(),
        ));
    }
    if ["p2p-wc", "p2p-sha256", "p2p-count", "p2p-stat"].contains(&bin) {
        s.push(("INTERRUPTION", INTERRUPTION.into()));
    }
    if bin != "p2pd" {
        s.push(("SECURITY", security(bin)));
    }
    if bin == "p2p-keygen" {
        s.push((
            "EXIT STATUS",
            "0 on success; 1 when no randomness is available or the key could not be written \
             (with --output: FILE exists and --force was not given, or it cannot be created); 2 \
             for a usage error."
                .into(),
        ));
    } else if bin == "p2p-ca" {
        s.push((
            "EXIT STATUS",
            "0 on success; 1 when a file cannot be read or written, is not what it should be, \
                 or (init) a CA is already in DIR; 2 for a usage error (a bad --valid, name or \
                 group)."
                .into(),
        ));
    } else if bin == "p2p-revoke" {
        s.push(("EXIT STATUS", "0 when the list was installed; 1 when it could not be read or p2pd refused it (not its CA's, older than the one held, no --ca); 2 for a usage error; 3 when the local p2pd cannot be reached.".into()));
        s.push(("ENVIRONMENT", CLIENT_ENV.into()));
        s.push(("FILES", CLIENT_FILES.into()));
    } else if bin == "p2p-leave" {
        s.push(("EXIT STATUS", "0 once the daemon has left and exited; 1 when it refused (another user); 3 when the local p2pd cannot be reached.".into()));
        s.push(("ENVIRONMENT", CLIENT_ENV.into()));
        s.push(("FILES", CLIENT_FILES.into()));
    } else if bin == "p2p-peers" {
        s.push(("EXIT STATUS", "0 on success; 1 when p2pd refused the request (too many watchers); 2 for a usage error; 3 when the local p2pd cannot be reached, or (with --watch) when it went away.".into()));
        s.push(("ENVIRONMENT", CLIENT_ENV.into()));
        s.push(("FILES", CLIENT_FILES.into()));
    } else if bin == "p2p-status" {
        s.push(("EXIT STATUS", "0 on success; 1 when p2pd refused the request (a p2pd older than p2p-status answers that the request is malformed); 2 for a usage error; 3 when the local p2pd cannot be reached.".into()));
        s.push(("ENVIRONMENT", CLIENT_ENV.into()));
        s.push(("FILES", CLIENT_FILES.into()));
    } else if bin == "p2p-join" {
        s.push(("EXIT STATUS", "0 when every address was joined; 1 when some address could not be joined; 2 for a usage error; 3 when the local p2pd cannot be reached.".into()));
        s.push(("ENVIRONMENT", CLIENT_ENV.into()));
        s.push(("FILES", CLIENT_FILES.into()));
    } else if bin == "p2p-wc" || bin == "p2p-sha256" {
        s.push((
            "EXIT STATUS",
            format!(
                "{EXIT_STATUS} As with GNU's {}, an unknown option or a bad option value \
                 (ours too, such as --timeout 0) exits 1; 2 is kept for what p2p checks once the \
                 options are read (a placement that cannot be, standard input sent to members).",
                if bin == "p2p-wc" { "wc" } else { "sha256sum" }
            ),
        ));
        let env = if bin == "p2p-wc" {
            format!(
                "{CLIENT_ENV}\n\nPOSIXLY_CORRECT: when set (to anything, even empty), the \
                 no-break spaces U+00A0, U+2007, U+202F and U+2060 are parts of words, not white \
                 space, as GNU wc counts them then. It is this command's environment that counts, \
                 wherever the query runs; a member of an earlier version refuses such a query."
            )
        } else {
            CLIENT_ENV.to_string()
        };
        s.push(("ENVIRONMENT", env));
        s.push(("FILES", CLIENT_FILES.into()));
    } else if bin == "p2p-ui" {
        s.push(("ENVIRONMENT", CLIENT_ENV.into()));
        s.push(("FILES", CLIENT_FILES.into()));
    } else if bin != "p2pd" {
        s.push(("EXIT STATUS", EXIT_STATUS.into()));
        s.push(("ENVIRONMENT", CLIENT_ENV.into()));
        s.push(("FILES", CLIENT_FILES.into()));
    }
    s.push((
        "SEE ALSO",
        "p2pd(1), p2p-wc(1), p2p-sha256(1), p2p-count(1), p2p-stat(1), p2p-peers(1), p2p-status(1), \
         p2p-ui(1), p2p-join(1), p2p-leave(1), p2p-keygen(1), p2p-ca(1), p2p-revoke(1), wc(1), sha256sum(1)"
            .into(),
    ));
    s
}

/// An `--export` value, checked as it is read (also at its line in the
/// config file) and kept as given: any bytes, as a path may hold.
fn export_value(value: std::ffi::OsString) -> Result<PathBuf, String> {
    crate::exports::Export::parse(&value).map(|_| PathBuf::from(value))
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_args_read_as_clap_reads_them() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let env = std::env::var_os("P2P_SOCKET");
        let lines: [&[&[u8]]; 9] = [
            &[],
            &[b"a"],
            &[b"a", b"b c", b"", b"\xff\xfe"],
            &[b"--socket=/run/s.sock", b"f"],
            &[b"f", b"--socket=/run/s.sock", b"g"],
            &[b"f", b"--socket=rel"],
            &[b"--socket=\xff"],
            &[b"-"],
            &[b"a", b"--", b"-l"],
        ];
        for line in lines {
            let args = || line.iter().map(|a| OsString::from_vec(a.to_vec()));
            let plain = super::PlainArgs::read(args(), env.clone());
            if line
                .iter()
                .any(|a| a.starts_with(b"-") && !a.starts_with(b"--socket="))
            {
                assert!(plain.is_none(), "{line:?}");
                continue;
            }
            let argv = |name: &str| std::iter::once(OsString::from(name)).chain(args());
            let wc = super::WcCli::try_parse_from(argv("p2p-wc")).unwrap();
            let sha = super::ShaCli::try_parse_from(argv("p2p-sha256")).unwrap();
            let plain = || super::PlainArgs::read(args(), env.clone()).unwrap();
            use super::FromPlain;
            assert_eq!(
                format!("{:?}", super::WcCli::from_plain(plain())),
                format!("{wc:?}")
            );
            assert_eq!(
                format!("{:?}", super::ShaCli::from_plain(plain())),
                format!("{sha:?}")
            );
        }
        // What clap alone says: a second --socket, an empty one, any flag.
        for line in [
            &["--socket=/a", "--socket=/b"][..],
            &["--socket="],
            &["--socket", "/a"],
            &["-l", "f"],
            &["--lines", "f"],
        ] {
            let args = line.iter().map(OsString::from);
            assert!(super::PlainArgs::read(args, None).is_none(), "{line:?}");
        }
    }

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        for c in commands() {
            c.debug_assert();
        }
    }

    #[test]
    fn wc_flags_parse_like_wc() {
        let c = WcCli::try_parse_from(["p2p-wc", "-lw", "a", "b"]).unwrap();
        assert!(c.lines && c.words && !c.bytes && !c.chars);
        assert_eq!(c.input.paths.len(), 2);
    }

    #[test]
    fn wc_takes_repeated_flags_and_total_abbreviations() {
        let c = WcCli::try_parse_from(["p2p-wc", "-l", "-l", "-lw", "-L", "-L"]).unwrap();
        assert!(c.lines && c.words && c.max_line_length && !c.bytes);
        let t = |v: &str| WcCli::try_parse_from(["p2p-wc", "--total", v]).map(|c| c.total);
        assert_eq!(t("only").unwrap(), Total::Only);
        assert_eq!(t("al").unwrap(), Total::Always);
        assert_eq!(t("n").unwrap(), Total::Never);
        assert!(t("a").is_err());
        assert!(t("sometimes").is_err());
        let c = WcCli::try_parse_from(["p2p-wc", "--total=never", "--total=always"]).unwrap();
        assert_eq!(c.total, Total::Always);
    }

    #[test]
    fn null_needs_files_from() {
        assert!(WcCli::try_parse_from(["p2p-wc", "-0", "a"]).is_err());
        assert!(WcCli::try_parse_from(["p2p-wc", "-0", "--files-from", "-"]).is_ok());
    }

    #[test]
    fn seed_port_form() {
        let c = DaemonCli::try_parse_from(["p2pd", "65433"]).unwrap();
        assert_eq!(c.port, 65433);
        assert_eq!(DaemonCli::try_parse_from(["p2pd"]).unwrap().port, 65432);
    }
}
