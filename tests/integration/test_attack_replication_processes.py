"""
Attacks on replication against real C{twistd -n p2pchat} processes, by a
raw client that speaks the protocol (issue #10 findings 2, 3, 4, 7 and
11).  Every wait is on an event (a frame, a log line, a /status value)
with a generous deadline; nothing asserts on wall-clock speed.
"""

import json
import secrets
import time

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.testing.rawpeer import RawPeer
from tests.processes import NodeTestMixin
from tests.unit.test_replication_attacks import feed

# How long a raw peer keeps sending a trigger, to give a node the chance
# to misbehave (not a speed bound: the assertions count frames).
TRIGGER_S = 4.0


def frames_until_pong(raw):
    """
    Send C{ping} and collect every frame the node sends before its
    C{pong} (the node answers in order, so everything it wrote before
    reading the ping is there).
    """
    raw.send({"type": "ping"})
    frames = []
    while True:
        line = raw.read_line()
        if not line:
            raise AssertionError(f"link closed; last frames {frames[-3:]}")
        frame = json.loads(line)
        if frame["type"] == "pong":
            return frames
        frames.append(frame)




def push(raw, entries):
    for entry in entries:
        raw.send(wire.entry_frame(entry.to_wire()))


class ReplicationAttackTests(NodeTestMixin, SynchronousTestCase):
    """
    One raw peer cannot stop catch-up, bloat a node or make it repeat work.
    """

    def test_summary_of_100500_authors_is_answered(self):
        """
        A summary round of 201 pages naming 100,500 authors (over the old
        100,000-author limit that closed the link) is answered page by
        page with C{more}; the link stays up, and an honest node linked
        afterwards still catches up.
        """
        alice = self.start("alice")
        raw = RawPeer(alice.peer_address, name="many")
        authors = sorted(secrets.token_hex(32) for _ in range(100_500))
        after = None
        for index in range(201):
            vv = {author: 1 for author in authors[index * 500:(index + 1) * 500]}
            raw.send({"type": "summary", "after": after, "vv": vv, "final": index == 200})
            after = authors[(index + 1) * 500 - 1] if index < 200 else None
            while True:
                line = raw.read_line()
                self.assertNotEqual(line, b"", f"link closed at page {index}")
                if json.loads(line)["type"] == "more":
                    break
        console = self.console(alice)
        console.send("still here")
        bob = self.start("bob", "--peer", alice.peer_address)
        self.console(bob).wait_status("messages", "1")
        self.assertNotIn("error", [f["type"] for f in frames_until_pong(raw)])

    def test_sync_ihave_does_not_resend_the_vector(self):
        """
        A peer that never answers the node's summary page and sends
        C{ihave sync} with an unknown id five times a second gets no
        further summary page, instead of the whole version vector once a
        second.
        """
        alice = self.start("alice")
        feeder = RawPeer(alice.peer_address, name="feeder")
        push(feeder, [feed(Identity.generate(), [1])[0] for _ in range(600)])
        self.console(alice).wait_status("messages", "600")
        raw = RawPeer(alice.peer_address, name="nagger")
        unknown = secrets.token_hex(32)
        deadline = time.monotonic() + TRIGGER_S
        while time.monotonic() < deadline:
            raw.send({"type": "ihave", "ids": [unknown], "sync": True})
            time.sleep(0.2)
        summaries = [f for f in frames_until_pong(raw) if f["type"] == "summary"]
        # Only the link-up round's first page (the first slice of the
        # author space not taken by the feeder's link, p2pchat.log.sweep):
        # it was never answered.
        self.assertEqual([f["final"] for f in summaries], [False])

    def test_graft_of_one_entry_500_times_sends_one_copy(self):
        """
        A graft naming one large entry 500 times gets one copy of it.
        """
        alice = self.start("alice")
        feeder = RawPeer(alice.peer_address, name="feeder")
        big = feed(Identity.generate(), [1], text="y" * 4000)[0]
        push(feeder, [big])
        self.console(alice).wait_status("messages", "1")
        raw = RawPeer(alice.peer_address, name="grafter")
        raw.send({"type": "graft", "ids": [big.id] * 500})
        frames = []
        deadline = time.monotonic() + TRIGGER_S
        while time.monotonic() < deadline and not frames:
            time.sleep(0.5)
            frames = [f for f in frames_until_pong(raw) if f["type"] == "entry"]
        time.sleep(1.0)
        frames += [f for f in frames_until_pong(raw) if f["type"] == "entry"]
        self.assertEqual([f["entry"]["sig"] for f in frames], [big.sig])

    def test_permanent_hole_is_not_restreamed(self):
        """
        Two nodes that both hold seq 2..200 of a feed without seq 1 link
        and exchange summaries: neither receives any of those entries
        again.
        """
        alice = self.start("alice")
        bob = self.start("bob")
        entries = feed(Identity.generate(), set(range(2, 201)))
        feeders = []
        for node in (alice, bob):
            feeders.append(RawPeer(node.peer_address, name="holey"))
            push(feeders[-1], entries)
            self.console(node).wait_status("messages", "199")
        bob_console, alice_console = self.console(bob), self.console(alice)
        bob_console.send(f"/connect {alice.peer_address}")
        bob.wait_for_log(rb"link up with alice")
        alice.wait_for_log(rb"link up with bob")
        # Nothing live is posted (a live post may arrive twice when the
        # two nodes also dial each other); the summaries exchanged at link
        # up, and any round after, are what must not re-send the feed.
        time.sleep(2.0)
        for console in (alice_console, bob_console):
            self.assertEqual(console.status()["duplicates_received"], "0")

    def test_bogus_announcements_fill_only_one_share(self):
        """
        10,000 bogus C{ihave} ids from one peer are tracked (and grafted)
        only up to one link's share (2,000), so they cannot crowd out
        honest announcements.
        """
        alice = self.start("alice")
        raw = RawPeer(alice.peer_address, name="announcer")
        bogus = [secrets.token_hex(32) for _ in range(10_000)]
        for i in range(0, len(bogus), 500):
            raw.send({"type": "ihave", "ids": bogus[i:i + 500]})
        grafted = set()
        deadline = time.monotonic() + TRIGGER_S
        while time.monotonic() < deadline:
            time.sleep(0.5)
            for frame in frames_until_pong(raw):
                if frame["type"] == "graft":
                    grafted.update(frame["ids"])
        self.assertEqual(len(grafted), 2000)
