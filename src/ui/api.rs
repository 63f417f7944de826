//! What the page asks for, as JSON: the members (kept up to date from the
//! daemon's watch stream and pushed as server-sent events), the daemon's
//! counters with their recent history, and queries, which run the very
//! command a user would type (`p2p-wc`, `p2p-sha256`, `p2p-count`,
//! `p2p-stat`), as the user who started the dashboard, so their lines are
//! exactly what the command prints.

use crate::cli::Connection;
use crate::client::{one_reply, request};
use crate::nodeset::natural_cmp;
use crate::proto::Request;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Events a slow page may leave unread before it is dropped (it reconnects
/// and starts again from a snapshot).
const BACKLOG: usize = 1024;

/// Status samples kept: ten minutes, one every [`SAMPLE_EVERY`].
const SAMPLES: usize = 300;

/// How often the counters are read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Paths one query may name.
pub const MAX_PATHS: usize = 10_000;

/// One server-sent event: its name and its one line of data.
pub type Event = (&'static str, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The member list as the daemon last told it, and the pages listening.
#[derive(Default)]
pub struct Members {
    state: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// By name: the member as `p2p-peers` prints it.
    rows: BTreeMap<String, Value>,
    up: bool,
    message: String,
    listeners: Vec<SyncSender<Event>>,
}

impl Table {
    fn snapshot(&self) -> Event {
        let members: Vec<&Value> = self.rows.values().collect();
        let data = json!({"up": self.up, "message": self.message, "members": members});
        ("snapshot", data.to_string())
    }

    fn send(&mut self, ev: Event) {
        // A page that does not keep up loses its stream; it reconnects.
        self.listeners.retain(|l| {
            !matches!(
                l.try_send(ev.clone()),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            )
        });
    }
}

impl Members {
    /// A new listener: its first event is the snapshot of the table.
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = sync_channel(BACKLOG);
        let mut t = lock(&self.state);
        let _ = tx.try_send(t.snapshot());
        t.listeners.push(tx);
        rx
    }

    /// The table now, as the snapshot event's data.
    pub fn now(&self) -> String {
        lock(&self.state).snapshot().1
    }

    /// Follows the daemon on `conn` for ever: a watch stream first, then
    /// the list (so no change falls between them), then every change; when
    /// the daemon goes away, says so and tries again every second.
    pub fn follow(self: Arc<Self>, conn: Connection) {
        loop {
            let why = match self.follow_once(&conn) {
                Ok(()) => "the daemon closed the watch stream".to_string(),
                Err(why) => why,
            };
            let mut t = lock(&self.state);
            if t.up || t.message != why {
                t.up = false;
                t.message = why.clone();
                t.send(("daemon", json!({"up": false, "message": why}).to_string()));
            }
            drop(t);
            thread::sleep(Duration::from_secs(1));
        }
    }

    fn follow_once(&self, conn: &Connection) -> Result<(), String> {
        let mut watch = request(conn, &Request::Peers { watch: true }).map_err(|f| f.message)?;
        let rows = list(conn)?;
        {
            let mut t = lock(&self.state);
            t.rows = rows;
            t.up = true;
            t.message.clear();
            let snap = t.snapshot();
            t.send(snap);
        }
        loop {
            let line = match watch.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("reading the watch stream: {e}")),
            };
            let Ok(Value::Object(mut ev)) = serde_json::from_slice::<Value>(&line) else {
                return Err("unexpected line on the watch stream".into());
            };
            if ev.contains_key("error") {
                return Err(refusal(&Value::Object(ev)));
            }
            let kind = ev.remove("event").unwrap_or(Value::Null);
            let Some(name) = ev.get("name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            // What a change does not carry (a certificate's groups and
            // expiry) is in the list, asked again for a member new to us.
            let known = lock(&self.state).rows.contains_key(&name);
            let listed = if known {
                None
            } else {
                list(conn).ok().and_then(|mut l| l.remove(&name))
            };
            let mut t = lock(&self.state);
            let row = merge(t.rows.remove(&name).or(listed), ev);
            t.rows.insert(name, row.clone());
            t.send(("member", json!({"event": kind, "member": row}).to_string()));
        }
    }
}

/// The member list, by name, as `p2p-peers` prints it.
fn list(conn: &Connection) -> Result<BTreeMap<String, Value>, String> {
    let mut reader = request(conn, &Request::Peers { watch: false }).map_err(|f| f.message)?;
    let mut rows = BTreeMap::new();
    while let Ok(Some(line)) = reader.next_line() {
        match serde_json::from_slice::<Value>(&line) {
            Ok(v) if v.get("name").is_some() => {
                let name = v["name"].as_str().unwrap_or_default().to_string();
                rows.insert(name, v);
            }
            Ok(v) if v.get("error").is_some() => return Err(refusal(&v)),
            _ => break,
        }
    }
    Ok(rows)
}

/// A member's row after a change: the change's fields over what the list
/// said (the list alone has groups and expiry, which do not change).
fn merge(old: Option<Value>, new: serde_json::Map<String, Value>) -> Value {
    let mut row = match old {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    row.extend(new);
    Value::Object(row)
}

fn refusal(v: &Value) -> String {
    let msg = v["error"]["message"].as_str().unwrap_or("refused");
    format!("p2pd refused: {msg}")
}

/// The daemon's counters, read every [`SAMPLE_EVERY`], with the last ten
/// minutes of the few the charts draw.
#[derive(Default)]
pub struct Counters {
    state: Mutex<Samples>,
}

#[derive(Default)]
struct Samples {
    last: Option<Value>,
    message: String,
    history: VecDeque<Value>,
}

impl Counters {
    /// Reads the counters for ever.
    pub fn sample(self: Arc<Self>, conn: Connection) {
        loop {
            let got = one_reply::<Value>(&conn, &Request::Status, "");
            let mut s = lock(&self.state);
            match got {
                Ok((v, _, _)) => {
                    s.history.push_back(point(&v, unix_now()));
                    if s.history.len() > SAMPLES {
                        s.history.pop_front();
                    }
                    s.last = Some(v);
                    s.message.clear();
                }
                Err(f) => {
                    s.last = None;
                    s.message = f.message;
                }
            }
            drop(s);
            thread::sleep(SAMPLE_EVERY);
        }
    }

    /// What `/api/status` answers.
    pub fn json(&self) -> String {
        let s = lock(&self.state);
        let history: Vec<&Value> = s.history.iter().collect();
        json!({
            "up": s.last.is_some(),
            "message": s.message,
            "status": s.last,
            "history": history,
            "every_seconds": SAMPLE_EVERY.as_secs(),
        })
        .to_string()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The totals the charts draw, from one `p2p-status` object (they are
/// running totals; the page draws their rate).
fn point(status: &Value, t: u64) -> Value {
    let n = |k: &str| status[k].as_u64().unwrap_or(0);
    let rejected: u64 = match &status["datagrams_rejected"] {
        Value::Object(m) => m.values().filter_map(Value::as_u64).sum(),
        _ => 0,
    };
    json!({
        "t": t,
        "queries": n("queries_local") + n("queries_remote"),
        "bytes": n("bytes_read"),
        "rejected": rejected,
    })
}

/// A query as the page sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryForm {
    /// `wc`, `sha256`, `count` or `stat`.
    pub command: String,
    pub paths: Vec<String>,
    /// `here`, `peer`, `all` or `spread`.
    #[serde(default)]
    pub placement: String,
    #[serde(default)]
    pub peers: Vec<String>,
    /// `KEY=VALUE` tags for `--where`.
    #[serde(default, rename = "where")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub group: bool,
    /// `p2p-count -r`.
    #[serde(default)]
    pub recursive: bool,
}

impl QueryForm {
    /// The binary and its arguments, every value after its flag's `=` and
    /// the paths after `--`, so nothing the page sends is read as a flag.
    pub fn argv(&self) -> Result<(&'static str, Vec<String>), String> {
        let bin = match self.command.as_str() {
            "wc" => "p2p-wc",
            "sha256" => "p2p-sha256",
            "count" => "p2p-count",
            "stat" => "p2p-stat",
            other => {
                return Err(format!(
                    "unknown command {other:?}: wc, sha256, count or stat"
                ));
            }
        };
        if self.paths.is_empty() {
            return Err("name at least one path".into());
        }
        if self.paths.len() > MAX_PATHS {
            return Err(format!("at most {MAX_PATHS} paths in one query"));
        }
        if let Some(bad) = self
            .paths
            .iter()
            .find(|p| p.is_empty() || p.as_str() == "-" || p.contains('\0'))
        {
            return Err(format!(
                "{bad:?} is no path here (the dashboard has no standard input to read)"
            ));
        }
        let mut args = Vec::new();
        match self.placement.as_str() {
            "" | "here" => {}
            "peer" => {
                if self.peers.is_empty() {
                    return Err("name the members to ask (--peer)".into());
                }
                args.extend(self.peers.iter().map(|p| format!("--peer={p}")));
            }
            "all" => args.push("--all".into()),
            "spread" => args.push("--spread".into()),
            other => {
                return Err(format!(
                    "unknown placement {other:?}: here, peer, all or spread"
                ));
            }
        }
        args.extend(
            self.tags
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| format!("--where={t}")),
        );
        if self.group {
            args.push("--group".into());
        }
        if self.recursive && bin == "p2p-count" {
            args.push("--recursive".into());
        }
        args.push("--".into());
        args.extend(self.paths.iter().cloned());
        Ok((bin, args))
    }
}

/// Where a command's binary is: beside our own, else on `PATH`.
pub fn binary(name: &str) -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(name))
        .filter(|p| p.is_file());
    beside.unwrap_or_else(|| PathBuf::from(name))
}

/// How often a query that prints nothing checks that its page is still there.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Stderr lines of one command kept for the page; the rest is read and dropped.
const MAX_STDERR_LINES: usize = 1000;

/// Runs `bin` with `args` as the user who started the dashboard, in its
/// directory, on its daemon, and gives `emit` an `out` event per stdout
/// line (the line as the command printed it), an `err` event per stderr
/// line, then `exit` with the status; an event with no name, sent when
/// the command has been silent for [`PROBE_EVERY`], only probes the page.
/// When `emit` says the page has gone,
/// the command is interrupted, as Ctrl-C would (its work on the members
/// stops with it).
pub fn run_command(
    ui: &super::Ui,
    bin: &str,
    args: &[String],
    emit: &mut dyn FnMut(Event) -> bool,
) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(binary(bin));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = &ui.conn.socket {
        cmd.env("P2P_SOCKET", s);
    }
    super::unblock_signals_in_child(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            emit(("err", format!("p2p-ui: cannot run {bin}: {e}")));
            emit(("exit", json!({"status": 2}).to_string()));
            return;
        }
    };
    let pid = child.id();
    ui.children.add(pid);
    let (tx, rx) = sync_channel::<String>(MAX_STDERR_LINES);
    let stderr = child.stderr.take().map(|e| {
        thread::spawn(move || {
            let mut e = std::io::BufReader::new(e);
            let mut line = Vec::new();
            // Read to the end whatever the bytes, so the command never
            // blocks on a full pipe.
            while matches!(e.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches('\n')
                    .to_string();
                // Full: the page has enough; the line is dropped.
                let _ = tx.try_send(text);
                line.clear();
            }
        })
    });
    // Lines come through a thread, so that a command silent for a long
    // while (a huge file) still lets us probe the page and stop it if it
    // has gone.
    let (lines_tx, lines) = sync_channel::<Vec<u8>>(64);
    let reader = child.stdout.take().map(|out| {
        thread::spawn(move || {
            let mut out = std::io::BufReader::new(out);
            loop {
                let mut line = Vec::new();
                match out.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        })
    });
    let mut gone = false;
    loop {
        let ok = match lines.recv_timeout(PROBE_EVERY) {
            Ok(line) => {
                rx.try_iter().all(|e| emit(("err", e)))
                    && emit(("out", String::from_utf8_lossy(&line).into_owned()))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => emit(("", String::new())),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if !ok {
            gone = true;
            // SAFETY: a signal to our own child, not yet reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGINT);
            }
            break;
        }
    }
    // Unblocks the reader if it waits on a full channel.
    drop(lines);
    if let Some(t) = reader {
        let _ = t.join();
    }
    // Waited for without reaping, and taken off the list before it is
    // reaped: once reaped, its PID may be another process's, which a stop
    // of the dashboard must not signal.
    wait_unreaped(pid);
    ui.children.remove(pid);
    let status = child.wait().ok().and_then(|s| s.code());
    if let Some(t) = stderr {
        let _ = t.join();
    }
    if !gone {
        let _ = rx.try_iter().all(|e| emit(("err", e)));
        emit(("exit", json!({"status": status}).to_string()));
    }
}

/// Waits until the child `pid` has exited, leaving it a zombie (WNOWAIT).
fn wait_unreaped(pid: u32) {
    loop {
        // SAFETY: waitid writes only into `info`, which outlives the call.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// The drift matrix of `--all --group` lines: paths × members, each cell
/// the index of the member's answer among the path's distinct answers
/// (0 is the largest group). Members that differ from the largest group
/// somewhere come first, most differences first; so do paths on which
/// members disagree.
pub fn drift(lines: &[Value]) -> Value {
    let mut paths: Vec<(String, Vec<Value>, Vec<Vec<String>>)> = Vec::new();
    for line in lines {
        let Value::Object(m) = line else { continue };
        let Some(path) = m.get("path").and_then(Value::as_str) else {
            continue;
        };
        let peers: Vec<String> = m
            .get("peers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut answer = m.clone();
        answer.remove("peers");
        answer.remove("count");
        match paths.last_mut() {
            Some((p, answers, members)) if p == path => {
                answers.push(Value::Object(answer));
                members.push(peers);
            }
            _ => paths.push((path.to_string(), vec![Value::Object(answer)], vec![peers])),
        }
    }
    let mut odd: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, groups) in &paths {
        for (i, g) in groups.iter().enumerate() {
            for m in g {
                *odd.entry(m.clone()).or_default() += usize::from(i > 0);
            }
        }
    }
    let mut members: Vec<(String, usize)> = odd.into_iter().collect();
    members.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| natural_cmp(&a.0, &b.0)));
    let outliers: Vec<&String> = members.iter().filter(|m| m.1 > 0).map(|m| &m.0).collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.1.len() > 1));
    let rows: Vec<Value> = paths
        .iter()
        .map(|(path, answers, groups)| {
            let cells: Vec<Value> = members
                .iter()
                .map(|(name, _)| {
                    groups
                        .iter()
                        .position(|g| g.contains(name))
                        .map_or(Value::Null, Value::from)
                })
                .collect();
            json!({"path": path, "answers": answers, "cells": cells})
        })
        .collect();
    let names: Vec<&String> = members.iter().map(|m| &m.0).collect();
    json!({"members": names, "outliers": outliers, "paths": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(command: &str, placement: &str) -> QueryForm {
        QueryForm {
            command: command.into(),
            paths: vec!["/etc/hosts".into(), "--all".into()],
            placement: placement.into(),
            peers: vec!["node1".into(), "--spread".into()],
            tags: vec!["role=web".into()],
            group: false,
            recursive: true,
        }
    }

    #[test]
    fn a_form_becomes_the_command_line_a_user_would_type() {
        let (bin, args) = form("sha256", "all").argv().unwrap();
        assert_eq!(bin, "p2p-sha256");
        assert_eq!(
            args,
            ["--all", "--where=role=web", "--", "/etc/hosts", "--all"]
        );
        let (_, args) = form("count", "peer").argv().unwrap();
        assert_eq!(
            args,
            [
                "--peer=node1",
                "--peer=--spread",
                "--where=role=web",
                "--recursive",
                "--",
                "/etc/hosts",
                "--all"
            ]
        );
        let mut g = form("wc", "here");
        g.group = true;
        g.tags.clear();
        assert_eq!(
            g.argv().unwrap().1,
            ["--group", "--", "/etc/hosts", "--all"]
        );
    }

    #[test]
    fn what_no_command_could_run_is_refused() {
        assert!(form("rm", "all").argv().is_err());
        assert!(form("wc", "everywhere").argv().is_err());
        let mut f = form("wc", "here");
        f.paths = vec!["-".into()];
        assert!(f.argv().is_err());
        f.paths.clear();
        assert!(f.argv().is_err());
        let mut f = form("wc", "peer");
        f.peers.clear();
        assert!(f.argv().is_err());
    }

    #[test]
    fn drift_puts_the_odd_member_and_path_first() {
        let lines: Vec<Value> = [
            r#"{"path":"/a","sha256":"1","bytes":1,"count":3,"peers":["node0","node1","node2"]}"#,
            r#"{"path":"/b","sha256":"2","bytes":1,"count":2,"peers":["node0","node2"]}"#,
            r#"{"path":"/b","sha256":"3","bytes":1,"count":1,"peers":["node1"]}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let d = drift(&lines);
        assert_eq!(d["members"], json!(["node1", "node0", "node2"]));
        assert_eq!(d["outliers"], json!(["node1"]));
        assert_eq!(d["paths"][0]["path"], "/b");
        assert_eq!(d["paths"][0]["cells"], json!([1, 0, 0]));
        assert_eq!(d["paths"][0]["answers"][1]["sha256"], "3");
        assert!(d["paths"][0]["answers"][1].get("peers").is_none());
        assert_eq!(d["paths"][1]["cells"], json!([0, 0, 0]));
    }

    #[test]
    fn a_change_keeps_what_only_the_list_says() {
        let old = json!({"name": "a", "state": "alive", "groups": ["ops"]});
        let new = json!({"name": "a", "state": "down"});
        let Value::Object(new) = new else {
            unreachable!()
        };
        let row = merge(Some(old), new);
        assert_eq!(row["state"], "down");
        assert_eq!(row["groups"], json!(["ops"]));
    }

    #[test]
    fn the_charts_get_totals_from_the_counters() {
        let s = json!({"queries_local": 2, "queries_remote": 3, "bytes_read": 10,
            "datagrams_rejected": {"authentication": 4, "replay": 1}});
        assert_eq!(
            point(&s, 7),
            json!({"t": 7, "queries": 5, "bytes": 10, "rejected": 5})
        );
    }
}
