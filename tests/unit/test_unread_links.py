"""
A peer that never reads cannot make a node buffer without bound.

Large replies go through the link's producer and stop while the
transport is full; but small frames (C{ihave} announcements, C{gossip}
rows, C{pong}, C{more}) were written whatever the transport said, so a
link that stopped reading collected every announcement and gossip row of
the whole network for as long as it stayed open.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log import streaming
from p2pchat.log.entry import MAX_TEXT_BYTES
from p2pchat.log.identity import Identity
from p2pchat.mesh.budgets import MAX_UNREAD_BYTES
from p2pchat.mesh.membership.dissemination import FLUSH_ROWS_PER_TICK
from p2pchat.mesh.membership.rows import ALIVE, sign_row
from p2pchat.mesh.membership.table import ROW_OVERHEAD_BYTES
from p2pchat.mesh.wire import MAX_ADDRESS_LENGTH
from tests.malicious import HIGH_WATER_BYTES, MaliciousPeer, link_attacker
from tests.nodes import Network

UNREAD_LIMIT = 256 * 1024


def stranger_rows(count):
    """
    @return: C{count} well-signed rows of new members (ids are free).
    """
    rows = []
    for i in range(count):
        stranger = Identity.generate()
        name, address = f"s{i}", f"s{i}.example:9090"
        rows.append({
            "id": stranger.node_id, "inc": 1, "state": ALIVE, "hb": 0, "name": name,
            "addr": address,
            "sig": sign_row(stranger.sign, stranger.node_id, 1, name, address, ALIVE),
        })
    return rows


class UnreadLinkTests(SynchronousTestCase):
    """
    A link whose peer stopped reading, while the rest of the network keeps
    talking.
    """

    def setUp(self):
        self.net = Network(self)
        self.alice = self.net.node("alice")

    def attacker(self, reading):
        attacker = MaliciousPeer(reading=reading)
        server, pump = link_attacker(self.alice, self.net.clock, attacker)
        self.net.pumps.append(pump)
        attacker.hello()
        self.net.settle()
        self.assertTrue(server.accepted)
        server.max_unread_bytes = UNREAD_LIMIT
        return attacker, server

    def test_small_frames_to_a_full_link_are_bounded(self):
        """
        Once the transport of a link is full, what the node writes on it
        beyond its producer's streams (announcements, gossip) stays under
        C{max_unread_bytes}: past it, the node closes the link.
        """
        # Posts to a full link wait as push runs in its producer (a run per
        # author, no bytes written); with no room for runs they are
        # announced by id, the small frames this test needs.
        self.patch(streaming, "MAX_PUSH_RUNS", 0)
        silent, server = self.attacker(reading=False)
        talker, _ = self.attacker(reading=True)
        # Fill the silent link: alice's own posts are pushed to it live
        # until its transport pauses the producer.
        while not self.alice.links.producer(server).paused:
            self.alice.chat.post("x" * MAX_TEXT_BYTES)
            self.net.settle()
        # The rest of the network keeps talking: new members to gossip
        # (within the talker's budget of new members; gossip itself now
        # waits for a paused link), and new posts, announced by id on the
        # paused link: over 256 KiB of announcements in all.
        for _ in range(12):
            talker.send_frame({"type": "gossip", "rows": stranger_rows(100)})
            for _ in range(400):
                self.alice.chat.post("hello")
            self.net.tick(seconds=0.2, times=5)
            buffered = server.transport.buffered if not silent.closed else 0
            self.assertLessEqual(
                buffered, HIGH_WATER_BYTES + MAX_TEXT_BYTES * 2 + UNREAD_LIMIT)
        self.assertTrue(silent.closed or server.transport.disconnecting)
        self.assertFalse(talker.closed)

    def test_limit_above_a_full_gossip_flush(self):
        """
        The production limit is well above the largest honest burst of
        small frames: one tick's gossip flush to a link, at most
        FLUSH_ROWS_PER_TICK rows of at most about 730 bytes (64-digit id,
        128-digit sig, a 32-character name, a 300-character address and
        the field names), twice over.
        """
        biggest_row = ROW_OVERHEAD_BYTES + 64 + 32 * 4 + MAX_ADDRESS_LENGTH + 128 + 10
        self.assertLessEqual(2 * FLUSH_ROWS_PER_TICK * biggest_row, MAX_UNREAD_BYTES)

    def test_a_slow_reader_is_not_closed(self):
        """
        A peer that reads, however late, is never closed for it: what it
        reads resets the count.
        """
        slow, server = self.attacker(reading=False)
        for _ in range(40):
            self.alice.chat.post("x" * MAX_TEXT_BYTES)
            self.net.settle()
            self.net.tick(seconds=0.2)
            slow.start_reading()
            self.net.settle()
            slow.stop_reading()
        self.assertFalse(slow.closed)
        self.assertFalse(server.transport.disconnecting)
