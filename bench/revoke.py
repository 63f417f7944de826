#!/usr/bin/env python3
"""Revocation benchmark harness: how long a revocation takes to reach a
certified p2p cluster, on loopback.

Run through bench/revoke.sh, which builds p2p, makes the temp dir and cleans
up after us. Standard library only.

It makes a CA (p2p-ca init) and a node key and certificate per member
(p2p-keygen --node, p2p-ca sign), starts N certified p2pd on 127.0.0.1, the
first alone and every other joining through it, and attaches one
`p2p-peers --watch` per daemon. Once every member sees all N alive and the
cluster has idled, each trial revokes one more member (the newest): `p2p-ca
revoke` makes the list (the serials of this trial and the earlier ones),
`p2p-revoke` hands it to the first daemon only, and the clock runs from just
before `p2p-revoke` starts until every other member that is not revoked has
reported the victim `revoked` on its watch stream. The revoked daemons keep
running, gossiping and probing, as an attacker's would.
"""

import argparse
import json
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
import ctypes

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _child_setup():
    # If this harness dies, even by SIGKILL, its children die too.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Node:
    def __init__(self, i, tmp):
        self.name = f"r{i:03}"
        self.key = os.path.join(tmp, "keys", f"{self.name}.key")
        self.crt = os.path.join(tmp, "keys", f"{self.name}.crt")
        self.sock = os.path.join(tmp, "sock", f"{self.name}.sock")
        self.port_file = os.path.join(tmp, "sock", f"{self.name}.port")
        self.serial = None
        self.port = None
        self.proc = None
        self.watcher = None
        self.buf = b""
        self.states = {}        # what its watch stream said of each member
        self.seen_revoked = {}  # victim -> time this member listed it revoked


class Harness:
    def __init__(self, args):
        self.args = args
        self.tmp = args.tmp
        self.procs = []
        self.sel = selectors.DefaultSelector()
        for d in ("keys", "sock", "logs", "home", "run"):
            os.makedirs(os.path.join(self.tmp, d), mode=0o700, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_SOCKET")}
        self.env.update(HOME=os.path.join(self.tmp, "home"),
                        XDG_CONFIG_HOME=os.path.join(self.tmp, "home", ".config"),
                        XDG_RUNTIME_DIR=os.path.join(self.tmp, "run"),
                        RUST_LOG=os.environ.get("RUST_LOG", "info"),
                        P2P_BENCH_RUN=self.tmp)
        self.env["P2PD_SECRET"] = self.run("p2p-keygen").stdout.strip()
        self.ca = os.path.join(self.tmp, "ca")
        self.run("p2p-ca", "init", self.ca)

    def bin(self, name):
        return os.path.join(self.args.bin, name)

    def run(self, name, *argv):
        r = subprocess.run([self.bin(name), *argv], env=self.env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{name} {' '.join(argv)}: exit {r.returncode}: {r.stderr}")
        return r

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, env=self.env, preexec_fn=_child_setup, **kw)
        self.procs.append(p)
        with open(os.path.join(self.tmp, "pids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def certify(self, node):
        self.run("p2p-keygen", "--node", "-o", node.key)
        signed = self.run("p2p-ca", "sign", "--dir", self.ca, "--name", node.name,
                          node.key[:-len(".key")] + ".pub")
        with open(node.crt, "w") as f:
            f.write(signed.stdout)
        m = re.search(r"serial ([0-9a-f]{16})", signed.stderr)
        if not m:
            raise SystemExit(f"no serial in p2p-ca sign's message: {signed.stderr}")
        node.serial = m.group(1)

    def launch(self, node, via):
        argv = [self.bin("p2pd"), "0", "--port-file", node.port_file, "--name", node.name,
                "--socket", node.sock, "--bind", "127.0.0.1",
                "--ca", os.path.join(self.ca, "ca.pub"), "--cert", node.crt,
                "--node-key", node.key]
        if via is not None:
            argv += ["--join", f"127.0.0.1:{via.port}"]
        with open(os.path.join(self.tmp, "logs", f"{node.name}.log"), "wb") as logf:
            node.proc = self.spawn(argv, stdout=subprocess.DEVNULL, stderr=logf)
        deadline = time.monotonic() + 30
        while True:
            if node.proc.poll() is not None:
                raise SystemExit(f"p2pd {node.name} exited with {node.proc.returncode}; "
                                 f"see {self.tmp}/logs/{node.name}.log")
            try:
                with open(node.port_file) as f:
                    node.port = int(f.read())
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise SystemExit(f"p2pd {node.name} not ready after 30 s")
                time.sleep(0.02)
        node.watcher = self.spawn([self.bin("p2p-peers"), "--watch", "--socket", node.sock],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(node.watcher.stdout.fileno(), False)
        self.sel.register(node.watcher.stdout, selectors.EVENT_READ, node)

    def pump(self, timeout):
        """Reads what the watchers printed within `timeout` seconds."""
        for key, _ in self.sel.select(timeout):
            node = key.data
            t = time.monotonic()
            try:
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(key.fileobj)
                continue
            node.buf += chunk
            *lines, node.buf = node.buf.split(b"\n")
            for line in lines:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                name, state = ev.get("name"), ev.get("state")
                node.states[name] = state
                if state == "revoked" and name not in node.seen_revoked:
                    node.seen_revoked[name] = t

    def until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"not within {timeout} s: {what}")
            self.pump(min(left, 0.2))

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--idle", type=float, default=5.0)
    args = ap.parse_args()
    if args.trials >= args.nodes - 1:
        raise SystemExit("fewer trials than members, please")
    h = Harness(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        nodes = [Node(i, args.tmp) for i in range(args.nodes)]
        started = time.monotonic()
        for n in nodes:
            h.certify(n)
        log(f"{args.nodes} certificates in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        for i, n in enumerate(nodes):
            h.launch(n, None if i == 0 else nodes[0])
            h.pump(0)
        names = {n.name for n in nodes}

        # A watcher reports changes from when it connects: whether a member
        # sees every other alive is asked of it (p2p-peers), once per member
        # until it does.
        waiting = list(nodes)

        def all_alive():
            while waiting:
                out = h.run("p2p-peers", "--socket", waiting[0].sock, "--state", "alive").stdout
                seen = {json.loads(line)["name"] for line in out.splitlines() if line.strip()}
                if seen != names:
                    return False
                waiting.pop(0)
            return True
        h.until(all_alive, 300, f"all {args.nodes} members alive everywhere")
        log(f"{args.nodes} certified members up and converged in "
            f"{time.monotonic() - started:.1f} s; idling {args.idle:.0f} s")
        idle_end = time.monotonic() + args.idle
        while time.monotonic() < idle_end:
            h.pump(idle_end - time.monotonic())
        revoked = []
        figures = []
        list_file = os.path.join(args.tmp, "revoked")
        for trial in range(args.trials):
            victim = nodes[-1 - trial]
            revoked.append(victim)
            # Each list carries the earlier one's serials (--list), as an
            # operator's would, and is dated after it.
            prior = ["--list", list_file] if trial else []
            r = h.run("p2p-ca", "revoke", "--dir", h.ca, *prior, victim.serial)
            with open(list_file, "w") as f:
                f.write(r.stdout)
            others = [n for n in nodes if n not in revoked]
            t0 = time.monotonic()
            h.run("p2p-revoke", "--socket", nodes[0].sock, list_file)
            h.until(lambda: all(victim.name in n.seen_revoked for n in others), 60,
                    f"every member lists {victim.name} revoked")
            seen = sorted(n.seen_revoked[victim.name] - t0 for n in others)
            figures.append(seen[-1])
            log(f"  trial {trial + 1}: {victim.name} revoked, seen by all {len(others)} "
                f"in {seen[-1]:.3f} s (median member {statistics.median(seen):.3f} s, "
                f"first {seen[0]:.3f} s)")
        print(f"| revocation seen by all, N={args.nodes} (certified, loopback) | "
              f"median {statistics.median(figures):.3f} s, max {max(figures):.3f} s "
              f"of {len(figures)} trial(s) |")
    finally:
        h.stop()


if __name__ == "__main__":
    main()
