//! p2p: ask questions about files across a cluster of Linux hosts.
//!
//! A map of the crate, one line per module:
//!
//! - [`error`]: the typed item error and its documented wire codes.
//! - [`crypto`]: the cluster key ring, sealed gossip datagrams and their replay windows, the Noise TCP session, node certificates and revocation lists from a cluster CA.
//! - [`revocation`]: the CA's revocation list as the cluster spreads it: the newest list wins, with the certificates that name its serials.
//! - [`membership`]: SWIM membership through foca, sans-IO: payloads and time in, datagrams out.
//! - [`ops`]: the file computations (wc and its byte ranges, sha256, directory counts, stat), pure and socket-free.
//! - [`exports`]: the `--export` roots peers may read below, and the open that cannot escape them.
//! - [`cache`]: a bounded result cache keyed by device, inode, size, mtime and ctime.
//! - [`proto`]: the local JSON-lines protocol between the commands and `p2pd`, the peer protocol (with the frames of a file transfer, and `--any`'s sans-IO chunk plan), and LAN discovery's beacons; paths are bytes.
//! - [`fdpass`]: passing open descriptors over the Unix socket (SCM_RIGHTS).
//! - [`paths`]: where sockets, keys and state live by default.
//! - [`trust`]: whom a command may hand its descriptors to: the socket's directories and the daemon's uid.
//! - [`daemon`]: `p2pd` itself: listeners, worker pool, cluster queries, file transfers (`p2p-get`, and `--any` from several members at once), signals, the certified identity it loads.
//! - [`ui`]: `p2p-ui`, the web dashboard on loopback: token and Host/Origin checks, the JSON and event-stream endpoints, the embedded page.
//! - [`cmd`]: one module per command: flags to query, results to output.
//! - [`input`]: what the commands' names mean: standard input, `-`, lists and their empty names.
//! - [`client`]: what every command shares: reading paths, talking to the daemon, printing.
//! - [`output`]: the one printer for JSON lines and the text formats.
//! - [`resume`]: `--resume FILE`: the paths an earlier run's output already answers, skipped.
//! - [`progress`]: the progress line of a long `--spread` or `--all` on stderr, through indicatif.
//! - [`group`]: `--group`: many members' answers folded into one line per distinct answer, and the roll call of a query's members.
//! - [`nodeset`]: member names folded into ranges (`web[01-40],db3`), as ClusterShell's nodeset.
//! - [`checkfile`]: the `sha256sum` line format: the lines we write and the check files we read.
//! - [`quote`]: file names in messages, quoted as GNU tools quote them.
//! - [`cli`]: the clap definitions of every binary, also used for man pages and completions.
//! - [`config`]: `p2pd`'s TOML config file, merged under its flags and environment.
//! - [`state`]: what `p2pd` keeps in `--state-dir` across restarts, written atomically.
//! - [`systemd`]: readiness, watchdog, credentials and socket activation, without libsystemd.

pub mod cache;
pub mod checkfile;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod exports;
pub mod fdpass;
pub mod group;
pub mod input;
pub mod membership;
pub mod nodeset;
pub mod ops;
pub mod output;
pub mod paths;
pub mod progress;
pub mod proto;
pub mod quote;
pub mod resume;
pub mod revocation;
pub mod state;
pub mod systemd;
pub mod trust;
pub mod ui;
