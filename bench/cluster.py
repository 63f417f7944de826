#!/usr/bin/env python3
"""Cluster benchmark harness: p2pd against Debian's serf on loopback.

Run through bench/cluster.sh, which installs serf, builds p2p, makes the temp
dir and cleans up after us. This file only uses the standard library.

For each N it starts N daemons of one tool on 127.0.0.1, waits until every
member sees all N alive, idles, reads the daemons' VmRSS, and then runs a few
rounds of three trials:

  join   start one more node (joining through a random member) and time until
         every existing member has seen it alive;
  leave  SIGTERM (p2pd) / SIGINT (serf) one member and time until every other
         member has seen it leave;
  fail   SIGKILL one member and time until every other member has seen it
         down (p2p) / failed (serf).

"Seen by all" is the time from the action to the LAST member noticing. Each
member's view is timestamped as its output arrives here: for p2p one
`p2p-peers --watch` per daemon, for serf the agent's own log on stdout. Then
the same for the other tool, so the two never share the two CPUs.

Two more figures are p2p's alone, since serf has no file queries:

  --all      every p2pd exports a directory with one small file; once the N
             members have converged and idled, `p2p-wc --all FILE` is timed as
             a whole process (start to exit), several times, and each run must
             print N successful lines, one per member;
  --spread   a separate cluster of up to 4 members, all exporting one
             directory of a few thousand files (in the page cache, result
             cache off), each tagged so that `--tag` picks the first 1, 2 or 4
             of them; `find DIR -type f | p2p-sha256 --spread --files-from -`
             is timed beside the same without --spread (one daemon) and
             `find | xargs sha256sum` (GNU).
"""

import argparse
import ctypes
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ALIVE, SUSPECT, DOWN, LEFT = "alive", "suspect", "down", "left"

SERF_EVENT = re.compile(r"serf: EventMember(Join|Leave|Failed|Update|Reap): (\S+)")
SERF_SUSPECT = re.compile(r"memberlist: Suspect (\S+) has failed")
SERF_STATE = {"Join": ALIVE, "Leave": LEFT, "Failed": DOWN, "Reap": None, "Update": None}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- process hygiene --------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup():
    # Runs in the child between fork and exec: if this harness dies, even by
    # SIGKILL, the kernel kills the child too, so no daemon outlives a run.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Procs:
    """Every process this harness starts, so all of them can be killed."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.live = []

    def spawn(self, argv, env, **kw):
        # A new session keeps a terminal's Ctrl-C away from the daemons (which
        # would make them all leave at once); we stop them ourselves.
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=_child_setup, **kw)
        self.live.append(p)
        # The shell wrapper's trap reads this file as a last resort.
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def kill_all(self):
        for p in self.live:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in self.live:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"warning: pid {p.pid} did not die")
        self.live = []


# --- reading many pipes at once ---------------------------------------------

class Pump:
    """One selectors loop over every output pipe we read; each complete line
    goes to its callback with the monotonic time it arrived."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()

    def add(self, pipe, on_line):
        os.set_blocking(pipe.fileno(), False)
        self.sel.register(pipe.fileno(), selectors.EVENT_READ, [pipe, on_line, b""])

    def run(self, seconds):
        """Read whatever arrives for `seconds` (at least one pass)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            for key, _ in self.sel.select(max(left, 0)):
                self._read(key)
            if left <= 0:
                return

    def run_until(self, done, timeout, step=0.05):
        """Read until done() is true or `timeout` passes; returns done()."""
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= end:
                return False
            self.run(min(step, end - time.monotonic()))
        return True

    def _read(self, key):
        data = key.data
        try:
            chunk = os.read(key.fd, 65536)
        except BlockingIOError:
            return
        now = time.monotonic()
        if not chunk:  # EOF: the process is gone
            self.sel.unregister(key.fd)
            data[0].close()
            return
        buf = data[2] + chunk
        *lines, data[2] = buf.split(b"\n")
        for line in lines:
            data[1](line.decode("utf-8", "replace"), now)

    def close(self):
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fd)
            key.data[0].close()


# --- the two tools ----------------------------------------------------------

class Node:
    def __init__(self, name, port):
        self.name = name
        self.port = port
        self.proc = None
        self.watcher = None     # p2p only: the `p2p-peers --watch` process
        self.sock = None        # p2p only: its local socket
        self.rpc = None         # serf only: its RPC port
        self.logf = None        # serf only: where its output is copied
        self.view = {}          # member name -> state, as this node reports it
        self.ready = False
        self.gone = False       # left or killed: no longer an observer


class Trial:
    def __init__(self, kind, target, states, observers):
        self.kind = kind
        self.target = target
        self.states = states
        self.observers = {n.name for n in observers}
        self.seen = {}          # observer name -> monotonic time
        self.t0 = None

    def done(self):
        return len(self.seen) == len(self.observers)


class Cluster:
    """What both tools share: nodes, the event stream, trials and counters."""

    tool = "?"
    logname = None              # name of the log directory, if not the tool's

    def __init__(self, h, n, ports):
        self.h = h
        self.ports = iter(ports)
        # Per-node logs, one directory per tool and N (KEEP_TMP=1 keeps them).
        self.logdir = os.path.join(h.tmp, "log", f"{self.logname or self.tool}-{n}")
        os.makedirs(self.logdir, exist_ok=True)
        self.nodes = []
        self.trial = None
        self.killed = set()
        self.left = set()
        self.false_suspect = set()   # members suspected though never killed
        self.false_down = set()      # members declared down though never killed
        # Reports of false alarms (one per observer and event), for the
        # quiet window: (suspected, declared down).
        self.false_reports = [0, 0]
        self.short = None            # why fewer than N were started, if so

    def members(self):
        return [n for n in self.nodes if not n.gone]

    def new_node(self):
        i = len(self.nodes)
        node = Node(f"{self.tool}{i:03}", next(self.ports))
        self.nodes.append(node)
        return node

    def on_event(self, node, name, state, t):
        """A member changed state in `node`'s view."""
        if name == node.name or state is None:
            return
        if state != SUSPECT:
            node.view[name] = state
        if name not in self.killed:
            if state == SUSPECT and name not in self.left:
                self.false_suspect.add(name)
                self.false_reports[0] += 1
            if state == DOWN and name not in self.left:
                self.false_down.add(name)
                self.false_reports[1] += 1
        tr = self.trial
        if (tr and tr.t0 is not None and name == tr.target and state in tr.states
                and node.name in tr.observers and node.name not in tr.seen):
            tr.seen[node.name] = t

    def start(self, n):
        """Start n nodes one at a time, each joining through the first; stop
        early, saying why, when the machine runs short of memory (there is
        no swap to fall back on) or a daemon does not come up."""
        floor = self.h.args.min_free_mib
        a = self.h.args
        budget = a.serf_start_budget if (self.tool == "serf" and a.serf_start_budget) else a.start_budget
        began = time.monotonic()
        for i in range(n):
            if budget and time.monotonic() - began > budget:
                self.short = (f"stopped at {i} of {n} started: the start budget of {budget:.0f} s "
                              f"ran out (load average {loadavg()})")
                log(f"{self.tool}: {self.short}")
                return
            avail = mem_available_mib()
            if avail < floor:
                self.short = (f"stopped at {i} of {n} started: MemAvailable {avail:.0f} MiB, "
                              f"below the {floor} MiB kept free")
                log(f"{self.tool}: {self.short}")
                return
            if i and i % 100 == 0:
                log(f"  {self.tool}: {i} started, MemAvailable {avail:.0f} MiB, "
                    f"load average {loadavg()}")
            node = self.new_node()
            seed = self.nodes[0] if len(self.nodes) > 1 else None
            self.launch(node, seed)
            self.wait_ready(node)
            self.h.pump.run(self.h.args.pace)

    def converge(self, timeout):
        """Wait until every member sees every member alive; True if they do.

        Names the stragglers and what they miss when it takes long, since a
        member that never heard of another is a dissemination failure.
        """
        want = {n.name for n in self.members()}
        pending = list(self.members())
        start = time.monotonic()
        told = False
        while pending:
            missing = {n.name: want - self.alive_seen(n) - {n.name} for n in pending}
            pending = [n for n in pending if missing[n.name]]
            waited = time.monotonic() - start
            if pending and (waited > timeout or (waited > 10 and not told)):
                told = True
                log(f"  {self.tool}: after {waited:.0f} s, " + "; ".join(
                    f"{n.name} misses {' '.join(sorted(missing[n.name])[:5])}"
                    for n in pending[:5]))
            if pending and waited > timeout:
                return False
            if pending:
                self.h.pump.run(0.5)
        return True

    def rss_mib(self):
        """Mean VmRSS of the running daemons, in MiB."""
        vals = []
        for n in self.members():
            try:
                with open(f"/proc/{n.proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            vals.append(int(line.split()[1]) / 1024)
            except OSError:
                log(f"  {self.tool}: {n.name} (pid {n.proc.pid}) is gone")
        return statistics.mean(vals)

    def cpu_seconds(self):
        """CPU time (user + system) used so far by each running daemon."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for n in self.members():
            try:
                with open(f"/proc/{n.proc.pid}/stat") as f:
                    # Fields after the ")" that closes the command name; utime
                    # and stime are the 14th and 15th fields of the whole line.
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[n.name] = (int(rest[11]) + int(rest[12])) / tick
        return out

    def udp_drops(self):
        """Datagrams the kernel dropped at each member's gossip socket (full
        receive buffer: the daemon did not read fast enough)."""
        by_port = {n.port: n.name for n in self.nodes}
        out = {}
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                cols = line.split()
                ip, port = cols[1].split(":")
                name = by_port.get(int(port, 16))
                if ip == "0100007F" and name:
                    out[name] = out.get(name, 0) + int(cols[-1])
        return out

    def run_trial(self, kind, timeout):
        members = self.members()
        # Never the seed (index 0) nor the newest node: keep the victims typical.
        victims = members[1:-1]
        if kind == "join":
            via = self.h.rng.choice(members)
            node = self.new_node()
            tr = Trial(kind, node.name, {ALIVE}, members)
            self.trial = tr
            tr.t0 = time.monotonic()
            self.launch(node, via)
        else:
            node = self.h.rng.choice(victims)
            others = [m for m in members if m is not node]
            tr = Trial(kind, node.name, {LEFT} if kind == "leave" else {DOWN}, others)
            self.trial = tr
            (self.left if kind == "leave" else self.killed).add(node.name)
            node.gone = True
            tr.t0 = time.monotonic()
            if kind == "leave":
                self.leave(node)
            else:
                node.proc.kill()
        self.h.pump.run_until(tr.done, timeout)
        self.trial = None
        if kind == "join":
            self.wait_ready(node)
        missing = sorted(tr.observers - tr.seen.keys())
        if missing:
            log(f"  {self.tool} {kind} {node.name}: {len(missing)} of {len(tr.observers)} "
                f"members had not seen it after {timeout:.0f} s: {' '.join(missing[:10])}")
            return None
        times = sorted((t - tr.t0, name) for name, t in tr.seen.items())
        log(f"  {self.tool} {kind} {node.name}: all {times[-1][0]:.2f} s "
            f"(last {times[-1][1]}), median member "
            f"{statistics.median(t for t, _ in times):.2f} s, first {times[0][0]:.2f} s")
        return times[-1][0]


class P2P(Cluster):
    tool = "p2p"
    ports_per_node = 0          # port 0: each p2pd binds one the kernel picks

    def new_node(self):
        i = len(self.nodes)
        node = Node(f"{self.tool}{i:03}", 0)
        self.nodes.append(node)
        return node

    def launch(self, node, via):
        h = self.h
        sock = os.path.join(h.tmp, "sock", f"{node.name}.sock")
        node.port_file = os.path.join(h.tmp, "sock", f"{node.name}.port")
        argv = [os.path.join(h.args.bin, "p2pd"), "0", "--port-file", node.port_file,
                "--name", node.name, "--socket", sock, "--bind", "127.0.0.1"]
        if via:
            argv += ["--join", f"127.0.0.1:{via.port}"]
        argv = self.wrap(len(self.nodes) - 1) + argv + self.extra_args(len(self.nodes) - 1)
        node.sock = sock
        with open(os.path.join(self.logdir, f"{node.name}.log"), "wb") as logf:
            node.proc = h.procs.spawn(argv, h.env, stdout=subprocess.DEVNULL, stderr=logf)
        self.launched(len(self.nodes) - 1, node)

    def wait_ready(self, node, timeout=30):
        """The daemon is up once it has written its port file (after binding
        every socket, so its socket accepts); then attach a watcher."""
        def accepts():
            if node.proc.poll() is not None:
                raise SystemExit(f"p2pd {node.name} exited with {node.proc.returncode}; "
                                 f"see its log in {self.logdir}")
            try:
                with open(node.port_file) as f:
                    node.port = int(f.read())
                return True
            except (OSError, ValueError):
                return False
        if not self.h.pump.run_until(accepts, timeout, step=0.02):
            raise SystemExit(f"p2pd {node.name} not ready after {timeout} s")
        node.watcher = self.h.procs.spawn(
            [os.path.join(self.h.args.bin, "p2p-peers"), "--watch", "--socket", node.sock],
            self.h.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.h.pump.add(node.watcher.stdout, lambda line, t: self.on_line(node, line, t))
        node.ready = True

    def on_line(self, node, line, t):
        try:
            ev = json.loads(line)
        except ValueError:
            return
        if not ev.get("self"):
            self.on_event(node, ev.get("name"), ev.get("state"), t)

    def alive_seen(self, node):
        out = subprocess.run([os.path.join(self.h.args.bin, "p2p-peers"), "--socket",
                              node.sock, "--state", ALIVE],
                             env=self.h.env, capture_output=True, text=True).stdout
        return {json.loads(l)["name"] for l in out.splitlines() if l.strip()}

    def leave(self, node):
        node.proc.send_signal(signal.SIGTERM)

    def wrap(self, index):
        """Words before p2pd's argv (a slow member's nice or CPU quota)."""
        return []

    def launched(self, index, node):
        pass

    def extra_args(self, index):
        # Every member exports the directory of the --all file, so that the
        # membership figures are those of daemons set up as --all needs them.
        return ["--export", self.h.export_dir]


class P2PSpread(P2P):
    """The --spread cluster: every member exports the data directory, with
    the result cache off (each timed run must hash, not recall), and member i
    carries the tag m{k}=1 for every member count k > i, so `--where m2=1`
    picks exactly the first two. With a slow member (SPREAD_NICE) one more
    is started, slowed, and tagged s{top}=1 with the first top-1, so that
    `--where s4=1` picks three normal members and the slow one."""

    logname = "spread"

    def __init__(self, h, n, ports, counts, slow=None):
        super().__init__(h, n, ports)
        self.counts = counts
        self.slow = slow
        self.size = counts[-1] + (1 if slow else 0)

    def wrap(self, index):
        return list(self.slow["wrap"]) if self.slow and index == self.counts[-1] else []

    def launched(self, index, node):
        # Each daemon runs in a session of its own, and with the kernel's
        # autogroup scheduling (kernel.sched_autogroup_enabled=1) a nice value
        # only weighs among the processes of one session: give the slow
        # member's whole group the nice value too.
        if self.slow and self.slow["hog"] is not None and index == self.counts[-1]:
            try:
                with open(f"/proc/{node.proc.pid}/autogroup", "w") as f:
                    f.write("19")
                self.slow["autogroup"] = True
            except OSError:
                pass

    def extra_args(self, index):
        top = self.counts[-1]
        tags = [a for k in self.counts if index < k for a in ("--tag", f"m{k}=1")]
        if self.slow and (index < top - 1 or index == top):
            tags += ["--tag", f"s{top}=1"]
        return ["--export", self.h.spread_dir, "--cache-entries", "0"] + tags

    def status(self):
        """Each member's (items answered, bytes read) so far (p2p-status)."""
        out = {}
        for n in self.members():
            p = subprocess.run([os.path.join(self.h.args.bin, "p2p-status"), "--socket", n.sock],
                               env=self.h.env, capture_output=True, text=True)
            try:
                st = json.loads(p.stdout)
            except ValueError:
                continue
            out[n.name] = (st.get("items_local", 0) + st.get("items_remote", 0),
                           st.get("bytes_read", 0))
        return out


class Serf(Cluster):
    tool = "serf"
    ports_per_node = 2          # gossip (TCP and UDP) and RPC

    def launch(self, node, via):
        h = self.h
        node.rpc = next(self.ports)
        argv = [h.args.serf, "agent", f"-node={node.name}",
                f"-bind=127.0.0.1:{node.port}", f"-rpc-addr=127.0.0.1:{node.rpc}",
                "-log-level=info"]
        if h.args.serf_encrypt:
            argv.append(f"-encrypt={h.env['P2PD_SECRET']}")
        if via:
            argv.append(f"-join=127.0.0.1:{via.port}")
        node.proc = h.procs.spawn(argv, h.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        node.view[node.name] = ALIVE
        node.logf = open(os.path.join(self.logdir, f"{node.name}.log"), "w")
        h.pump.add(node.proc.stdout, lambda line, t: self.on_line(node, line, t))

    def on_line(self, node, line, t):
        node.logf.write(line + "\n")
        m = SERF_EVENT.search(line)
        if m:
            self.on_event(node, m.group(2), SERF_STATE[m.group(1)], t)
            return
        m = SERF_SUSPECT.search(line)
        if m:
            self.on_event(node, m.group(1), SUSPECT, t)
        elif "Join completed" in line or ("Serf agent running" in line and node is self.nodes[0]):
            node.ready = True

    def wait_ready(self, node, timeout=30):
        def ready():
            if node.proc.poll() is not None and not node.ready:
                raise SystemExit(f"serf {node.name} exited with {node.proc.returncode}; "
                                 f"see its log in {self.logdir}")
            return node.ready
        if not self.h.pump.run_until(ready, timeout, step=0.02):
            raise SystemExit(f"serf {node.name} not ready after {timeout} s")

    def alive_seen(self, node):
        # The agent logs every member it learns of, itself included, from its
        # start: its log is its whole view, no need to ask over RPC.
        return {name for name, st in node.view.items() if st == ALIVE}

    def leave(self, node):
        # serf agent leaves gracefully on SIGINT (skip_leave_on_interrupt is
        # false by default); SIGTERM would just stop it (leave_on_terminate
        # defaults to false).
        node.proc.send_signal(signal.SIGINT)


# --- the run ------------------------------------------------------------------

class Harness:
    def __init__(self, args):
        self.args = args
        self.tmp = args.tmp
        os.makedirs(os.path.join(self.tmp, "sock"), exist_ok=True)
        os.makedirs(os.path.join(self.tmp, "log"), exist_ok=True)
        self.procs = Procs(os.path.join(self.tmp, "pids"))
        self.pump = None
        self.rng = random.Random(args.seed)
        home = os.path.join(self.tmp, "home")
        os.makedirs(home, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_SOCKET")}
        self.env.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                        XDG_RUNTIME_DIR=os.path.join(self.tmp, "run"),
                        RUST_LOG=os.environ.get("RUST_LOG", "info"),
                        P2P_BENCH_RUN=self.tmp)
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        self.env["P2PD_SECRET"] = subprocess.run(
            [os.path.join(args.bin, "p2p-keygen")], env=self.env, check=True,
            capture_output=True, text=True).stdout.strip()
        # The small file every p2pd exports for the --all figure, and where the
        # --spread data goes (written only if that part runs).
        self.export_dir = os.path.join(self.tmp, "export")
        os.makedirs(self.export_dir, exist_ok=True)
        self.all_file = os.path.join(self.export_dir, "small.txt")
        with open(self.all_file, "w") as f:
            f.write("".join(f"line {i} of the file every member is asked about\n"
                            for i in range(20)))
        self.spread_dir = args.spread_root or os.path.join(self.tmp, "spread")
        self.cached = ""
        self.port_range = None  # (low, high), set by main()

    def measure(self, cls, n, ports):
        a = self.args
        self.pump = Pump()
        c = cls(self, n, ports)
        res = {"join": [], "leave": [], "fail": [], "load": [loadavg()]}
        try:
            t = time.monotonic()
            # Anything else busy on the machine (a build, other tests) starves
            # the daemons and shows in the figures: say so.
            log(f"{c.tool} N={n}: load average {loadavg()} before start")
            try:
                c.start(n)
            except SystemExit as e:
                if not isinstance(e.code, str):
                    raise  # SIGTERM or SIGINT (an exit status): stop the run
                # A daemon that did not come up (or exited) ends the start;
                # the figures are those of the members that did.
                c.short = f"stopped at {len(c.members())} of {n}: {e}"
                log(f"{c.tool}: {c.short}")
                c.nodes[-1].gone = True
            res["started"] = len(c.members())
            res["short"] = c.short
            log(f"{c.tool} N={n}: {res['started']} started in {time.monotonic() - t:.1f} s, "
                f"MemAvailable {mem_available_mib():.0f} MiB")
            if not c.members():
                return res
            if not c.converge(a.converge_timeout):
                log(f"warning: {c.tool} N={n}: not every member saw all {n} alive "
                    f"within {a.converge_timeout:.0f} s")
            log(f"{c.tool} N={n}: converged after {time.monotonic() - t:.1f} s")
            log_drops(c, "start", c.udp_drops())
            cpu0, t0 = c.cpu_seconds(), time.monotonic()
            self.pump.run(a.idle)
            cpu1, t1 = c.cpu_seconds(), time.monotonic()
            res["rss"] = c.rss_mib()
            # Percent of one core per daemon while nothing happens but gossip.
            res["cpu"] = 100 * statistics.mean(cpu1[k] - cpu0[k] for k in cpu0 if k in cpu1) / (t1 - t0)
            res["load"].append(loadavg())
            log(f"{c.tool} N={n}: idle RSS {res['rss']:.1f} MiB, "
                f"CPU {res['cpu']:.2f}% of a core per daemon, load average {loadavg()}")
            if isinstance(c, P2P) and a.all_runs:
                # After the idle figures (queries leave sessions and buffers
                # behind) and before the trials (while exactly N are alive).
                m = len(c.members())
                res["all"] = self.all_latency(c, m)
                self.pump.run(a.settle)
                if self.has_group():
                    res["group"] = self.all_latency(c, m, group=True)
                    self.pump.run(a.settle)
            before = c.udp_drops()
            trials = a.serf_trials if (c.tool == "serf" and a.serf_trials is not None) else a.trials
            for _ in range(trials):
                for kind, limit in (("join", a.join_timeout), ("leave", a.leave_timeout),
                                    ("fail", a.fail_timeout)):
                    res[kind].append(c.run_trial(kind, limit))
                    self.pump.run(a.settle)
            log(f"{c.tool} N={n}: load average {loadavg()} after the trials")
            res["load"].append(loadavg())
            after = c.udp_drops()
            log_drops(c, "trials", {k: v - before.get(k, 0) for k, v in after.items()})
            quiet = a.serf_quiet if (c.tool == "serf" and a.serf_quiet is not None) else a.quiet
            if quiet > 0:
                res["quiet"] = self.quiet_window(c, quiet)
                res["load"].append(loadavg())
                if isinstance(c, P2P) and a.all_runs:
                    # Again on the calm cluster: the runs above come soon
                    # after the join storm, whose load lingers at large N.
                    # The members killed in the trials are down, not left:
                    # --all names each as unreachable (and exits 1).
                    m, dead = len(c.members()), set(c.killed)
                    res["all_calm"] = self.all_latency(c, m, dead=dead)
                    self.pump.run(a.settle)
                    if self.has_group():
                        res["group_calm"] = self.all_latency(c, m, group=True, dead=dead)
                    res["load"].append(loadavg())
            res["false_suspect"] = sorted(c.false_suspect)
            res["false_down"] = sorted(c.false_down)
            if c.false_suspect or c.false_down:
                log(f"{c.tool} N={n}: suspected though alive: {res['false_suspect']}; "
                    f"declared down though alive: {res['false_down']}")
        finally:
            self.procs.kill_all()
            self.pump.close()
            for node in c.nodes:
                if node.logf:
                    node.logf.close()
        return res


    def has_group(self):
        """Whether this build's p2p-wc has --group (helper work in flight)."""
        out = subprocess.run([os.path.join(self.args.bin, "p2p-wc"), "--help"],
                             env=self.env, capture_output=True, text=True).stdout
        return "--group" in out

    def quiet_window(self, c, seconds):
        """Nothing but idling for `seconds`: how many live members were
        suspected or declared down meanwhile (false alarms), and by how many
        observers' reports."""
        s0, d0 = set(c.false_suspect), set(c.false_down)
        r0 = list(c.false_reports)
        drops0 = c.udp_drops()
        cpu0, t0 = c.cpu_seconds(), time.monotonic()
        log(f"{c.tool}: quiet window of {seconds:.0f} s, {len(c.members())} members, "
            f"load average {loadavg()}")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump.run(min(60, end - time.monotonic()))
            log(f"  {c.tool} quiet: {max(0, end - time.monotonic()):.0f} s left, false alarms so far: "
                f"{c.false_reports[0] - r0[0]} suspect and {c.false_reports[1] - r0[1]} down "
                f"reports; load average {loadavg()}")
        cpu1, t1 = c.cpu_seconds(), time.monotonic()
        out = {"seconds": seconds, "members": len(c.members()),
               "suspected": sorted(c.false_suspect - s0),
               "down": sorted(c.false_down - d0),
               "suspect_reports": c.false_reports[0] - r0[0],
               "down_reports": c.false_reports[1] - r0[1],
               "cpu": 100 * statistics.mean(cpu1[k] - cpu0[k] for k in cpu0 if k in cpu1)
               / (t1 - t0),
               "drops": sum(c.udp_drops().values()) - sum(drops0.values())}
        log(f"{c.tool}: quiet window: {out['down_reports']} down reports "
            f"({len(out['down'])} members newly), {out['suspect_reports']} suspect reports; "
            f"CPU {out['cpu']:.2f}% of a core per daemon; {out['drops']} UDP drops")
        return out

    def all_latency(self, c, n, group=False, dead=frozenset()):
        """`p2p-wc --all FILE` asked of the first member, timed as a whole
        process from start to exit. The first run also sets up the encrypted
        sessions to every member, so it is reported apart; every run must
        print one successful line per member, or it does not count. With
        `group`, `--all --group`: one line, counting all N members. The
        members in `dead` (killed, still listed down) must each be reported
        unreachable, besides."""
        a = self.args
        argv = [os.path.join(a.bin, "p2p-wc"), "--socket", c.nodes[0].sock, "--all",
                self.all_file] + (["--group"] if group else [])
        # What starting any process from here costs (included in the figures).
        spawn = statistics.median(run_timed(["true"], self.env)[0] for _ in range(20))
        times, bad, first = [], 0, None
        for i in range(a.all_runs + 1):
            t, p = run_timed(argv, self.env)
            problem = check_group(p, n, dead) if group else check_all(p, n, dead)
            if problem:
                bad += 1
                log(f"  p2p --all N={n}, run {i}: {problem}")
            elif i == 0:
                first = t
            else:
                times.append(t)
            # Let the watchers' pipes drain between runs.
            self.pump.run(0.01)
        out = {"runs": a.all_runs + 1, "bad": bad, "first": first,
               "median": statistics.median(times) if times else None,
               "min": min(times) if times else None}
        log(f"p2p N={n}: --all{' --group' if group else ''} {fmt_ms(out['median'])} median, {fmt_ms(out['min'])} min, "
            f"{fmt_ms(first)} first (sessions set up), {bad} of {out['runs']} runs wrong; "
            f"starting a process from the harness costs {fmt_ms(spawn)}")
        return out

    # --- --spread ------------------------------------------------------------

    def spread(self):
        """--spread throughput with 1, 2, 4 ... members of one cluster, beside
        one daemon without --spread and GNU sha256sum / wc under xargs and
        xargs -P, on cached files: the data sets of spread_sets(), then the
        largest member count again with one slow member (slow_block)."""
        a = self.args
        counts = sorted(set(a.spread))
        top = counts[-1]
        slow = None
        if a.spread_nice not in ("", "0"):
            slow = slow_mode(a.spread_nice)
            if top < 2:
                log("spread: a slow member needs at least 2 members in SPREAD; skipped")
                slow = None
            elif slow is None:
                log("spread: neither systemd-run (with systemd running) nor nice and "
                    "taskset: no slow-member figures")
        sets = self.spread_sets()
        self.pump = Pump()
        c = P2PSpread(self, top, [], counts, slow)
        res = {"blocks": [], "slow": None, "load": [loadavg()], "cached": self.cached}
        try:
            log(f"spread: load average {loadavg()} before start")
            c.start(c.size)
            if not c.converge(a.converge_timeout):
                log(f"warning: spread: not every member saw all {c.size} alive")
            for ds in sets:
                for tool in ds["tools"]:
                    res["blocks"] += self.spread_blocks(c, ds, tool, counts)
                    res["load"].append(loadavg())
            if slow:
                res["slow"] = self.slow_block(c, sets, res["blocks"], top, slow)
                res["load"].append(loadavg())
        finally:
            self.procs.kill_all()
            self.pump.close()
        return res

    def spread_sets(self):
        """The data sets, written under --spread-root unless a marker says an
        earlier run wrote them with the same sizes (BENCH_DIR), synced, then
        read once so that every timed run finds them in the page cache."""
        a = self.args
        root = self.spread_dir
        os.makedirs(root, exist_ok=True)
        sets = []
        if a.spread_files:
            sets.append({"name": f"files-{a.spread_files}x{a.spread_kib}k", "kind": "tree",
                         "files": a.spread_files, "size": a.spread_kib * 1024,
                         "tools": ["sha256"], "random": True})
        if a.spread_small:
            sets.append({"name": f"small-{a.spread_small}x{a.spread_small_kib}k", "kind": "tree",
                         "files": a.spread_small, "size": a.spread_small_kib * 1024,
                         "tools": ["sha256", "wc"]})
        if a.spread_big:
            sets.append({"name": f"big-{a.spread_big}x{a.spread_big_mib}m", "kind": "tree",
                         "files": a.spread_big, "size": a.spread_big_mib << 20,
                         "tools": ["sha256", "wc"]})
        if a.spread_huge_gib > 0:
            size = int(a.spread_huge_gib * (1 << 30))
            sets.append({"name": f"huge-{size >> 20}m", "kind": "file", "files": 1,
                         "size": size, "tools": ["wc"]})
        wrote = False
        for ds in sets:
            ds["path"] = os.path.join(root, ds["name"])
            marker = ds["path"] + ".done"
            ds["bytes"] = ds["files"] * ds["size"]
            if os.path.exists(marker):
                log(f"spread: reusing {ds['path']}")
                continue
            t = time.monotonic()
            subprocess.run(["rm", "-rf", ds["path"]], check=True)
            if ds.get("random"):
                make_spread_data(ds["path"], ds["files"], ds["size"] // 1024)
            elif ds["kind"] == "tree":
                make_text_tree(ds["path"], ds["files"], ds["size"])
            else:
                os.makedirs(ds["path"])
                write_text_file(os.path.join(ds["path"], "huge.txt"), ds["size"],
                                b"one huge file\n")
            open(marker, "w").close()
            wrote = True
            log(f"spread: {ds['name']} ({ds['bytes'] / 2**20:.0f} MiB) written in "
                f"{time.monotonic() - t:.1f} s")
        if wrote:
            t = time.monotonic()
            os.sync()
            log(f"spread: synced in {time.monotonic() - t:.1f} s")
        for ds in sets:
            if ds["kind"] == "file":
                ds["file"] = os.path.join(ds["path"], "huge.txt")
        # Read everything once: the timed runs then measure hashing and
        # counting, not the disk (RAM holds all of it several times over).
        t = time.monotonic()
        total = 0
        for ds in sets:
            for dirpath, _, names in os.walk(ds["path"]):
                for n in names:
                    with open(os.path.join(dirpath, n), "rb") as f:
                        while chunk := f.read(1 << 20):
                            total += len(chunk)
        self.cached = f"{total / 2**30:.1f} GiB read once before timing"
        log(f"spread: {self.cached}, in {time.monotonic() - t:.1f} s (page cache)")
        return sets

    def spread_blocks(self, c, ds, tool, counts):
        """The figures of one tool on one data set: a block of rows."""
        a = self.args
        sock = c.nodes[0].sock
        binp = os.path.join(a.bin, f"p2p-{tool}")
        ncpu = os.cpu_count()
        top = counts[-1]
        plural = lambda k: f"{k} member" + ("s" if k > 1 else "")
        gnu = "sha256sum" if tool == "sha256" else "wc -lwmc"
        size = fmt_size(ds["size"])
        if ds["kind"] == "file":
            f = ds["file"]
            cases = [(f"--spread, {plural(k)}", "p2p-wc",
                      f"{binp} --socket {sock} --spread --where m{k}=1 {f}") for k in counts]
            cases += [("one daemon, no --spread", "p2p-wc", f"{binp} --socket {sock} {f}"),
                      ("GNU wc -lwmc", "gnu-wc", f"LC_ALL=C.UTF-8 wc -lwmc {f}")]
            lcases = [(f"-l: --spread, {plural(top)}", "p2p-wcl",
                       f"{binp} --socket {sock} -l --spread --where m{top}=1 {f}"),
                      ("-l: one daemon, no --spread", "p2p-wcl", f"{binp} --socket {sock} -l {f}"),
                      ("-l: GNU wc -l", "gnu-wcl", f"LC_ALL=C.UTF-8 wc -l {f}")]
            split = a.split_above and ds["size"] > a.split_above
            title = (f"p2p-wc, one {size} file" + (" (split in ranges)" if split else ""))
            return [self.spread_block(c, ds, title, cases,
                                      [("one daemon, no --spread", "vs 1 daemon"),
                                       ("GNU wc -lwmc", "vs GNU wc")], tool),
                    self.spread_block(c, ds, title + ", -l", lcases,
                                      [("-l: one daemon, no --spread", "vs 1 daemon"),
                                       ("-l: GNU wc -l", "vs wc -l")], tool)]
        find = f"find {ds['path']} -type f"
        # Batches of files per GNU process, so that -P has work to share.
        batch = max(1, ds["files"] // (8 * ncpu))
        env = "LC_ALL=C.UTF-8 " if tool == "wc" else ""
        kind = "sha" if tool == "sha256" else "wc"
        cases = [(f"--spread, {plural(k)}", f"p2p-{kind}",
                  f"{find} | {binp} --socket {sock} --spread --where m{k}=1 --files-from -")
                 for k in counts]
        cases += [("one daemon, no --spread", f"p2p-{kind}",
                   f"{find} | {binp} --socket {sock} --files-from -"),
                  (f"xargs -P {ncpu} {gnu}", f"gnu-{kind}",
                   f"{find} | {env}xargs -P {ncpu} -n {batch} {gnu}"),
                  (f"xargs {gnu}", f"gnu-{kind}", f"{find} | {env}xargs {gnu}")]
        title = f"p2p-{tool}, {ds['files']} x {size} ({fmt_size(ds['bytes'])})"
        return [self.spread_block(c, ds, title, cases,
                                  [(f"xargs -P {ncpu} {gnu}", f"vs xargs -P {ncpu}"),
                                   (f"xargs {gnu}", "vs xargs")], tool)]

    def spread_block(self, c, ds, title, cases, refs, tool):
        rows = [self.time_spread(c, ds, label, parse, cmd) for label, parse, cmd in cases]
        check_answers(title, rows)
        for r in rows:
            r.pop("answers", None)
        return {"title": title, "rows": rows, "refs": refs, "tool": tool, "ds": ds["name"]}

    def slow_block(self, c, sets, blocks, top, slow):
        """The largest member count again, with one of its members slow (the
        last started, standing in for member top): which member did how much."""
        a = self.args
        sock = c.nodes[0].sock
        hog = None
        if slow["hog"] is not None:
            hog = self.procs.spawn(["taskset", "-c", str(slow["hog"]), "sh", "-c",
                                    "while :; do :; done"], self.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        how = slow["how"] + (" (nice 19 for its autogroup too)" if slow.get("autogroup") else "")
        out = {"how": how, "slow": c.nodes[-1].name, "size": top, "rows": []}
        try:
            for ds in sets:
                for tool in ds["tools"]:
                    binp = os.path.join(a.bin, f"p2p-{tool}")
                    kind = "sha" if tool == "sha256" else "wc"
                    if ds["kind"] == "file":
                        cmd = f"{binp} --socket {sock} --spread --where s{top}=1 {ds['file']}"
                        title = f"p2p-wc, one {fmt_size(ds['size'])} file"
                    else:
                        cmd = (f"find {ds['path']} -type f | {binp} --socket {sock} --spread "
                               f"--where s{top}=1 --files-from -")
                        title = f"p2p-{tool}, {ds['files']} x {fmt_size(ds['size'])}"
                    row = self.time_spread(c, ds, f"slow: {title}", f"p2p-{kind}", cmd)
                    row.pop("answers", None)
                    fast = next((r for b in blocks if b["ds"] == ds["name"] and b["tool"] == tool
                                 for r in b["rows"] if r["label"] == f"--spread, {top} members"),
                                None)
                    row["title"] = title
                    row["fast"] = fast["time"] if fast else None
                    out["rows"].append(row)
        finally:
            if hog:
                hog.kill()
                hog.wait()
        return out

    def time_spread(self, c, ds, label, parse, cmd):
        """One line of the --spread figures: a checked run (its answers kept
        for check_answers), then the timed runs, each into a file. Who did
        what is summed over all of them: paths from the output's peer field,
        items and bytes from the members' counters (p2p-status) before the
        first run and after the last. Besides the wall time it notes how many
        cores were busy: the daemons' CPU time (from /proc) plus the
        pipeline's own (find, the client, GNU's tools), and the whole host's."""
        a = self.args
        argv = ["bash", "-o", "pipefail", "-c", cmd]
        out = os.path.join(self.tmp, "spread-out")
        runs = a.spread_huge_runs if ds["kind"] == "file" else a.spread_runs
        s0 = c.status()
        with open(out, "wb") as f:
            first, p = run_timed(argv, self.env, stdout=f)
        problem, answers, by_peer = check_spread(p, out, ds["files"], parse)
        if problem:
            log(f"  spread: {label}: {problem}")
        times, failed = [], 0
        d0, h0, r0 = c.cpu_seconds(), host_busy(), os.times()
        for _ in range(runs):
            with open(out, "wb") as f:
                t, p = run_timed(argv, self.env, stdout=f)
            if p.returncode:
                failed += 1
                log(f"  spread: {label}: exit {p.returncode}: {p.stderr.decode()[-300:]}")
            times.append(t)
            if parse.startswith("p2p"):
                for k, v in peers_of(out).items():
                    by_peer[k] = by_peer.get(k, 0) + v
        os.unlink(out)
        s1 = c.status()
        if not times:
            times = [first]
        d1, h1, r1 = c.cpu_seconds(), host_busy(), os.times()
        wall = sum(times)
        daemons = sum(d1[k] - d0[k] for k in d0 if k in d1) / wall
        pipeline = (r1.children_user + r1.children_system
                    - r0.children_user - r0.children_system) / wall
        host = (h1[0] - h0[0]) / max(1, h1[1] - h0[1]) * os.cpu_count()
        med = statistics.median(times)
        work = {k: (s1[k][0] - s0[k][0], s1[k][1] - s0[k][1]) for k in s1 if k in s0}
        work = {k: v for k, v in work.items() if v[0] or v[1]}
        if ds["kind"] == "file" and by_peer:
            # One line for the file, whose peer folds every member that
            # counted a range: the counters say who did how much.
            log(f"  spread: {label}: answered by {' '.join(by_peer)}")
            by_peer = {}
        row = {"label": label, "kind": parse.split("-")[0], "time": med, "first": first,
               "mbs": ds["bytes"] / med / 1e6, "fps": ds["files"] / med,
               "ok": not problem and not failed, "answers": answers, "runs": runs + 1,
               "by_peer": by_peer, "work": work, "split": ds["kind"] == "file"}
        log(f"spread: {label}: {med:.2f} s median of {len(times)} (first {first:.2f} s), "
            f"{row['mbs']:.0f} MB/s, {row['fps']:.0f} files/s; cores busy: "
            f"daemons {daemons:.2f}, pipeline {pipeline:.2f}, whole host {host:.2f}"
            + (f"; over {runs + 1} runs: {shares(row)}" if by_peer or work else ""))
        return row


def run_timed(argv, env, stdout=subprocess.PIPE):
    """Run a command to its end; (wall seconds from spawn to exit, result).
    No preexec hook, so Python can spawn with vfork: the overhead stays
    well under a millisecond."""
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                       stderr=subprocess.PIPE)
    return time.perf_counter() - t, p


def check_all(p, n, dead=frozenset()):
    """None if a `--all` run printed one successful line per member, and an
    `unreachable` line for each member in `dead`."""
    if p.returncode not in ((1,) if dead else (0,)):
        return f"exit {p.returncode}: {p.stderr.decode()[-300:].strip()}"
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    down = {l.get("peer") for l in lines
            if l.get("error", {}).get("code") == "unreachable" and l.get("peer") in dead}
    lines = [l for l in lines if l.get("peer") not in down]
    errors = [l for l in lines if "error" in l or "lines" not in l]
    peers = {l.get("peer") for l in lines}
    if len(lines) != n or errors or len(peers) != n or down != set(dead):
        return (f"{len(lines)} lines from {len(peers)} members, {len(errors)} errors, "
                f"{len(down)} of {len(dead)} down members unreachable "
                f"(expected {n} lines){': ' + json.dumps(errors[0]) if errors else ''}")
    return None


def check_group(p, n, dead=frozenset()):
    """None if a `--all --group` run folded all n members into one line (and
    the members in `dead` into one `unreachable` group)."""
    if p.returncode not in ((1,) if dead else (0,)):
        return f"exit {p.returncode}: {p.stderr.decode()[-300:].strip()}"
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    ok = [l for l in lines if "error" not in l]
    down = [l for l in lines if l.get("error", {}).get("code") == "unreachable"]
    counted = sum(l.get("count", 0) for l in ok)
    want = 2 if dead else 1
    if (len(lines) != want or len(ok) != 1 or counted != n
            or (dead and set(down[0].get("peers", [])) != set(dead) if down else bool(dead))):
        return (f"{len(lines)} groups, {counted} members answering "
                f"(expected {n}, and {len(dead)} unreachable)")
    return None


def check_spread(p, out, files, parse):
    """(problem or None, answers, files done per member) of a checked run:
    for p2p exactly one successful line per file, each path once; answers
    maps each path to its digest or counts, for check_answers."""
    if p.returncode:
        return f"exit {p.returncode}: {p.stderr.decode()[-300:].strip()}", None, {}
    with open(out, "rb") as f:
        lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
    answers = {}
    if parse.startswith("gnu"):
        for line in lines:
            if parse == "gnu-sha":
                digest, path = line.split(None, 1)
                answers[path.lstrip("*")] = digest
                continue
            cols = line.split(None, 4 if parse == "gnu-wc" else 1)
            if cols[-1] == "total":
                continue       # xargs runs several wc, each with its total
            if parse == "gnu-wc":  # wc -lwmc prints lines, words, chars, bytes
                answers[cols[4]] = (int(cols[0]), int(cols[1]), int(cols[3]), int(cols[2]))
            else:
                answers[cols[1]] = int(cols[0])
        problem = None if len(answers) == files else f"{len(answers)} answers for {files} files"
        return problem, answers, {}
    by_peer, errors = {}, 0
    for line in lines:
        r = json.loads(line)
        if "error" in r:
            errors += 1
        elif parse == "p2p-sha":
            answers[r["path"]] = r.get("sha256")
        elif parse == "p2p-wc":
            answers[r["path"]] = (r.get("lines"), r.get("words"), r.get("bytes"), r.get("chars"))
        else:
            answers[r["path"]] = r.get("lines")
        by_peer[r.get("peer")] = by_peer.get(r.get("peer"), 0) + 1
    if len(lines) != files or len(answers) != files or errors:
        return (f"{len(lines)} lines, {len(answers)} good paths, {errors} errors "
                f"for {files} files"), answers, by_peer
    return None, answers, by_peer


def check_answers(title, rows):
    """Every row of a block must give the same digests or counts as GNU's
    (the first GNU row; else the first row): a wrong row is marked."""
    ref = next((r for r in rows if r["kind"] == "gnu" and r["answers"]), None) or rows[0]
    for r in rows:
        if r is ref or r["answers"] is None:
            continue
        if r["answers"] != ref["answers"]:
            diff = next((k for k in ref["answers"] if r["answers"].get(k) != ref["answers"][k]),
                        None)
            log(f"  spread: {title}: {r['label']} disagrees with {ref['label']}"
                + (f" on {diff}: {r['answers'].get(diff)} against {ref['answers'][diff]}"
                   if diff else ""))
            r["ok"] = False
            r["wrong"] = True
    if all(r["ok"] for r in rows):
        log(f"spread: {title}: every row gives the same answers as {ref['label']}")


def slow_mode(want):
    """How to make one member slow: a CPU quota when systemd runs (and we
    are root), else nice plus a busy loop on the CPU it is pinned to."""
    last = os.cpu_count() - 1
    quota = (os.geteuid() == 0 and os.path.isdir("/run/systemd/system")
             and shutil.which("systemd-run"))
    if want in ("1", "auto", "quota") and quota:
        return {"how": "systemd-run --scope -p CPUQuota=25%", "hog": None,
                "wrap": ["systemd-run", "--scope", "--quiet", "-p", "CPUQuota=25%"]}
    if want == "quota":
        log("spread: SPREAD_NICE=quota, but no systemd-run with systemd running as root")
        return None
    if shutil.which("nice") and shutil.which("taskset"):
        return {"how": f"nice -n 19, taskset -c {last}, beside a busy loop pinned to CPU {last}",
                "hog": last, "wrap": ["nice", "-n", "19", "taskset", "-c", str(last)]}
    return None


def shares(row):
    """Who did what over a row's runs: each member's share of the bytes
    read (its bytes_read counter), or for a file split in ranges of the items
    (ranges) answered, as byte-range reads are not in bytes_read; then the
    paths it answered (the output's peer field) and its bytes."""
    work, peers = row["work"], row["by_peer"]
    key = 0 if row["split"] else 1
    total = sum(v[key] for v in work.values()) or 1
    out = []
    for n in sorted(set(work) | set(peers)):
        items, nbytes = work.get(n, (0, 0))
        part = f"{n} {100 * work.get(n, (0, 0))[key] / total:.0f}%"
        if row["split"]:
            part += f" ({items} items)"
        else:
            part += f" ({peers.get(n, 0)} files, {fmt_size(nbytes)})"
        out.append(part)
    return ", ".join(out)


def peers_of(path):
    """Lines per member (the JSON peer field) of one run's output."""
    out = {}
    with open(path, "rb") as f:
        for line in f:
            m = re.search(rb'"peer":"([^"]*)"', line)
            if m:
                k = m.group(1).decode()
                out[k] = out.get(k, 0) + 1
    return out


def fmt_size(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.0f} {unit}" if v == int(v) or v >= 100 else f"{v:.1f} {unit}"
    return f"{n} B"


# Text for the wc data sets: words of ASCII and of 2-, 3- and 4-byte UTF-8
# characters, lines of 0 to 13 words, some tabs and leading blanks, so that
# range cuts fall inside words and characters.
TEXT_WORDS = ("file host cluster daemon gossip member query result stream count hash line "
              "word größe naïve façade déjà-vu 日本語 данные κόσμος smørrebrød ½ 𝄞 🦀").split()
_chunk = []


def text_chunk():
    """About 1 MiB of text, whole lines, the same every run."""
    if not _chunk:
        rng = random.Random(5)
        out, n = [], 0
        while n < 1 << 20:
            words = rng.choices(TEXT_WORDS, k=rng.randrange(0, 14))
            line = (" " * rng.randrange(0, 3) + " ".join(words)
                    + ("\t" if rng.random() < 0.1 else "") + "\n").encode()
            out.append(line)
            n += len(line)
        _chunk.append(b"".join(out))
    return _chunk[0]


def pad_lines(n):
    """n bytes of ASCII lines (the last one ends the file with a newline)."""
    full, rest = divmod(n, 80)
    return (b"x" * 79 + b"\n") * full + (b"y" * (rest - 1) + b"\n" if rest else b"")


def write_text_file(path, size, head):
    """A text file of exactly `size` bytes: `head`, the chunk repeated, then
    padding lines. The chunk's length is no power of two, so 64 MiB ranges
    cut it at different places."""
    chunk = text_chunk()
    with open(path, "wb") as f:
        f.write(head)
        left = size - len(head)
        while left >= len(chunk):
            f.write(chunk)
            left -= len(chunk)
        f.write(pad_lines(left))


def make_text_tree(d, files, size):
    """`files` text files of exactly `size` bytes, each different."""
    os.makedirs(d, exist_ok=True)
    chunk = text_chunk()
    for i in range(files):
        path = os.path.join(d, f"t{i:05}.txt")
        head = f"file {i}\n".encode()
        if size * 2 > len(chunk):
            write_text_file(path, size, head)
            continue
        o = chunk.index(b"\n", (i * 7919) % (len(chunk) - size)) + 1
        body = chunk[o:o + size - len(head)]
        data = head + body[:body.rfind(b"\n") + 1]
        with open(path, "wb") as f:
            f.write(data + pad_lines(size - len(data)))


def make_spread_data(d, files, kib):
    """`files` files of `kib` KiB each: one random block, each copy made
    distinct by its first 8 bytes (spread_sets syncs them)."""
    os.makedirs(d, exist_ok=True)
    block = random.Random(3).randbytes(kib * 1024)
    for i in range(files):
        with open(os.path.join(d, f"f{i:05}.bin"), "wb") as f:
            f.write(i.to_bytes(8, "little") + block[8:])


def host_busy():
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]       # idle and iowait
    total = sum(vals[:8])          # guest time is already in user
    return total - idle, total


def fmt_ms(v):
    return "-" if v is None else f"{v * 1000:.1f} ms"


def mem_available_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def log_drops(c, phase, drops):
    total = sum(drops.values())
    worst = sorted(((v, k) for k, v in drops.items() if v), reverse=True)[:5]
    log(f"{c.tool}: UDP datagrams dropped at members' sockets during {phase}: {total}"
        + (" (most at " + ", ".join(f"{k} {v}" for v, k in worst) + ")" if worst else ""))


def free_ports(count, low, high, rng):
    """A run of `count` consecutive loopback ports free for TCP and UDP.

    Drawn below the kernel's ephemeral range, so no outgoing connection of
    ours (or anyone's) grabs one of them between our check and the bind.
    """
    for _ in range(50):
        base = rng.randrange(low, high - count)
        socks = []
        try:
            for port in range(base, base + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit(f"no run of {count} free ports in {low}..{high}")


def fmt_time(v):
    return "timeout" if v is None else f"{v:.2f} s"


def median_or_none(vals):
    # A trial that timed out counts as infinitely slow, so one timeout out of
    # three still gives a figure, two give "timeout".
    m = statistics.median([float("inf") if v is None else v for v in vals])
    return None if m == float("inf") else m


def ratio(p, s):
    if p is None or s is None or p <= 0:
        return "-"
    return f"{s / p:.1f}x"


def row(label, p2p="", ref="", r=""):
    """One line of the table; the same columns as bench/local.sh's, so that
    bench/run.sh prints both as one table."""
    return f"{label:<46} {p2p:>14} {ref:>14} {r:>9}"


def table(n, res):
    """The N block of the report; a tool left out (--tools) shows as "-"."""
    def figure(tool, kind):
        """(number or None, text) of one cell."""
        r = res.get(tool)
        if r is None or kind not in r:
            return None, "-"
        if kind == "rss":
            return r["rss"], f"{r['rss']:.1f} MiB"
        if kind == "cpu":
            return r["cpu"], f"{r['cpu']:.2f} %"
        v = median_or_none(r[kind])
        return v, fmt_time(v)

    rows = [row(f"cluster, N={n}, loopback", "p2p", "serf", "ratio")]
    for label, kind in (("join seen by all", "join"), ("kill -9 seen by all", "fail"),
                        ("leave seen by all", "leave"), ("idle RSS per daemon", "rss"),
                        ("idle CPU per daemon", "cpu")):
        (pv, pc), (sv, sc) = figure("p2p", kind), figure("serf", kind)
        rows.append(row(label, pc, sc, ratio(pv, sv)))
    if any("quiet" in r for r in res.values()):
        def quiet(tool):
            q = res.get(tool, {}).get("quiet")
            if not q:
                return None, "-"
            span = (f"{q['seconds'] / 60:.0f} min" if q["seconds"] >= 60
                    else f"{q['seconds']:.0f} s")
            return len(q["down"]), f"{len(q['down'])} in {span}"
        (pv, pc), (sv, sc) = quiet("p2p"), quiet("serf")
        rows.append(row("false downs while idle", pc, sc, ""))
    for label, key in (("--all", "all"), ("--all --group", "group"),
                       ("--all after the idle window", "all_calm"),
                       ("--all --group after the idle window", "group_calm")):
        al = res.get("p2p", {}).get(key)
        if not al:
            continue
        # serf has no file queries: nothing to compare with.
        rows.append(row(f"{label}, one small file, median of {al['runs'] - 1}",
                        fmt_ms(al["median"]), "no such query", ""))
        rows.append(row("  fastest run", fmt_ms(al["min"])))
        rows.append(row("  first run (also opens the N sessions)", fmt_ms(al["first"])))
        if al["bad"]:
            rows.append(f"  {label}: {al['bad']} of {al['runs']} runs did not print "
                        f"what {n} members should (details on stderr)")
    if "p2p" in res and "all" in res["p2p"] and "group" not in res["p2p"]:
        rows.append("  --all --group: not in this build's p2p-wc")
    for tool, r in res.items():
        if r.get("short"):
            rows.append(f"  {tool}: {r['short']}")
        if r.get("load"):
            rows.append(f"  {tool} load average: " + " -> ".join(r["load"]))
        q = r.get("quiet")
        if q:
            rows.append(f"  {tool} idle {q['seconds']:.0f} s with {q['members']} members: "
                        f"{q['down_reports']} down reports ({len(q['down'])} members), "
                        f"{q['suspect_reports']} suspect reports ({len(q['suspected'])} members), "
                        f"CPU {q['cpu']:.2f}% of a core per daemon, {q['drops']} UDP drops")
    for tool, r in res.items():
        if "join" not in r or "rss" not in r:
            continue
        trials = ", ".join(f"{k} " + "/".join(fmt_time(v).replace(" s", "") for v in r[k])
                           for k in ("join", "fail", "leave"))
        rows.append(f"  {tool} trials (s): {trials}")
        if r["false_suspect"] or r["false_down"]:
            rows.append(f"  {tool} false alarms: {len(r['false_suspect'])} live member(s) "
                        f"suspected, {len(r['false_down'])} declared down")
    return "\n".join(rows)


def spread_table(res):
    """The --spread blocks: each row's time and rate, and ratios against the
    block's references (GNU under xargs -P and xargs; for one file, one
    daemon and GNU wc): reference time / row time, above 1x is faster."""
    out = []
    for b in res["blocks"]:
        rows = b["rows"]
        refs = [(next((r for r in rows if r["label"] == l), None), h) for l, h in b["refs"]]
        tree = "file" not in b["title"]
        out.append(f"{b['title']:<44} {'time':>8} {'MB/s':>7} {'files/s' if tree else '':>8}"
                   + "".join(f" {h:>14}" for _, h in refs))
        for r in rows:
            cells = "".join(" %14s" % ("%.2fx" % (ref["time"] / r["time"]) if ref else "-")
                            for ref, _ in refs)
            fps = "%.0f" % r["fps"] if tree else ""
            out.append(f"  {r['label']:<42} {r['time']:>6.2f} s {r['mbs']:>7.0f} "
                       f"{fps:>8}{cells}" + ("  !" if not r["ok"] else ""))
        spread = [r for r in rows if r["label"].startswith("--spread")]
        if len(spread) > 1:
            out.append(f"  {spread[-1]['label']} vs {spread[0]['label'][len('--spread, '):]}: "
                       f"{spread[0]['time'] / spread[-1]['time']:.2f}x")
        if spread and (spread[-1]["by_peer"] or spread[-1]["work"]):
            out.append(f"  who did what, {spread[-1]['label'][len('--spread, '):]}, "
                       f"{spread[-1]['runs']} runs: " + shares(spread[-1]))
        out.append("")
    s = res.get("slow")
    if s:
        out.append(f"--spread, {s['size']} members, one slow: {s['slow']} under {s['how']}")
        out.append(f"{'':<44} {'time':>8} {'all fast':>8} {'ratio':>7}")
        for r in s["rows"]:
            fast = f"{r['fast']:.2f} s" if r["fast"] else "-"
            ratio = f"{r['fast'] / r['time']:.2f}x" if r["fast"] else "-"
            out.append(f"  {r['title']:<42} {r['time']:>6.2f} s {fast:>8} {ratio:>7}"
                       + ("  !" if not r["ok"] else ""))
            out.append(f"    {shares(r)}")
        out.append("")
    if any(not r["ok"] for b in res["blocks"] for r in b["rows"]) or (
            s and any(not r["ok"] for r in s["rows"])):
        out.append("  ! a run was wrong, failed or disagreed with GNU (details on stderr)")
    out.append(f"  files in the page cache ({res['cached']}); result cache off; "
               "members share the machine's CPUs")
    out.append("  spread load average: " + " -> ".join(res["load"]))
    out.append("  serf has no file queries: --all and --spread are p2p only")
    return "\n".join(out)


def machine_facts(args):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"# {time.strftime('%Y-%m-%d')} {os.uname().sysname} {os.uname().release}, "
            f"nproc {os.cpu_count()}, {cpu}, load {loadavg()}; p2p {args.p2p_version}, serf {args.serf_version}"
            f"{' (-encrypt)' if args.serf_encrypt else ''}; loopback, default timings; "
            f"median of {args.trials} trials, each 'seen by all' = until the last member saw it")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, nargs="*", default=[10, 50, 100])
    ap.add_argument("--bin", required=True, help="directory with p2pd and p2p-peers")
    ap.add_argument("--serf", default="serf")
    ap.add_argument("--tmp", required=True, help="scratch directory (made by the caller)")
    ap.add_argument("--tools", nargs="+", choices=["p2p", "serf"], default=["p2p", "serf"])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--idle", type=float, default=5, help="idle seconds before reading RSS")
    ap.add_argument("--settle", type=float, default=3, help="quiet seconds between trials")
    ap.add_argument("--pace", type=float, default=0.05, help="pause after each node is up")
    ap.add_argument("--converge-timeout", type=float, default=120)
    ap.add_argument("--join-timeout", type=float, default=30)
    ap.add_argument("--leave-timeout", type=float, default=30)
    ap.add_argument("--fail-timeout", type=float, default=90)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--serf-encrypt", action="store_true",
                    help="give serf a key too (p2p always encrypts)")
    ap.add_argument("--all-runs", type=int, default=20,
                    help="timed `p2p-wc --all` runs per N, after one untimed (0: skip)")
    ap.add_argument("--spread", type=int, nargs="*", default=[1, 2, 4],
                    help="member counts for the --spread figures (none: skip)")
    ap.add_argument("--spread-files", type=int, default=4000)
    ap.add_argument("--spread-kib", type=int, default=256, help="size of each file")
    ap.add_argument("--spread-runs", type=int, default=3,
                    help="timed runs per case, after one checked run")
    ap.add_argument("--spread-root", default="",
                    help="where the --spread data sets are (reused when there), "
                         "default the temp dir")
    ap.add_argument("--spread-small", type=int, default=10000,
                    help="small text files for sha256 and wc (0: skip)")
    ap.add_argument("--spread-small-kib", type=int, default=4)
    ap.add_argument("--spread-big", type=int, default=8,
                    help="big text files for sha256 and wc (0: skip)")
    ap.add_argument("--spread-big-mib", type=int, default=256)
    ap.add_argument("--spread-huge-gib", type=float, default=4,
                    help="one file of this size for p2p-wc, split in ranges (0: skip)")
    ap.add_argument("--spread-huge-runs", type=int, default=2,
                    help="timed runs per case on the huge file")
    ap.add_argument("--spread-nice", default="1",
                    help="the largest count again with one slow member: 1 or auto (a "
                         "CPU quota if systemd runs, else nice), quota, nice; 0: skip")
    ap.add_argument("--split-above", type=int, default=256 << 20,
                    help="p2pd's --split-above (its default), for the table's title")
    ap.add_argument("--serf-trials", type=int, default=None,
                    help="rounds of trials for serf, if other than --trials")
    ap.add_argument("--quiet", type=float, default=0,
                    help="seconds of idling after the trials, counting false alarms (0: skip)")
    ap.add_argument("--serf-quiet", type=float, default=None,
                    help="the same for serf, if other than --quiet")
    ap.add_argument("--start-budget", type=float, default=0,
                    help="seconds for starting the N daemons; measure those up when it runs out (0: none)")
    ap.add_argument("--serf-start-budget", type=float, default=0,
                    help="the same for serf, if other")
    ap.add_argument("--min-free-mib", type=int, default=4096,
                    help="stop starting daemons when MemAvailable falls below this")
    ap.add_argument("--no-facts", action="store_true",
                    help="leave out the machine line (bench/run.sh prints its own)")
    ap.add_argument("--p2p-version", default="?")
    ap.add_argument("--serf-version", default="?")
    args = ap.parse_args()

    # Turn SIGTERM into an exception so the finally clauses kill the daemons.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    h = Harness(args)
    low = 10000
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        high = min(int(f.read().split()[0]), 65535)
    h.port_range = (low, high)
    if not args.no_facts:
        print(machine_facts(args), flush=True)
    try:
        for n in args.nodes:
            res = {}
            for cls in (P2P, Serf):
                if cls.tool not in args.tools:
                    continue
                count = (n + args.trials) * cls.ports_per_node
                base = free_ports(count, low, high, h.rng) if count else 0
                try:
                    res[cls.tool] = h.measure(cls, n, range(base, base + count))
                except Exception as e:  # one tool's failure must not lose the other's figures
                    log(f"{cls.tool} N={n}: run failed: {e!r}")
                    res[cls.tool] = {"short": f"run failed: {e!r}"}
            print("\n" + table(n, res), flush=True)
        if "p2p" in args.tools and args.spread:
            print("\n" + spread_table(h.spread()), flush=True)
    finally:
        h.procs.kill_all()


if __name__ == "__main__":
    main()
