"""
A catch-up people can see, with real C{twistd -n p2pchat} processes: a
fresh node catching up from one that holds a few thousand entries shows
the progress line and then one summary line per room on its console,
sends C{READY=1} to systemd only once it holds them all, and C{/converged}
on both nodes then says 2 of 2.
"""

import os
import re
import signal
import socket
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.bench.processes import child_environment, free_ports
from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import Store
from p2pchat.service import STORE_FILE_NAME
from tests.integration.test_ops import datagrams_until
from tests.processes import DEADLINE_S, NodeProcess, Timeout

ENTRIES = 5000


def prefilled(directory, count):
    """
    Write C{count} chat entries of a few authors into the store of a node
    whose data dir is C{directory} (the node is not running).
    """
    os.makedirs(directory)
    store = Store(os.path.join(directory, STORE_FILE_NAME))
    store.open()
    authors = [Identity.generate() for _ in range(4)]
    heads = {author.node_id: (0, None) for author in authors}
    batch = []
    for number in range(count):
        author = authors[number % len(authors)]
        seq, prev = heads[author.node_id]
        entry = create_entry(author, seq + 1, prev, number + 1, 1_700_000_000_000 + number,
                             "chat", {"name": "oldtimer", "text": f"old {number}"})
        heads[author.node_id] = (entry.seq, entry.id)
        batch.append(entry)
    store.add_entries(batch)
    store.close()


class CatchUpProcessTests(SynchronousTestCase):
    def notify_socket(self):
        directory = tempfile.mkdtemp(prefix="p2pchat-ready-")
        self.addCleanup(lambda: (os.path.exists(path) and os.unlink(path), os.rmdir(directory)))
        path = os.path.join(directory, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        return sock, path

    def node(self, name, data_dir, *args, environment=None):
        node = NodeProcess(name, data_dir, "--console", "tcp:0:interface=127.0.0.1", *args,
                           environment=environment)
        self.addCleanup(node.stop, signal.SIGKILL)
        return node

    def converged(self, console, expected):
        deadline = time.monotonic() + DEADLINE_S
        while True:
            line = console.command("/converged", rb"converged: [^\r]*\r\n")
            line = line[line.rindex("converged: "):].strip()
            if line.startswith(expected):
                return line
            if time.monotonic() > deadline:
                raise Timeout(f"/converged stayed {line!r}")
            time.sleep(0.5)

    def test_catch_up_seen(self):
        alice_port, = free_ports(1)
        alice_dir = os.path.abspath(self.mktemp())
        prefilled(alice_dir, ENTRIES)
        sock, path = self.notify_socket()
        # Bob starts first, dialling alice's port before she listens: his
        # console is there for the whole catch-up, and READY waits.
        bob = self.node(
            "bob", os.path.abspath(self.mktemp()), "--port", "0",
            "--peer", f"127.0.0.1:{alice_port}",
            environment=dict(child_environment(), NOTIFY_SOCKET=path),
        ).start()
        bob_console = bob.console()
        self.addCleanup(bob_console.close)
        collected = []
        datagrams_until(sock, r"^STATUS=waiting for a peer", collected)
        alice = self.node("alice", alice_dir, "--port", str(alice_port)).start()
        alice_console = alice.console()
        self.addCleanup(alice_console.close)

        bob_console.wait_for(
            rb"\*\*\* catching up: [\d,]+ of about [\d,]+ entries from 1 peer")
        bob_console.wait_for(
            f"*** {ENTRIES:,} new messages in #lobby \N{EM DASH} /history to read\r\n"
            .encode("utf-8").replace(b"*", rb"\*"))
        shown = re.findall(rb"<oldtimer> old \d+\r\n", bob_console.received)
        self.assertLessEqual(len(shown), 20)

        ready = datagrams_until(sock, r"(^|\n)READY=1(\n|$)", collected)
        self.assertIn(f" {ENTRIES} messages", ready)
        self.assertFalse(any("READY=1" in d for d in collected[:-1]), collected)
        self.assertTrue(all(re.search(r"STATUS=(waiting for a peer|catching up)", d)
                            for d in collected[:-1]), collected)

        digest = alice_console.status()["digest"]
        self.assertEqual(bob_console.wait_status("digest", digest)["messages"], str(ENTRIES))
        for console in (alice_console, bob_console):
            line = self.converged(console, "converged: 2 of 2 members")
            self.assertIn(f"this node's {ENTRIES:,} messages (digest {digest[:8]})", line)
