"""
Tests for log replication: anti-entropy catch-up, Plumtree live delivery,
gaps, flow control, bad summaries, blocking and store-and-forward direct
messages, on nodes linked in memory.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.streaming import EntryStreamer
from p2pchat.mesh import wire
from p2pchat.mesh.peer import PeerProtocol
from p2pchat.mesh.wire import MAX_AUTHORS_PER_PAGE as MAX_AUTHORS_PER_SUMMARY_FRAME
from tests.nodes import Network
from tests.replication_conformance import Harness, StreamingOutputConformance
from tests.strategies import IDENTITIES


def converged(*nodes):
    """
    @return: whether all C{nodes} hold the same entries.
    """
    return len({(n.chat.status()["messages"], n.chat.status()["digest"]) for n in nodes}) == 1


class AntiEntropyTests(SynchronousTestCase):
    """
    Summaries on link-up and streaming of what the other side lacks.
    """

    def test_catch_up_on_link(self):
        """
        Entries posted while two nodes were apart are exchanged both ways
        as soon as they link, in chain order, and shown.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        for i in range(300):
            alice.chat.post(f"a{i}")
        for i in range(20):
            bob.chat.post(f"b{i}")
        net.settle()
        net.link(alice, bob)
        net.settle()
        self.assertTrue(converged(alice, bob))
        self.assertEqual(bob.chat.status()["messages"], 320)
        self.assertEqual([m.text for m in bob.view.messages if m.entry.author == alice.node_id],
                         [f"a{i}" for i in range(300)])

    def test_pending_post_delivered_when_peer_appears(self):
        """
        A message posted while the node has no peers is delivered when a
        peer links.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice.chat.post("anyone there?")
        net.settle()
        net.link(bob, alice)
        self.assertEqual(bob.view.texts, ["anyone there?"])

    def test_partition_heals(self):
        """
        Two halves that posted while apart converge to identical logs when
        a link between them comes back.
        """
        net = Network(self)
        a, b, c, d = (net.node(name) for name in "abcd")
        net.link(a, b)
        net.link(c, d)
        for i in range(30):
            a.chat.post(f"left {i}")
            d.chat.post(f"right {i}")
        net.settle()
        self.assertFalse(converged(a, d))
        net.link(b, c)
        net.tick(times=8)
        self.assertTrue(converged(a, b, c, d))
        self.assertEqual(a.chat.status()["messages"], 60)
        self.assertEqual([m.text for m in a.chat.history(60)], [m.text for m in d.chat.history(60)])

    def test_gap_is_fetched(self):
        """
        An entry whose predecessors are missing is stored, and the missing
        ones are fetched from the link it came on.
        """
        net = Network(self)
        bob, dave = net.node("bob"), net.node("dave")
        bob_side, dave_side = net.link(bob, dave)
        author = Identity.generate()
        entries, prev = [], None
        for seq in range(1, 6):
            body = {"name": "a", "text": f"m{seq}"}
            entries.append(create_entry(author, seq, prev, seq, 0, "chat", body))
            prev = entries[-1].id
        bob.store.add_entries(entries)
        bob_side.send_frame(wire.entry_frame(entries[-1].to_wire()))
        net.settle()
        self.assertEqual(dave.chat.status()["messages"], 5)
        self.assertEqual([m.text for m in dave.chat.history(5)], ["m1", "m2", "m3", "m4", "m5"])

    def test_periodic_anti_entropy_repairs_a_loss(self):
        """
        An entry a node never got live (here, injected at its peer only) is
        delivered by the periodic summary exchange.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        net.link(alice, bob)
        stranger = Identity.generate()
        lost = create_entry(stranger, 1, None, 1, 0, "chat", {"name": "s", "text": "lost"})
        alice.store.add_entries([lost])
        self.assertEqual(bob.chat.status()["messages"], 0)
        net.tick(seconds=1.0, times=32)
        self.assertEqual(bob.view.texts, ["lost"])


class PlumtreeTests(SynchronousTestCase):
    """
    Live delivery over a spanning tree of eager links.
    """

    def test_triangle_prunes_to_one_copy(self):
        """
        In a triangle the first post arrives twice at someone and a link is
        pruned; after that each post reaches each node exactly once.
        """
        net = Network(self)
        a, b, c = net.node("a"), net.node("b"), net.node("c")
        net.link(a, b)
        net.link(b, c)
        net.link(c, a)
        a.chat.post("first")
        net.settle()
        before = {n: n.feed.entries_received for n in (b, c)}
        for i in range(10):
            a.chat.post(f"after {i}")
            net.settle()
        for node in (b, c):
            self.assertEqual(node.feed.entries_received - before[node], 10)
        # /status counts the prunes (one a side of the pruned link).
        self.assertEqual(sorted(n.chat.status()["live_prunes"] for n in (a, b, c)), [0, 1, 1])
        net.tick()
        self.assertTrue(converged(a, b, c))

    def test_lazy_link_grafts_missing_entry(self):
        """
        A node told about an entry only by an announcement asks for it
        after the graft time-out, and gets it.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        bob_side, alice_side = net.link(bob, alice)
        stranger = Identity.generate()
        entry = create_entry(stranger, 1, None, 1, 0, "chat", {"name": "s", "text": "psst"})
        alice.store.add_entries([entry])
        bob.relay.replicator.rx_frame(bob_side, {"type": "ihave", "ids": [entry.id]})
        net.tick(seconds=0.5)
        self.assertEqual(bob.view.texts, [])
        net.tick(seconds=0.6)
        net.tick()
        self.assertEqual(bob.view.texts, ["psst"])
        self.assertEqual(bob.chat.status()["live_grafted"], 1)
        # The graft made the link eager again: bob's next entry is pushed
        # on it in full.
        self.assertEqual(bob.relay.replicator.entry_added("cd" * 32, None), [bob_side])


class AnnouncementTests(SynchronousTestCase):
    """
    Announcements cannot make a node work without bound.
    """

    def test_unanswered_ids_are_given_up(self):
        """
        Ids announced but never delivered are grafted at most MAX_GRAFTS
        times, then forgotten; at most a link's share are tracked.
        """
        from p2pchat.log.replication import MAX_GRAFTS, MAX_MISSING_PER_LINK
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        bob_side, _ = net.link(bob, alice)
        bogus = [Identity.generate().node_id for _ in range(500)]
        bob.relay.replicator.rx_frame(bob_side, {"type": "ihave", "ids": bogus})
        self.assertEqual(len(bob.relay.replicator.missing), 500)
        net.tick(seconds=1.1, times=MAX_GRAFTS + 2)
        self.assertEqual(bob.relay.replicator.missing, {})
        for _ in range(MAX_MISSING_PER_LINK // 500 + 2):
            ids = [Identity.generate().node_id for _ in range(500)]
            bob.relay.replicator.rx_frame(bob_side, {"type": "ihave", "ids": ids})
        # One link's share (this changed with the per-link share, #10 item 11).
        self.assertEqual(len(bob.relay.replicator.missing), MAX_MISSING_PER_LINK)

    def test_congested_link_gets_pushes_when_it_drains(self):
        """
        While a link's transport has paused the node's producer (its buffer
        is full), new entries are neither written nor announced on it; the
        producer pushes them whole, live, once the transport drains.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice_side, _ = net.link(alice, bob)
        producer = alice.links.producer(alice_side)
        producer.pauseProducing()
        sent = []
        self.patch(alice_side, "send_frame", sent.append)
        alice.chat.post("while congested")
        net.clock.advance(0)
        alice.relay.replicator.tick()
        self.assertEqual(sent, [])
        producer.resumeProducing()
        net.clock.advance(0)
        self.assertEqual([(f["type"], f.get("sync", False), f["entry"]["body"]["text"])
                          for f in sent], [("entry", False, "while congested")])

    def test_catch_up_is_announced_not_pushed(self):
        """
        Entries a node receives to catch up are not pushed to its other
        links; a neighbour that lacks them pulls them with a summary once
        the graft timeout (1 s) passed and it still lacks them.
        """
        net = Network(self)
        alice, bob, carol = net.node("alice"), net.node("bob"), net.node("carol")
        for i in range(50):
            alice.chat.post(f"old {i}")
        net.settle()
        net.link(bob, carol)
        received_before = carol.feed.entries_received
        net.link(bob, alice)
        self.assertEqual(bob.chat.status()["messages"], 50)
        self.assertEqual(carol.feed.entries_received, received_before)
        net.tick(times=4)
        self.assertFalse(converged(alice, bob, carol))
        net.tick(times=4)
        self.assertTrue(converged(alice, bob, carol))


class FlowControlTests(SynchronousTestCase):
    """
    L{EntryStreamer}: batches, chain order and pausing.
    """

    def test_pauses_and_resumes(self):
        """
        The streamer sends nothing while its transport has paused it, and
        the rest, in chain order, after it resumes.
        """
        identity = Identity.generate()
        entries, prev = [], None
        for seq in range(1, 451):
            entry = create_entry(identity, seq, prev, seq, 0, "chat", {"name": "a", "text": "x"})
            entries.append(entry)
            prev = entry.id

        def entries_after(author, seq, limit):
            return [e for e in entries if e.seq > seq][:limit]

        class Link:
            """
            A link whose transport buffer "fills" at 200 frames: like a
            real transport, it then pauses its producer.
            """

            def __init__(self):
                self.frames = []

            def send_frame(self, frame):
                self.frames.append(frame)
                if len(self.frames) == 200:
                    streamer.pauseProducing()

        link, clock = Link(), Clock()
        streamer = EntryStreamer(link, entries_after, clock, batch_entries=50)
        streamer.request({identity.node_id: 0})
        clock.advance(0)
        self.assertEqual(len(link.frames), 200)
        clock.advance(1)
        self.assertEqual(len(link.frames), 200)
        streamer.resumeProducing()
        clock.advance(0)
        self.assertEqual([f["entry"]["seq"] for f in link.frames], list(range(1, 451)))
        # Done: nothing more is scheduled.
        self.assertEqual(clock.getDelayedCalls(), [])


class BadSummaryTests(SynchronousTestCase):
    """
    Summaries cannot make a node send or store without bound.
    """

    def setUp(self):
        self.net = Network(self)
        self.alice, self.bob = self.net.node("alice"), self.net.node("bob")
        self.alice.chat.post("hello")
        self.net.settle()
        self.alice_side, self.bob_side = self.net.link(self.alice, self.bob)

    def test_claiming_more_sends_nothing(self):
        """
        A peer that claims to hold far more of an author than we do gets
        nothing of that author.
        """
        frames = []
        self.patch(self.alice_side, "send_frame", frames.append)
        claim = {self.alice.node_id: 2**53}
        self.alice.relay.replicator.rx_frame(self.alice_side, wire.summary_page(None, claim, True))
        self.net.settle()
        self.assertEqual(frames, [{"type": "more"}])
        self.assertIn(self.alice_side, self.alice.links)

    def test_oversized_or_malformed_summary_closes_link(self):
        """
        A summary frame with too many authors, or a bad value, closes the
        link with an error.
        """
        too_many = {Identity.generate().node_id: 0
                    for _ in range(MAX_AUTHORS_PER_SUMMARY_FRAME + 1)}
        self.bob_side.send_frame(wire.summary_page(None, too_many, True))
        self.net.settle()
        self.assertEqual(len(self.alice.links), 0)
        net = Network(self)
        carol, dave = net.node("carol"), net.node("dave")
        carol_side, dave_side = net.link(carol, dave)
        dave_side.send_frame({"type": "summary", "vv": {"x": -1}, "final": True})
        net.settle()
        self.assertEqual(len(carol.links), 0)

    def test_bad_ihave_closes_link(self):
        """
        An ihave whose ids are not entry ids closes the link.
        """
        self.bob_side.send_frame({"type": "ihave", "ids": ["not an id"]})
        self.net.settle()
        self.assertEqual(len(self.alice.links), 0)


class BlockingTests(SynchronousTestCase):
    """
    /block: a local filter that never breaks convergence.
    """

    def test_blocked_author_hidden_but_relayed(self):
        """
        A blocked author's messages are not shown, in history or live, on
        the blocking node; they are still stored and relayed, so a node
        behind it converges; unblocking shows them again.
        """
        net = Network(self)
        mallory, bob, carol = net.node("mallory"), net.node("bob"), net.node("carol")
        net.link(mallory, bob)
        net.link(bob, carol)
        bob.chat.block("mallory")
        mallory.chat.post("spam")
        net.settle()
        self.assertEqual(bob.view.texts, [])
        self.assertEqual(bob.chat.history(10), [])
        self.assertEqual(carol.view.texts, ["spam"])
        self.assertTrue(converged(mallory, bob, carol))
        self.assertEqual(bob.chat.blocked(), [mallory.node_id])
        bob.chat.unblock("mallory")
        self.assertEqual([m.text for m in bob.chat.history(10)], ["spam"])

    def test_block_survives_restart(self):
        """
        The block list is kept in the data dir.
        """
        net = Network(self)
        bob, mallory = net.node("bob"), net.node("mallory")
        net.link(bob, mallory)
        bob.chat.block(mallory.node_id)
        bob.store.close()
        again = net.node("bob", directory=bob.directory)
        self.assertEqual(again.chat.blocked(), [mallory.node_id])


class DirectMessageForwardingTests(SynchronousTestCase):
    """
    Direct messages reach recipients who were offline.
    """

    def test_dm_to_offline_node_after_sender_left(self):
        """
        Carol sends alice a DM while alice is away, then leaves; when alice
        comes back and links to bob, she gets it from bob.
        """
        net = Network(self)
        alice, bob, carol = net.node("alice"), net.node("bob"), net.node("carol")
        alice_side, bob_to_alice = net.link(alice, bob)
        carol_side, bob_to_carol = net.link(carol, bob)
        net.unlink(alice_side, bob_to_alice)
        carol.chat.direct(alice.node_id, "while you were out")
        net.settle()
        net.unlink(carol_side, bob_to_carol)
        net.link(bob, alice)
        self.assertEqual(alice.view.texts, ["while you were out"])
        self.assertTrue(alice.view.messages[0].direct)
        self.assertEqual(bob.view.texts, [])


class ConvergenceProperties(SynchronousTestCase):
    """
    Whatever happens to deliveries, linked nodes end with one log.
    """

    @settings(max_examples=25, deadline=None)
    @given(st.lists(
        st.tuples(st.sampled_from(["post", "link", "unlink", "inject"]),
                  st.integers(0, 3), st.integers(0, 3), st.booleans()),
        max_size=25,
    ))
    def test_any_history_converges(self, operations):
        """
        Any sequence of posts, links, unlinks and out-of-order, duplicated
        or dropped deliveries among four nodes ends, within 5 simulated
        seconds of their being linked in a chain, with equal digests
        everywhere.
        """
        net = Network(self)
        nodes = [net.node(f"n{i}") for i in range(4)]
        links = {}
        posted = []
        for action, i, j, flag in operations:
            if action == "post":
                posted.append(nodes[i].chat.post(f"m{len(posted)}"))
            elif action == "link" and i != j and (i, j) not in links:
                links[(i, j)] = net.link(nodes[i], nodes[j])
            elif action == "unlink" and (i, j) in links:
                net.unlink(*links.pop((i, j)))
            elif action == "inject" and posted:
                # Deliver an arbitrary earlier entry again, or out of order.
                entry = posted[(i * 7 + j) % len(posted)]
                nodes[j].feed.rx_entry(entry.to_wire(), None)
                if flag:
                    nodes[j].feed.rx_entry(entry.to_wire(), None)
            if flag:
                net.settle()
        for i in range(3):
            net.link(nodes[i], nodes[i + 1])
        # 5 simulated seconds: far less than the 30 s periodic round, so
        # convergence comes from link-up summaries and catch-up
        # announcements.
        net.tick(times=25)
        self.assertTrue(converged(*nodes))
        self.assertEqual(nodes[0].chat.status()["messages"], len(posted))


class NodeOutputConformanceTests(StreamingOutputConformance, SynchronousTestCase):
    """
    The node's replication output (L{p2pchat.log.relay.Relay})
    keeps the contract the replicator relies on.
    """

    def make_harness(self, entries):
        net = Network(self)
        node = net.node("alice")
        node.store.add_entries(entries)
        transport = StringTransportWithDisconnection()
        link = PeerProtocol(node.links, net.clock, outbound=False, handshake_timeout_s=10.0)
        transport.protocol = link
        link.makeConnection(transport)
        peer = IDENTITIES[0]
        link.dataReceived(wire.encode_frame(wire.hello(peer.node_id, "peer", None)) + b"\n")
        self.assertTrue(link.accepted)

        def pump():
            for _ in range(50):
                net.clock.advance(0)

        def sent():
            lines = transport.value().splitlines()
            transport.clear()
            return [wire.parse_frame(line) for line in lines]

        return Harness(node.relay, link, pump, sent)
