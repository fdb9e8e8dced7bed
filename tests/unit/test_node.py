"""
Tests for L{p2pchat.chat.node.ChatNode}: authoring, ingesting, relaying and
showing entries between nodes linked in memory.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.chat import AmbiguousPeer, UnknownPeer
from p2pchat.chat import names as names_module
from p2pchat.log.entry import MAX_INTEGER, InvalidEntry, UnverifiedEntry, create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store.core import StoreError
from p2pchat.mesh import links as links_module
from p2pchat.mesh import wire
from tests.nodes import Network


class PostTests(SynchronousTestCase):
    """
    A node's own posts.
    """

    def test_post_is_stored_then_shown(self):
        """
        A post is shown on the node's consoles only once it is committed,
        and the store then holds it.
        """
        net = Network(self)
        alice = net.node("alice")
        alice.chat.post("hello")
        self.assertEqual(alice.view.texts, [])
        net.clock.advance(0)
        self.assertEqual(alice.view.texts, ["hello"])
        self.assertEqual(alice.chat.status()["messages"], 1)

    def test_longest_reactor_turn_in_status(self):
        """
        A started node measures how late its timers run: a 0.4 s stall of
        its clock shows as C{longest_reactor_turn_ms} in C{/status}, just
        before C{longest_store_call_ms} (consoles wait for that line as the
        end of the status), and in the metrics source; stopping the node
        stops the measuring.
        """
        net = Network(self)
        alice = net.node("alice")
        alice.start()
        net.clock.advance(0.45)
        status = alice.chat.status()
        keys = list(status)
        self.assertEqual(keys[-2:], ["longest_reactor_turn_ms", "longest_store_call_ms"])
        self.assertEqual(status["longest_reactor_turn_ms"], 400.0)
        self.assertAlmostEqual(alice.metrics_status()["longest_reactor_turn_s"], 0.4)
        alice.stop()
        self.assertFalse(alice.stalls.running)

    def test_posts_chain(self):
        """
        Successive posts carry seq 1, 2, 3 and each names the previous one
        as prev, with increasing Lamport times.
        """
        net = Network(self)
        alice = net.node("alice")
        entries = [alice.chat.post(text) for text in "abc"]
        net.clock.advance(0)
        self.assertEqual([e.seq for e in entries], [1, 2, 3])
        self.assertEqual([e.prev for e in entries], [None, entries[0].id, entries[1].id])
        self.assertEqual([e.lamport for e in entries], [1, 2, 3])

    def test_feed_continues_after_restart(self):
        """
        A node reopened on the same data dir continues its feed where it
        left off, and keeps its history and id.
        """
        net = Network(self)
        alice = net.node("alice")
        first = alice.chat.post("one")
        net.clock.advance(0)
        alice.store.close()
        again = net.node("alice", directory=alice.directory)
        second = again.chat.post("two")
        net.clock.advance(0)
        self.assertEqual(again.node_id, alice.node_id)
        self.assertEqual((second.seq, second.prev), (2, first.id))
        self.assertEqual([m.text for m in again.chat.history(10)], ["one", "two"])

    def test_reads_see_own_writes(self):
        """
        /status, history and search right after a post, in the same reactor
        turn, already include it.
        """
        net = Network(self)
        alice = net.node("alice")
        alice.chat.post("just now")
        self.assertEqual(alice.chat.status()["messages"], 1)
        alice.chat.post("and again")
        self.assertEqual([m.text for m in alice.chat.history(5)], ["just now", "and again"])
        alice.chat.post("third time")
        self.assertEqual([m.text for m in alice.chat.search("third")], ["third time"])

    def test_store_failure_loses_nothing_acknowledged(self):
        """
        When a commit fails (say, the disk is full) the batch is neither
        shown nor relayed, consoles get an alert, and the next post chains
        onto the last entry really stored, so the feed has no hole.
        """
        net = Network(self)
        alice = net.node("alice")
        kept = alice.chat.post("kept")
        net.clock.advance(0)
        real_add = alice.store.add_entries
        disk_full = [True]

        def add_entries(entries, durable=True):
            if disk_full:
                raise StoreError("database or disk is full")
            return real_add(entries, durable)

        self.patch(alice.store, "add_entries", add_entries)
        alice.chat.post("lost")
        net.clock.advance(0)
        self.assertEqual(alice.view.texts, ["kept"])
        self.assertEqual(len(alice.view.alerts), 1)
        self.assertIn("disk is full", alice.view.alerts[0])
        disk_full.clear()
        after = alice.chat.post("after")
        net.clock.advance(0)
        self.assertEqual((after.seq, after.prev), (2, kept.id))
        self.assertEqual([m.text for m in alice.chat.history(5)], ["kept", "after"])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_empty_post_refused(self):
        """
        An empty message raises L{InvalidEntry} and stores nothing.
        """
        net = Network(self)
        alice = net.node("alice")
        self.assertRaises(InvalidEntry, alice.chat.post, "")
        net.clock.advance(0)
        self.assertEqual(alice.chat.status()["messages"], 0)

    def test_many_posts_one_batch(self):
        """
        Many posts in one reactor turn are committed in as few
        transactions as the batch limit allows, and all are shown in order.
        """
        net = Network(self)
        alice = net.node("alice")
        texts = [f"m{i}" for i in range(2500)]
        for text in texts:
            alice.chat.post(text)
        net.clock.advance(0)
        self.assertEqual(alice.view.texts, texts)
        self.assertEqual(alice.chat.status()["messages"], 2500)


class RelayTests(SynchronousTestCase):
    """
    Entries travelling between linked nodes.
    """

    def test_link_up_records_peer(self):
        """
        After the handshake each node knows the other's name, id and
        advertised address, and counts it as an alive peer.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        net.link(alice, bob)
        self.assertEqual(alice.chat.name_of(bob.node_id), "bob")
        self.assertEqual(alice.membership.member(bob.node_id).address, "bob.example:9090")
        self.assertEqual(bob.membership.member(alice.node_id).state, "alive")
        self.assertEqual(bob.links.link_to(alice.node_id).remote_id, alice.node_id)
        self.assertEqual(alice.chat.status()["peers"], 1)

    def test_peer_records_bounded(self):
        """
        Authors are free to invent, so the in-memory table of author names
        keeps at most MAX_NAMED_AUTHORS: the least recently heard goes
        first.  A linked peer's name still comes from membership.
        """
        self.patch(names_module, "MAX_NAMED_AUTHORS", 3)
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        net.link(alice, bob)
        strangers = [Identity.generate() for _ in range(4)]
        for number, stranger in enumerate(strangers):
            body = {"name": f"s{number}", "text": "x"}
            entry = create_entry(stranger, 1, None, 1, 0, "chat", body)
            alice.feed.rx_entry(entry.to_wire(), None)
            alice.flush()
        self.assertEqual(
            list(alice.chat.names.authors), [stranger.node_id for stranger in strangers[1:]]
        )
        self.assertEqual(alice.chat.name_of(bob.node_id), "bob")

    def test_broadcast_reaches_peer(self):
        """
        A post on one node is stored and shown on a linked node.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        net.link(alice, bob)
        alice.chat.post("hi bob")
        net.settle()
        self.assertEqual(bob.view.texts, ["hi bob"])
        self.assertEqual(bob.chat.status()["digest"], alice.chat.status()["digest"])

    def test_relay_along_chain(self):
        """
        In a chain alice - bob - carol, alice's post reaches carol through
        bob, exactly once, and carol's reply reaches alice.
        """
        net = Network(self)
        alice, bob, carol = net.node("alice"), net.node("bob"), net.node("carol")
        net.link(alice, bob)
        net.link(bob, carol)
        alice.chat.post("to everyone")
        net.settle()
        carol.chat.post("got it")
        net.settle()
        for node in (alice, bob, carol):
            self.assertEqual(node.view.texts, ["to everyone", "got it"])
        self.assertEqual(len({n.chat.status()["digest"] for n in (alice, bob, carol)}), 1)

    def test_cycle_delivers_once(self):
        """
        In a triangle, where every post arrives twice, each node shows it
        once and stores it once.
        """
        net = Network(self)
        a, b, c = net.node("a"), net.node("b"), net.node("c")
        net.link(a, b)
        net.link(b, c)
        net.link(c, a)
        a.chat.post("round")
        net.settle()
        for node in (a, b, c):
            self.assertEqual(node.view.texts, ["round"])
            self.assertEqual(node.chat.status()["messages"], 1)

    def test_reply_ordered_after_question(self):
        """
        A reply's Lamport time is greater than the message it answers, so
        every node's history shows the question first.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        net.link(alice, bob)
        question = alice.chat.post("question?")
        net.settle()
        answer = bob.chat.post("answer")
        net.settle()
        self.assertGreater(answer.lamport, question.lamport)
        for node in (alice, bob):
            self.assertEqual([m.text for m in node.chat.history(5)], ["question?", "answer"])

    def test_forged_entry_rejected(self):
        """
        An entry whose signature does not match is answered with an error
        frame, never stored, shown or relayed.
        """
        net = Network(self)
        alice, bob, carol = net.node("alice"), net.node("bob"), net.node("carol")
        bob_side, alice_side = net.link(bob, alice)
        net.link(bob, carol)
        mallory = Identity.generate()
        forged = create_entry(mallory, 1, None, 1, 0, "chat", {"name": "m", "text": "x"})
        wire_entry = dict(forged.to_wire(), body={"name": "m", "text": "tampered"})
        alice_side.send_frame(wire.entry_frame(wire_entry))
        net.settle()
        for node in (bob, carol):
            self.assertEqual(node.chat.status()["messages"], 0)
            self.assertEqual(node.view.texts, [])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_duplicate_not_verified_again(self):
        """
        An entry already held is dropped by id before its signature is
        checked again.
        """
        net = Network(self)
        bob = net.node("bob")
        author = Identity.generate()
        entry = create_entry(author, 1, None, 1, 0, "chat", {"name": "a", "text": "x"})
        self.assertTrue(bob.feed.rx_entry(entry.to_wire(), None))
        net.clock.advance(0)
        verified = []
        self.patch(UnverifiedEntry, "verify", lambda candidate: verified.append(candidate))
        self.assertFalse(bob.feed.rx_entry(entry.to_wire(), None))
        self.assertEqual(verified, [])

    def test_new_entry_not_looked_up(self):
        """
        An entry above its author's highest stored seq is known to be new
        without looking its id up in the store; one at or below it is
        looked up, and a copy of a stored entry is a duplicate.
        """
        net = Network(self)
        bob = net.node("bob")
        author = Identity.generate()
        first = create_entry(author, 1, None, 1, 0, "chat", {"name": "a", "text": "x"})
        second = create_entry(author, 2, first.id, 2, 0, "chat", {"name": "a", "text": "y"})
        self.assertTrue(bob.feed.rx_entry(first.to_wire(), None))
        net.clock.advance(0)
        looked_up = []
        has = bob.store.has
        self.patch(bob.store, "has", lambda entry_id: looked_up.append(entry_id) or has(entry_id))
        self.assertTrue(bob.feed.rx_entry(second.to_wire(), None))
        self.assertEqual(looked_up, [])
        net.clock.advance(0)
        self.assertFalse(bob.feed.rx_entry(first.to_wire(), None))
        self.assertEqual(looked_up, [first.id])
        self.assertEqual(bob.view.texts, ["x", "y"])

    def test_far_future_lamport_does_not_poison_clock(self):
        """
        A signed entry claiming a Lamport time near the maximum is stored
        and shown, but this node's next post still gets a small Lamport
        time and stays valid.
        """
        net = Network(self)
        bob = net.node("bob")
        mallory = Identity.generate()
        body = {"name": "m", "text": "from the far future"}
        poison = create_entry(mallory, 1, None, MAX_INTEGER, 0, "chat", body)
        self.assertTrue(bob.feed.rx_entry(poison.to_wire(), None))
        net.clock.advance(0)
        reply = bob.chat.post("still here")
        net.clock.advance(0)
        self.assertEqual(reply.lamport, 1)
        self.assertEqual(bob.view.texts, ["from the far future", "still here"])

    def test_lamport_saturates(self):
        """
        A node whose clock already is at the maximum (say, from an entry
        stored before this guard existed) keeps posting valid entries.
        """
        net = Network(self)
        alice = net.node("alice")
        alice.feed.lamport = MAX_INTEGER
        first, second = alice.chat.post("one"), alice.chat.post("two")
        net.clock.advance(0)
        self.assertEqual((first.lamport, second.lamport), (MAX_INTEGER, MAX_INTEGER))
        self.assertEqual([m.text for m in alice.chat.history(2)], ["one", "two"])

    def test_far_future_lamport_not_followed_after_restart(self):
        """
        After a restart the clock is seeded only from plausible Lamport
        times, so an absurd entry stored earlier still does not drag this
        node's posts up to it.
        """
        net = Network(self)
        bob = net.node("bob")
        mallory = Identity.generate()
        body = {"name": "m", "text": "bomb"}
        bomb = create_entry(mallory, 1, None, MAX_INTEGER - 1, 0, "chat", body)
        bob.feed.rx_entry(bomb.to_wire(), None)
        net.clock.advance(0)
        bob.store.close()
        again = net.node("bob", directory=bob.directory)
        self.assertEqual(again.chat.post("after restart").lamport, 1)

    def test_deeply_nested_entry_is_refused_cleanly(self):
        """
        An entry frame whose body nests deeper than the interpreter can
        hash is refused with the link closed, never an exception.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        bob_side, _ = net.link(bob, alice)
        nested = "x"
        for _ in range(5000):
            nested = [nested]
        wire_entry = {key: nested for key in ("author", "seq", "prev", "lamport",
                                               "ts", "kind", "body", "sig")}
        self.assertFalse(bob.feed.rx_entry(wire_entry, bob_side))
        self.assertTrue(bob_side.transport.disconnecting)
        self.assertEqual(bob.chat.status()["messages"], 0)

    def test_invalid_entry_closes_link(self):
        """
        A link that sends an invalid entry is closed with an error frame
        naming the problem.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        bob_side, alice_side = net.link(bob, alice)
        forged = create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                              {"name": "m", "text": "x"})
        alice_side.send_frame(wire.entry_frame(dict(forged.to_wire(), ts=5)))
        net.settle()
        self.assertEqual(len(bob.links), 0)
        self.assertEqual(len(alice.links), 0)

    def test_late_old_entry_keeps_newer_name(self):
        """
        A peer's name is the one on its newest entry (by Lamport time), even
        when an older entry arrives later.
        """
        net = Network(self)
        bob = net.node("bob")
        carol = Identity.generate()
        first = create_entry(carol, 1, None, 1, 0, "chat", {"name": "carol", "text": "a"})
        second = create_entry(carol, 2, first.id, 2, 0, "chat", {"name": "caz", "text": "b"})
        bob.feed.rx_entry(second.to_wire(), None)
        net.clock.advance(0)
        bob.feed.rx_entry(first.to_wire(), None)
        net.clock.advance(0)
        self.assertEqual(bob.chat.name_of(carol.node_id), "caz")

    def test_stopping_node_takes_nothing_new(self):
        """
        After stop(), queued entries are committed, links get a bye, and
        new entries and links are refused.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        net.link(alice, bob)
        alice.chat.post("last words")
        alice.stop()
        self.assertEqual(alice.chat.status()["messages"], 1)
        net.settle()
        self.assertEqual(len(bob.links), 0)
        late = create_entry(Identity.generate(), 1, None, 1, 0, "chat", {"name": "l", "text": "x"})
        self.assertFalse(alice.feed.rx_entry(late.to_wire(), None))
        server, _ = net.link(alice, net.node("carol"))
        self.assertFalse(server.accepted)

    def test_misbehaving_tls_peer_is_backed_off(self):
        """
        A peer whose TLS-proven id sent an invalid entry is refused for a
        minute, then two, and re-admitted after; on plain TCP (ids are
        claims) nobody is penalised.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        bob_side, alice_side = net.link(bob, alice)
        forged = create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                              {"name": "m", "text": "x"})
        bad = wire.entry_frame(dict(forged.to_wire(), ts=5))
        alice_side.send_frame(bad)
        net.settle()
        self.assertEqual(bob.links._penalties, {})
        class ProvenIds:
            """
            The node's view of p2pchat.trust.tls on a TLS network: every link's
            id is proven.
            """

            @staticmethod
            def tls_connection(transport):
                return object()

        self.patch(links_module, "tls", ProvenIds)
        bob_side, alice_side = net.link(bob, alice)
        alice_side.send_frame(bad)
        net.settle()
        server, _ = net.link(bob, alice)
        self.assertFalse(server.accepted)
        net.clock.advance(61)
        bob_side, alice_side = net.link(bob, alice)
        self.assertTrue(bob_side.accepted)
        alice_side.send_frame(bad)
        net.settle()
        net.clock.advance(61)
        server, _ = net.link(bob, alice)
        self.assertFalse(server.accepted)
        net.clock.advance(60)
        server, _ = net.link(bob, alice)
        self.assertTrue(server.accepted)

    def test_self_link_refused(self):
        """
        A node that connects to itself refuses the link.
        """
        net = Network(self)
        alice = net.node("alice")
        server, client = net.link(alice, alice)
        self.assertFalse(server.accepted)
        self.assertEqual(len(alice.links), 0)

    def test_fork_is_reported_not_merged(self):
        """
        Two different entries with one author and seq: the second is not
        stored, and /status counts a fork.
        """
        net = Network(self)
        bob = net.node("bob")
        twin = Identity.generate()
        one = create_entry(twin, 1, None, 1, 0, "chat", {"name": "t", "text": "one"})
        two = create_entry(twin, 1, None, 1, 0, "chat", {"name": "t", "text": "two"})
        bob.feed.rx_entry(one.to_wire(), None)
        net.clock.advance(0)
        bob.feed.rx_entry(two.to_wire(), None)
        net.clock.advance(0)
        self.assertEqual(bob.view.texts, ["one"])
        self.assertEqual(bob.chat.status()["forks"], 1)

    def test_link_down_marks_peer(self):
        """
        When the only link to a peer closes, the peer is shown as not
        linked at once, and, as nothing more is heard from it, suspected
        and then no longer counted as alive.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        _, client = net.link(alice, bob)
        client.transport.loseConnection()
        net.settle()
        self.assertIsNone(alice.links.link_to(bob.node_id))
        self.assertFalse(alice.membership.member(bob.node_id).linked)
        net.tick(seconds=0.2, times=50)
        self.assertEqual(alice.chat.status()["peers"], 0)
        self.assertEqual(alice.membership.member(bob.node_id).state, "dead")


class DirectMessageTests(SynchronousTestCase):
    """
    Direct messages: sealed to the recipient, relayed as ciphertext.
    """

    def setUp(self):
        self.net = Network(self)
        self.alice = self.net.node("alice")
        self.bob = self.net.node("bob")
        self.carol = self.net.node("carol")
        self.net.link(self.alice, self.bob)
        self.net.link(self.bob, self.carol)
        self.net.settle()

    def test_only_recipient_reads(self):
        """
        Carol's DM to alice, relayed by bob, is shown to alice and carol,
        not to bob, and bob's store holds no plaintext.
        """
        self.carol.chat.post("hello all")
        self.net.settle()
        self.carol.chat.direct(self.alice.node_id, "secret plan")
        self.net.settle()
        self.assertEqual(self.alice.view.texts, ["hello all", "secret plan"])
        self.assertTrue(self.alice.view.messages[-1].direct)
        self.assertEqual(self.carol.view.texts, ["hello all", "secret plan"])
        self.assertEqual(self.bob.view.texts, ["hello all"])
        self.assertEqual(self.bob.chat.status()["messages"], 2)
        self.assertEqual([m.text for m in self.bob.chat.history(10)], ["hello all"])
        self.assertEqual(self.bob.chat.search("secret"), [])
        with open(self.bob.store.path, "rb") as f:
            self.assertNotIn(b"secret plan", f.read())

    def test_by_name(self):
        """
        A DM addressed by name reaches the peer with that name.
        """
        self.bob.chat.direct("alice", "hi")
        self.net.settle()
        self.assertEqual(self.alice.view.texts, ["hi"])

    def test_unknown_name(self):
        """
        A DM to a name nobody has raises L{UnknownPeer}.
        """
        self.assertRaises(UnknownPeer, self.alice.chat.direct, "zed", "hi")

    def test_short_id_beats_a_name(self):
        """
        A peer who takes another peer's short id as its name cannot capture
        messages sent to that short id: the text matches both, so it is
        ambiguous, and the full id still reaches the right peer.
        """
        impostor = self.net.node(self.alice.node_id[:8])
        self.net.link(self.bob, impostor)
        self.assertRaises(AmbiguousPeer, self.bob.chat.direct, self.alice.node_id[:8], "x")
        self.bob.chat.direct(self.alice.node_id[:12], "for alice")
        self.net.settle()
        self.assertEqual(self.alice.view.texts, ["for alice"])
        self.assertEqual(impostor.view.texts, [])

    def test_ambiguous_name(self):
        """
        A name two peers share raises L{AmbiguousPeer} listing both short
        ids, and a short id resolves the ambiguity.
        """
        other = self.net.node("bob")
        self.net.link(self.alice, other)
        error = self.assertRaises(AmbiguousPeer, self.alice.chat.direct, "bob", "hi")
        self.assertIn(other.node_id[:8], str(error))
        self.assertIn(self.bob.node_id[:8], str(error))
        self.alice.chat.direct(other.node_id[:8], "just you")
        self.net.settle()
        self.assertEqual(other.view.texts, ["just you"])
        self.assertEqual(self.bob.view.texts, [])
