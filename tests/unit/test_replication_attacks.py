"""
Replication under attack, on nodes linked in memory (iosim) with one
clock: many authors, holes, grafts, summary floods and peers that never
read.  Each test fails without the defence its docstring names.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.replication import IReplicationOutput
from p2pchat.log.streaming import MAX_PENDING_GRAFTS, WALK_AUTHORS, EntryStreamer
from p2pchat.mesh import wire
from tests.nodes import Network


def feed(identity, seqs, text="x"):
    """
    @return: C{identity}'s entries with these seqs, chained.
    """
    entries, prev = [], None
    for seq in range(1, max(seqs) + 1):
        entry = create_entry(identity, seq, prev, seq, 0, "chat", {"name": "a", "text": text})
        prev = entry.id
        if seq in seqs:
            entries.append(entry)
    return entries


def one_entry_authors(count):
    """
    @return: one first entry each of C{count} new authors.
    """
    return [feed(Identity.generate(), [1])[0] for _ in range(count)]


class ManyAuthorsTests(SynchronousTestCase):
    """
    Summaries scale with the number of authors (#10 finding 2).
    """

    def test_node_is_a_replication_output(self):
        """
        The relay provides every method the replicator calls.
        """
        self.assertTrue(verifyObject(IReplicationOutput, Network(self).node("alice").relay))

    def test_catch_up_over_several_pages(self):
        """
        1,200 authors (three summary pages) reach a new node in full, and
        a node that lacks them all catches up too.  The last 200 wait for
        the link's new-feed budget (1,000 at once, then 100 a second: see
        L{p2pchat.log.admission}), so three seconds pass.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice.store.add_entries(one_entry_authors(1200))
        net.link(alice, bob)
        net.tick(times=15)
        self.assertEqual(bob.chat.status()["messages"], 1200)
        self.assertEqual(bob.chat.status()["digest"], alice.chat.status()["digest"])

    def test_answer_walks_a_bounded_number_of_authors_per_turn(self):
        """
        An empty final summary page (the asker holds nothing) is answered
        by walking this node's feeds at most WALK_AUTHORS at a time, one
        walk per reactor turn, never the whole index at once (#10 finding
        3: an empty final summary used to cost a full-index scan).
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice.store.add_entries(one_entry_authors(3 * WALK_AUTHORS))
        alice_side, bob_side = net.link(alice, bob)
        walks = []
        streamer = alice.links.producer(alice_side)
        real_walk, real_batch = streamer._feeds_page, streamer._send_batch

        def walk(after, limit, upto=None):
            rows = real_walk(after, limit, upto)
            walks[-1].append(len(rows))
            return rows

        def batch():
            walks.append([])
            real_batch()
        self.patch(streamer, "_feeds_page", walk)
        self.patch(streamer, "_send_batch", batch)
        alice.relay.replicator.rx_frame(alice_side, wire.summary_page(None, {}, True))
        net.settle()
        # One walk of at most WALK_AUTHORS per reactor turn (batch).
        self.assertEqual([w for w in walks if w], [[WALK_AUTHORS]] * 3 + [[0]])
        self.assertEqual(bob.chat.status()["messages"], 3 * WALK_AUTHORS)


class HoleTests(SynchronousTestCase):
    """
    A hole both sides lack costs nothing (#10 finding 7).
    """

    def test_permanent_hole_is_not_restreamed(self):
        """
        Two nodes that both hold seq 2..40 of a feed without seq 1
        exchange no entry at all, at link-up and over 10 anti-entropy
        rounds.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        entries = feed(Identity.generate(), set(range(2, 41)))
        alice.store.add_entries(entries)
        bob.store.add_entries(entries)
        net.link(alice, bob)
        net.tick(seconds=1.0, times=320)
        self.assertEqual((alice.feed.entries_received, bob.feed.entries_received), (0, 0))

    def test_hole_is_filled_in_one_round(self):
        """
        A node that holds seq 1..3 and 9..10 is sent the run 4..9 from its
        hole (9 once more: the summary does not say where the upper run
        starts), never 10 again.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        identity = Identity.generate()
        alice.store.add_entries(feed(identity, set(range(1, 11))))
        bob.store.add_entries(feed(identity, {1, 2, 3, 9, 10}))
        net.link(alice, bob)
        self.assertEqual(bob.chat.status()["messages"], 10)
        self.assertEqual(bob.feed.duplicates_received, 1)


class GraftTests(SynchronousTestCase):
    """
    Grafts go through the producer, de-duplicated (#10 finding 4).
    """

    def test_repeated_graft_sends_one_copy(self):
        """
        A graft naming one large entry 500 times sends it once.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        big = feed(Identity.generate(), [1], text="y" * 4000)[0]
        alice.store.add_entries([big])
        alice_side, _ = net.link(alice, bob)
        frames = []
        self.patch(alice_side, "send_frame", frames.append)
        alice.relay.replicator.rx_frame(alice_side, {"type": "graft", "ids": [big.id] * 500})
        net.settle()
        self.assertEqual([f["entry"]["seq"] for f in frames if f["type"] == "entry"], [1])

    def test_graft_waits_while_congested(self):
        """
        While the link's producer is paused, grafted entries are not
        written; they go when it resumes.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        entry = feed(Identity.generate(), [1])[0]
        alice.store.add_entries([entry])
        alice_side, _ = net.link(alice, bob)
        frames = []
        self.patch(alice_side, "send_frame", frames.append)
        streamer = alice.links.producer(alice_side)
        streamer.pauseProducing()
        alice.relay.replicator.rx_frame(alice_side, {"type": "graft", "ids": [entry.id]})
        net.clock.advance(0)
        self.assertEqual(frames, [])
        streamer.resumeProducing()
        net.clock.advance(0)
        self.assertEqual([f["type"] for f in frames], ["entry"])

    def test_pending_grafts_are_capped(self):
        """
        At most MAX_PENDING_GRAFTS ids wait in a link's producer; more are
        dropped and counted.
        """
        streamer = EntryStreamer(None, None, Clock(), get=lambda i: None)
        streamer.pauseProducing()
        ids = [f"{n:064x}" for n in range(MAX_PENDING_GRAFTS + 10)]
        self.assertEqual(streamer.graft(ids), 10)
        self.assertEqual(streamer.graft(ids[:5]), 0)
        self.assertEqual(streamer.grafts_dropped, 10)


class SyncAnnouncementTests(SynchronousTestCase):
    """
    An C{ihave sync} cannot make a node write its version vector again
    and again to a peer that never answers (#10 finding 3).
    """

    def test_unanswering_peer_gets_one_page(self):
        """
        A peer that never answers summary pages and sends C{ihave sync}
        with an unknown id every second for 30 s gets exactly one page of
        the 1,000-author vector (500 authors), not 30 whole vectors.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice.store.add_entries(one_entry_authors(1000))
        self.patch(bob.relay.replicator, "_rx_summary", lambda *args: None)
        alice_side, bob_side = net.link(alice, bob)
        pages = []
        real_send = alice_side.send_frame

        def send(frame):
            if frame["type"] == "summary":
                pages.append(len(frame["vv"]))
            real_send(frame)
        self.patch(alice_side, "send_frame", send)
        for _ in range(30):
            bob_side.send_frame({"type": "ihave", "ids": ["ab" * 32], "sync": True})
            net.tick(seconds=1.0)
        self.assertEqual(pages, [])
        self.assertIn(alice_side, alice.links)
