"""
The node's own defences against real C{twistd -n p2pchat} processes: a
console search that would block the reactor, a peer that invents authors,
uncertified authors on a TLS network, and the reactor-turn measurement.

Every wait is on an event (a log line, a console reply, a /status value)
with the generous deadline of L{tests.processes}; nothing asserts how fast.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.admission import NEW_FEED_BURST
from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import MAX_SEARCH_TERMS, Store
from p2pchat.service import STORE_FILE_NAME
from p2pchat.testing.rawpeer import RawPeer, one_entry_authors
from tests.processes import NodeTestMixin, make_ca, tls_args


class NodeDefenceTests(NodeTestMixin, SynchronousTestCase):
    """
    One node against a hostile console line or peer.
    """

    def test_search_bounded(self):
        """
        A /search of 1,150 repeats of a common word is one word (it
        answers with the right count), and a /search of more different
        words than allowed is one clear error line; the console keeps
        working, and /status shows the longest reactor turn just before
        the longest store call.
        """
        alice = self.start("alice")
        console = self.console(alice)
        console.send("the cat sat")
        console.send("a dog ran")
        console.wait_status("messages", "2")
        reply = console.command("/search " + "the " * 1150, rb"matching message\(s\)\r\n")
        self.assertIn("1 matching message(s)", reply)
        words = " ".join(f"w{number}" for number in range(MAX_SEARCH_TERMS + 1))
        reply = console.command(f"/search {words}", rb"error: [^\r]*\r\n")
        self.assertIn(
            f"error: search has {MAX_SEARCH_TERMS + 1} different words; "
            f"at most {MAX_SEARCH_TERMS} are allowed",
            reply,
        )
        text = console.command("/status", rb"longest_store_call_ms: [\d.]+\r\n")
        keys = [line.split(": ", 1)[0] for line in text.splitlines() if ": " in line]
        self.assertEqual(keys[-2:], ["longest_reactor_turn_ms", "longest_store_call_ms"])

    def test_new_author_flood_dropped_beyond_budget(self):
        """
        A raw peer that sends one entry under each of C{NEW_FEED_BURST +
        300} invented ids gets the first C{NEW_FEED_BURST} stored and the
        rest dropped (one log line says so), and its link is still read:
        a ping sent after the flood is answered.
        """
        alice = self.start("alice")
        raw = RawPeer(alice.peer_address, name="sybil")
        count = NEW_FEED_BURST + 300
        raw.socket.sendall(one_entry_authors(count))
        alice.wait_for_log(
            rb"dropping entries of new authors from sybil \([0-9a-f]{8}\).*more than its budget"
        )
        raw.send({"type": "ping"})
        while True:
            frame = raw.read_line()
            self.assertNotEqual(frame, b"", "alice closed the flooder's link")
            if b'"pong"' in frame:
                break
        # Verification runs in threads: wait until the burst is stored.
        console = self.console(alice)
        console.wait_status("messages", lambda stored: int(stored) >= NEW_FEED_BURST)
        self.assertLess(int(console.status()["messages"]), count)


class CertifiedFeedTests(NodeTestMixin, SynchronousTestCase):
    """
    On a TLS network only certified authors' feeds are stored.
    """

    def setUp(self):
        self.network = make_ca(self, "alice", "bob")

    def start_member(self, name, *args, data_dir=None):
        return self.start(name, *tls_args(self.network, name), *args, data_dir=data_dir)

    def test_uncertified_feeds_never_stored(self):
        """
        bob, a member, holds (from before) the feeds of three authors with
        no certificate and offers them when he links to alice: alice logs
        that she does not store them, and holds only the members'
        certificate entries; bob's own posts reach her.
        """
        bob_dir = os.path.abspath(self.mktemp())
        os.makedirs(bob_dir)
        store = Store(os.path.join(bob_dir, STORE_FILE_NAME))
        store.open()
        strangers = [Identity.generate() for _ in range(3)]
        for stranger in strangers:
            store.add_entries([create_entry(stranger, 1, None, 1, 0, "chat",
                                            {"name": "stranger", "text": "let me in"})])
        store.close()
        alice = self.start_member("alice")
        bob = self.start_member("bob", "--peer", alice.peer_address, data_dir=bob_dir)
        bob.wait_for_log(rb"link up with alice")
        alice.wait_for_log(
            rb"not storing entry [0-9a-f]{12} of [0-9a-f]{8} from bob .*"
            rb"no verified certificate"
        )
        alice_console, bob_console = self.console(alice), self.console(bob)
        bob_console.send("a member speaks")
        alice_console.wait_for(rb"<bob> a member speaks")
        status = alice_console.wait_status("messages", "3")  # two certs and bob's line
        self.assertEqual(status["messages"], "3")
        self.assertNotIn(b"let me in", alice_console.received)
        history = alice_console.command("/history 50", rb"a member speaks\r\n")
        self.assertNotIn("let me in", history)
