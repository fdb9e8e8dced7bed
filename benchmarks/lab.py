#!/usr/bin/env python3
"""
The multi-host lab: real p2pchat nodes in separate network namespaces.

Run as root where C{ip netns} works (C{tox -e lab} does)::

    python benchmarks/lab.py [--nodes 4] [--json FILE] [--keep-going]

It builds this network, with addresses only inside its own namespaces::

    p2plab-br:  bridge br0 ── veth va ... vd
                               │         │
    p2plab-a:  eth0 10.77.0.1  ...  p2plab-d: eth0 10.77.0.4

and starts one C{twistd -n p2pchat} in each node namespace (peers on
10.77.0.X:9090, console on the namespace's own 127.0.0.1:9091).  Every
node links to the first; the last also links to the second-to-last.  Then
it checks, in order:

  1. C{links}: every node has its links up;
  2. C{broadcast}: each node posts once; every node holds every post
     (equal C{/status} digests);
  3. C{partition}: the last node's veth is taken down, and both sides post;
     the sides must differ while partitioned (else there is no partition);
  4. C{failure_detection}: every other node shows the cut-off node as
     suspect or dead in C{/peers} within C{--detect-s};
  5. C{convergence}: after the link comes back up, every node holds the
     same entries (equal digests and counts) within C{--converge-s};
  6. C{rejoin}: every other node shows the cut-off node alive again.

It prints each check as PASS or FAIL with what it saw, writes them as
JSON with C{--json}, and exits 0 if all passed, 1 if any failed, and 77
(skipped) with the reason when it cannot run here: not root, no C{ip}, or
network namespaces not permitted.  Namespaces are removed every time
(also those a crashed earlier run left: every name starts with
C{p2plab-}).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    from p2pchat.bench.processes import ConsoleClient, NodeProcess
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from p2pchat.bench.processes import ConsoleClient, NodeProcess

PREFIX = "p2plab-"
BRIDGE_NS = PREFIX + "br"
SUBNET = "10.77.0."
PEER_PORT = 9090
CONSOLE_PORT = 9091
EXIT_SKIP = 77
LETTERS = "abcdefghi"

# Run inside a node namespace: connect to its console and hand the
# connected socket back over the Unix socket on fd 0 (SCM_RIGHTS), so the
# lab talks to every console directly although each lives in another
# network namespace.
_HAND_OVER = (
    "import socket, sys\n"
    "tcp = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)\n"
    "unix = socket.socket(fileno=0)\n"
    "socket.send_fds(unix, [b'c'], [tcp.fileno()])\n"
)


class Skip(Exception):
    """
    The lab cannot run on this machine; C{str(error)} says why.
    """


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """
    Run C{ip ARGS}.

    @raise subprocess.CalledProcessError: if it fails and C{check}.
    """
    return subprocess.run(
        ["ip", *args], check=check, capture_output=True, text=True, timeout=30
    )


def our_namespaces():
    """
    @return: the names of existing namespaces that this lab made.
    """
    listing = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(PREFIX)]


def cleanup() -> None:
    """
    Kill whatever runs in this lab's namespaces (only this lab starts
    processes there) and delete them; deleting a namespace removes its
    veth ends and the bridge.
    """
    for namespace in our_namespaces():
        pids = ip("netns", "pids", namespace, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "del", namespace, check=False)


def preflight() -> None:
    """
    @raise Skip: if this machine cannot run the lab.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise Skip("the lab must run as root (it creates network namespaces)")
    if shutil.which("ip") is None:
        raise Skip("the 'ip' command (iproute2) is not installed")
    probe = PREFIX + "probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        raise Skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        veth = ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
                  check=False)
        if veth.returncode != 0:
            raise Skip(f"cannot create a veth pair: {veth.stderr.strip()}")
    finally:
        ip("netns", "del", probe, check=False)


def build_network(count: int):
    """
    Make the bridge namespace and C{count} node namespaces.

    @return: C{(namespace, address, bridge_port)} for each node.
    """
    ip("netns", "add", BRIDGE_NS)
    ip("-n", BRIDGE_NS, "link", "set", "lo", "up")
    ip("-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge")
    ip("-n", BRIDGE_NS, "link", "set", "br0", "up")
    hosts = []
    for index in range(count):
        namespace = PREFIX + LETTERS[index]
        address = SUBNET + str(index + 1)
        bridge_port = "v" + LETTERS[index]
        ip("netns", "add", namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", BRIDGE_NS, "link", "add", bridge_port, "type", "veth",
           "peer", "name", "eth0", "netns", namespace)
        ip("-n", BRIDGE_NS, "link", "set", bridge_port, "master", "br0")
        ip("-n", BRIDGE_NS, "link", "set", bridge_port, "up")
        ip("-n", namespace, "addr", "add", address + "/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        hosts.append((namespace, address, bridge_port))
    return hosts


def connect_console(namespace: str) -> ConsoleClient:
    """
    @return: a console client of the node in C{namespace}.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", _HAND_OVER,
             str(CONSOLE_PORT)],
            stdin=theirs, check=True, timeout=30,
        )
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    return ConsoleClient(None, sock=socket.socket(fileno=fds[0]))


def peer_states(console: ConsoleClient, name: str):
    """
    @return: the states the C{/peers} lines for C{name} show (several if
        nodes share the name), e.g. C{["alive"]}.
    """
    states = []
    for line in console.reply("/peers").splitlines():
        words = line.split()
        if words and words[0] == name and len(words) >= 4:
            states.append(words[3])
    return states


class Lab:
    """
    One lab run: the nodes, their consoles, and the checks' outcomes.
    """

    def __init__(self, hosts, workdir, arguments):
        self.hosts = hosts
        self.workdir = workdir
        self.arguments = arguments
        self.nodes = []
        self.consoles = []
        self.checks = []

    def log(self, text):
        print(f"lab: {text}", flush=True)

    def check(self, name, ok, detail):
        """
        Record (and print) the outcome of one check.
        """
        self.checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        return ok

    def start_nodes(self):
        first = self.hosts[0][1]
        for index, (namespace, address, _) in enumerate(self.hosts):
            peers = [] if index == 0 else [f"{first}:{PEER_PORT}"]
            if index == len(self.hosts) - 1 and index >= 2:
                peers.append(f"{self.hosts[index - 1][1]}:{PEER_PORT}")
            args = [
                "--port", str(PEER_PORT),
                "--advertise-host", address,
                "--console", f"tcp:{CONSOLE_PORT}:interface=127.0.0.1",
            ]
            for peer in peers:
                args += ["--peer", peer]
            data_dir = os.path.join(self.workdir, namespace)
            node = NodeProcess(
                "node-" + namespace[len(PREFIX):], data_dir, *args,
                wrapper=("ip", "netns", "exec", namespace),
            )
            self.nodes.append(node)
            node.spawn()
            self.log(f"started {node.name} in {namespace} at {address}, peers {peers}")
        for node in self.nodes:
            node.wait_started()
        self.consoles = [connect_console(namespace) for namespace, _, _ in self.hosts]

    def statuses(self):
        return [console.status() for console in self.consoles]

    def wait_until(self, predicate, deadline_s, interval_s=0.25):
        """
        Poll C{predicate()} until it returns a true value or the deadline
        passes; return its last value.
        """
        deadline = time.monotonic() + deadline_s
        while True:
            value = predicate()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval_s)

    def expected_links(self):
        count = len(self.hosts)
        links = [0] * count
        for index in range(1, count):
            links[0] += 1
            links[index] += 1
        if count >= 3:
            links[count - 1] += 1
            links[count - 2] += 1
        return links

    def converged(self, count):
        statuses = self.statuses()
        digests = {status["digest"] for status in statuses}
        messages = [int(status["messages"]) for status in statuses]
        return (len(digests) == 1 and all(m == count for m in messages)), messages, digests

    def run(self):
        arguments = self.arguments
        self.start_nodes()
        # 1. links
        want = self.expected_links()

        def links_up():
            have = [int(status["links"]) for status in self.statuses()]
            return all(h >= w for h, w in zip(have, want)), have

        self.wait_until(lambda: links_up()[0], 30)
        ok, have = links_up()
        if not self.check("links", ok, f"links per node {have}, expected at least {want}"):
            return
        # 2. broadcast
        for index, console in enumerate(self.consoles):
            console.send(f"hello from node {LETTERS[index]} before the partition")
        total = len(self.consoles)
        result = self.wait_until(lambda: self.converged(total)[0], 15)
        _, messages, digests = self.converged(total)
        if not self.check(
            "broadcast", result,
            f"messages per node {messages}, {len(digests)} distinct digest(s); "
            f"expected {total} everywhere and one digest",
        ) and not arguments.keep_going:
            return
        # 3. partition
        cut_ns, _, cut_port = self.hosts[-1]
        cut_name = self.nodes[-1].name
        others = self.consoles[:-1]
        before = [peer_states(console, cut_name) for console in others]
        self.log(f"before the partition the other nodes show {cut_name} as {before}")
        ip("-n", BRIDGE_NS, "link", "set", cut_port, "down")
        partition_started = time.monotonic()
        self.log(f"partition: {cut_port} down, {cut_name} cut off")
        for number in range(3):
            self.consoles[0].send(f"majority side message {number} during the partition")
            self.consoles[-1].send(f"isolated side message {number} during the partition")
        total += 6
        time.sleep(2.0)
        statuses = self.statuses()
        majority = int(statuses[0]["messages"])
        isolated = int(statuses[-1]["messages"])
        self.check(
            "partition", majority < total and isolated < total,
            f"{self.nodes[0].name} holds {majority}, {cut_name} holds {isolated} "
            f"of {total} entries while partitioned (each side must miss the other's)",
        )
        # 4. failure detection
        def detected():
            states = [peer_states(console, cut_name) for console in others]
            return all(s and all(x in ("suspect", "dead") for x in s) for s in states), states

        found = self.wait_until(lambda: detected()[0], arguments.detect_s, 0.5)
        _, states = detected()
        elapsed = time.monotonic() - partition_started
        self.check(
            "failure_detection", found,
            f"{elapsed:.1f} s into the partition the other nodes show {cut_name} as "
            f"{states}; expected suspect or dead within {arguments.detect_s:g} s"
            + ("" if found else " (no failure detection in this build, or it is too slow)"),
        )
        # 5. heal and converge
        link_logs = [len(node.output) for node in self.nodes]
        ip("-n", BRIDGE_NS, "link", "set", cut_port, "up")
        healed = time.monotonic()
        self.log(f"healed: {cut_port} up")
        result = self.wait_until(lambda: self.converged(total)[0], arguments.converge_s, 0.5)
        _, messages, digests = self.converged(total)
        relinked = [
            node.name for node, offset in zip(self.nodes, link_logs)
            if b"link up with" in node.output[offset:]
        ]
        how = (
            f"; links made after healing: {relinked}" if relinked else
            "; no link was made after healing: the links open before the partition "
            "survived it (TCP retransmits), so this partition did not need anti-entropy"
        )
        self.check(
            "convergence", result,
            f"{time.monotonic() - healed:.1f} s after healing: messages per node {messages}, "
            f"{len(digests)} distinct digest(s); expected {total} everywhere and one digest"
            + ("" if result else " (the sides did not exchange what they missed: "
               "no anti-entropy in this build, or it is too slow)") + how,
        )
        # 6. rejoin

        def rejoined():
            states = [peer_states(console, cut_name) for console in others]
            return all(s and "alive" in s for s in states), states

        back = self.wait_until(lambda: rejoined()[0], 15, 0.5)
        _, states = rejoined()
        self.check(
            "rejoin", back,
            f"after healing the other nodes show {cut_name} as {states}; expected alive"
            + ("" if back else f" (before the partition they showed {before})"),
        )

    def stop(self):
        for console in self.consoles:
            console.close()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=4, choices=range(4, len(LETTERS) + 1),
                        metavar="N", help="nodes (4-9, default 4)")
    parser.add_argument("--json", metavar="FILE", help="write the checks as JSON to FILE")
    parser.add_argument("--detect-s", type=float, default=12.0,
                        help="seconds allowed to detect the cut-off node (default 12)")
    parser.add_argument("--converge-s", type=float, default=30.0,
                        help="seconds allowed to converge after healing (default 30)")
    parser.add_argument("--keep-going", action="store_true",
                        help="go on with the partition even if the first broadcast failed")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """
    Run the lab.

    @return: 0 if every check passed, 1 if one failed, L{EXIT_SKIP} if the
        lab cannot run here.
    """
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    report = {"skipped": None, "checks": []}
    try:
        preflight()
    except Skip as e:
        print(f"SKIP: {e}", flush=True)
        report["skipped"] = str(e)
        status = EXIT_SKIP
    else:
        cleanup()
        workdir = tempfile.mkdtemp(prefix="p2pchat-lab-")
        lab = None
        try:
            hosts = build_network(arguments.nodes)
            lab = Lab(hosts, workdir, arguments)
            lab.run()
        except Exception as e:
            if lab is None:
                lab = Lab([], workdir, arguments)
            lab.check("lab", False, f"the lab itself failed: {type(e).__name__}: {e}")
        finally:
            if lab is not None and lab.nodes:
                lab.stop()
                for node in lab.nodes:
                    report.setdefault("logs", {})[node.name] = node.output.decode(
                        errors="replace")[-4000:]
            cleanup()
            shutil.rmtree(workdir, ignore_errors=True)
        report["checks"] = lab.checks
        failed = [c["check"] for c in lab.checks if not c["ok"]]
        passed = len(lab.checks) - len(failed)
        print(f"lab: {passed} passed, {len(failed)} failed"
              + (f" ({', '.join(failed)})" if failed else ""), flush=True)
        status = 1 if failed or not lab.checks else 0
        left = our_namespaces()
        if left:
            print(f"lab: WARNING: namespaces left behind: {left}", flush=True)
    if arguments.json:
        with open(arguments.json, "w") as output:
            json.dump(report, output, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())
