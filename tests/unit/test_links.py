"""
Tests for L{p2pchat.mesh.links}: one L{Links} with a L{Clock}, recording
fake links, producers and observers; each test asserts the exact sequence
of calls Links made.
"""

from nacl.signing import SigningKey
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from p2pchat.config import PeerAddress
from p2pchat.log.identity import Identity
from p2pchat.mesh import links as links_module
from p2pchat.mesh import wire
from p2pchat.mesh.handler import IPeerHandler
from p2pchat.mesh.links import MAX_PENALTY_S, PENALTY_S, Links
from p2pchat.mesh.wire import FrameError
from tests.membership_output import IMembershipOutputContract

ME, BOB, CAROL = (Identity(SigningKey(bytes([n]) * 32)) for n in (1, 2, 3))


class Recorder:
    """
    One list of calls shared by every fake, so their order shows.
    """

    def __init__(self):
        self.calls = []
        self.frames = []


class FakeProducer:
    def __init__(self, recorder, link):
        self._recorder = recorder
        self._link = link
        self.paused = False

    def stopProducing(self):
        self._recorder.calls.append(("stopProducing", self._link.remote_id))


class FakeLink:
    """
    The parts of a L{PeerProtocol} Links uses.
    """

    def __init__(self, recorder, identity, outbound=True, remote_links=0, version=3):
        self._recorder = recorder
        self.version = version
        self.remote_id = identity.node_id
        self.remote_name = "peer"
        self.remote_address = "peer.example:9090"
        self.outbound = outbound
        self.remote_links = remote_links
        self.transport = object()
        self.held = False
        self.bytes_in, self.bytes_out = 0, 0

    def describe(self):
        return f"peer ({self.remote_id[:8]})"

    def set_producer(self, producer):
        self._recorder.calls.append(("set_producer", self.remote_id))

    def send_frame(self, frame):
        self._recorder.calls.append(("send_frame", self.remote_id, frame["type"]))
        self._recorder.frames.append((self.remote_id, frame))

    def close(self, reason, misbehaved=False):
        self._recorder.calls.append(("close", self.remote_id, reason, misbehaved))

    def leave(self):
        self._recorder.calls.append(("leave", self.remote_id))


class RecordingObserver:
    def __init__(self, recorder):
        self._recorder = recorder

    def link_up(self, link):
        self._recorder.calls.append(("observer.link_up", link.remote_id))

    def link_down(self, link):
        self._recorder.calls.append(("observer.link_down", link.remote_id))


class LinksTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.recorder = Recorder()
        self.producers = {}
        self.dialled = []
        self.links = Links(
            ME, "me", "me.example:9090", self.clock, self.producer, dial=self.dialled.append,
        )
        self.links.observers.append(RecordingObserver(self.recorder))
        self.links.on_change = lambda: self.recorder.calls.append(("on_change",))
        self.changes = []
        self.links.member_watchers.append(
            lambda member, old: self.changes.append((member.node_id, old, member.state))
        )

    def producer(self, link):
        self.recorder.calls.append(("producer", link.remote_id))
        producer = self.producers[link.remote_id] = FakeProducer(self.recorder, link)
        return producer

    def link(self, identity=BOB, **kwargs):
        return FakeLink(self.recorder, identity, **kwargs)

    def test_protocol_2_links_are_not_probed(self):
        """
        A protocol-2 peer would close the link on a frame it does not know:
        membership's probe frames are never sent on its link, and a probe
        is answered at once for it (its open link answers for it); a
        protocol-3 link carries them.
        """
        old, new = self.link(BOB, version=2), self.link(CAROL, version=3)
        self.links.link_up(old)
        self.links.link_up(new)
        answered = []
        real = self.links.membership.rx_frame
        self.patch(
            self.links.membership, "rx_frame",
            lambda peer, frame: answered.append((peer, frame)) or real(peer, frame),
        )
        output = self.links.membership._output
        del self.recorder.calls[:]
        for frame in (wire.probe(7), wire.probe_req(8, CAROL.node_id), wire.unlink()):
            output.send(BOB.node_id, frame)
            output.send(CAROL.node_id, frame)
        self.clock.advance(0)
        self.assertEqual(self.recorder.calls, [
            ("send_frame", CAROL.node_id, "probe"),
            ("send_frame", CAROL.node_id, "probe-req"),
            ("send_frame", CAROL.node_id, "unlink"),
        ])
        self.assertEqual(answered, [(BOB.node_id, wire.probe_ack(7))])

    def test_protocol_2_links_get_heartbeats(self):
        """
        A protocol-2 peer suspects a member whose heartbeat does not
        advance: once a second its link gets this node's row with the next
        heartbeat (the same signature); protocol-3 links never do, and
        nothing is sent while no protocol-2 link is up.
        """
        from p2pchat.mesh.links import PROTOCOL_2_HEARTBEAT_S
        from p2pchat.mesh.membership.rows import signed_part
        new = self.link(CAROL, version=3)
        self.links.link_up(new)
        self.links.tick()
        del self.recorder.frames[:]
        old = self.link(BOB, version=2)
        self.links.link_up(old)
        del self.recorder.frames[:]
        own = self.links.membership.own_row()
        beats = []
        for _ in range(5):
            self.clock.advance(PROTOCOL_2_HEARTBEAT_S / 2)
            self.links.tick()
            beats += [(peer, [row["hb"] for row in frame["rows"]])
                      for peer, frame in self.recorder.frames if frame["type"] == "gossip"]
            for _, frame in self.recorder.frames:
                self.assertEqual([signed_part(row) for row in frame["rows"]], [signed_part(own)])
            del self.recorder.frames[:]
        self.assertEqual(beats, [(BOB.node_id, [1]), (BOB.node_id, [2]), (BOB.node_id, [3])])
        self.assertEqual(own["hb"], 0)

    def test_is_a_peer_handler(self):
        self.assertTrue(verifyObject(IPeerHandler, self.links))

    def test_link_up_and_down(self):
        """
        A link that comes up gets its producer, then observers and
        membership hear of it (membership greets it with gossip); going
        down is told in the same order, the producer is stopped, and the
        link's traffic is counted once.
        """
        link = self.link()
        self.assertIsNone(self.links.link_up(link))
        self.assertEqual(self.recorder.calls, [
            ("producer", BOB.node_id), ("set_producer", BOB.node_id),
            ("observer.link_up", BOB.node_id), ("send_frame", BOB.node_id, "gossip"),
            ("on_change",),
        ])
        self.assertEqual((len(self.links), list(self.links)), (1, [link]))
        self.assertIs(self.links.link_to(BOB.node_id), link)
        self.assertTrue(self.links.membership.member(BOB.node_id).linked)
        self.recorder.calls.clear()
        link.bytes_in, link.bytes_out = 100, 7
        self.links.link_down(link)
        self.assertEqual(self.recorder.calls, [
            ("observer.link_down", BOB.node_id), ("stopProducing", BOB.node_id), ("on_change",),
        ])
        self.assertIsNone(self.links.link_to(BOB.node_id))
        linked = [m.node_id for m in self.links.membership.members() if m.linked]
        self.assertEqual(linked, [])
        self.assertEqual(self.links.new_traffic(), [100, 7])
        self.assertEqual(self.links.new_traffic(), [0, 0])

    def test_refusals(self):
        """
        Links refuse this node itself, links over the cap, a full node's
        inbound link from a peer that has links (HyParView), and anything
        once stopping; a refused link gets no producer.
        """
        self.assertEqual(self.links.link_up(self.link(ME)), "connected to self")
        self.patch(links_module, "MAX_LINKS", 1)
        self.links.link_up(self.link(BOB))
        self.recorder.calls.clear()
        self.assertEqual(self.links.link_up(self.link(CAROL)), "too many links (at most 1)")
        self.patch(links_module, "MAX_LINKS", 64)
        self.patch(self.links.membership, "config", type(self.links.membership.config)(
            max_links=1, link_slack=0))
        self.assertEqual(
            self.links.link_up(self.link(CAROL, outbound=False, remote_links=2)),
            "this node has all the links it wants; try another member",
        )
        self.links.stopping = True
        self.assertEqual(self.links.link_up(self.link(CAROL)), "node is stopping")
        self.assertEqual(self.recorder.calls, [])

    def test_twin_links_keep_the_lower_initiator(self):
        """
        A second link to a linked peer: both sides keep the link opened by
        the lower node id.  The twin opened by the higher id is refused;
        one opened by the lower id replaces the other, which is taken down
        (observers, producer) and closed; membership still has the peer
        linked, and the replaced link's own link_down later does nothing.
        """
        low = min([ME, BOB], key=lambda i: i.node_id)
        # Links is ME's; BOB's inbound link was opened by BOB, outbound by ME.
        mine, bobs = self.link(BOB, outbound=True), self.link(BOB, outbound=False)
        first, second = (bobs, mine) if low is ME else (mine, bobs)
        self.assertIsNone(self.links.link_up(first))
        self.recorder.calls.clear()
        self.assertIsNone(self.links.link_up(second))
        self.assertEqual(self.recorder.calls, [
            ("observer.link_down", BOB.node_id), ("stopProducing", BOB.node_id), ("on_change",),
            ("close", BOB.node_id,
             f"replaced by the link opened by {low.node_id[:8]}", False),
            ("producer", BOB.node_id), ("set_producer", BOB.node_id),
            ("observer.link_up", BOB.node_id), ("send_frame", BOB.node_id, "gossip"),
            ("on_change",),
        ])
        self.assertEqual(list(self.links), [second])
        self.assertTrue(self.links.membership.member(BOB.node_id).linked)
        self.recorder.calls.clear()
        self.links.link_down(first)
        self.assertEqual(self.recorder.calls, [])
        self.assertEqual(
            self.links.link_up(self.link(BOB, outbound=second.outbound)),
            f"already linked to {BOB.node_id[:8]}",
        )
        self.assertEqual(self.links.link_up(first), f"already linked to {BOB.node_id[:8]}")
        self.assertEqual(list(self.links), [second])

    def test_links_at_an_address(self):
        """
        The links at an address are those whose peer advertises it;
        close_at closes them and counts them.
        """
        bob, carol = self.link(BOB), self.link(CAROL)
        carol.remote_address = None
        self.links.link_up(bob)
        self.links.link_up(carol)
        self.recorder.calls.clear()
        self.assertEqual(self.links.at(PeerAddress("peer.example", 9090)), [bob])
        self.assertEqual(self.links.at(PeerAddress("peer.example", 9091)), [])
        self.assertEqual(self.links.close_at(PeerAddress("peer.example", 9090), "bye now"), 1)
        self.assertEqual(self.recorder.calls, [("close", BOB.node_id, "bye now", False)])

    def test_routes(self):
        """
        Frames go to the handler registered for their type; a handler's
        L{FrameError} closes the link as misbehaving; unknown types are
        ignored; gossip goes to membership.
        """
        link = self.link()
        self.links.link_up(link)
        self.recorder.calls.clear()
        routed = []

        def handler(link, frame):
            routed.append((link.remote_id, frame["type"]))
            if frame.get("bad"):
                raise FrameError("bad thing")

        self.links.route(["entry", "ihave"], handler)
        self.links.rx_frame(link, {"type": "entry"})
        self.links.rx_frame(link, {"type": "ihave", "bad": True})
        self.links.rx_frame(link, {"type": "nonsense"})
        self.links.rx_frame(link, {"type": "gossip", "rows": "not a list"})
        self.assertEqual(routed, [(BOB.node_id, "entry"), (BOB.node_id, "ihave")])
        self.assertEqual([call[:2] + call[3:] for call in self.recorder.calls], [
            ("close", BOB.node_id, True), ("close", BOB.node_id, True),
        ])
        self.assertEqual(self.recorder.calls[0][2], "bad frame: bad thing")

    def test_ready_follows_the_producer(self):
        """
        A member is ready for frames unless its link's producer is paused.
        """
        self.assertTrue(self.links.ready(BOB.node_id))
        link = self.link()
        self.links.link_up(link)
        self.assertTrue(self.links.ready(BOB.node_id))
        self.producers[BOB.node_id].paused = True
        self.assertFalse(self.links.ready(BOB.node_id))
        self.assertTrue(self.links.paused(link))

    def test_penalties_only_for_proven_ids(self):
        """
        On plain TCP nobody is penalised; a TLS-proven id is refused for
        PENALTY_S, doubling per strike, forgotten an hour after it ends.
        """
        link = self.link()
        self.links.link_misbehaved(link)
        self.assertIsNone(self.links.link_up(self.link()))
        self.patch(links_module.tls, "tls_connection", lambda transport: object())
        self.links.link_misbehaved(link)
        self.assertEqual(
            self.links.link_up(self.link()), "refused for 60 s more after invalid input"
        )
        self.clock.advance(PENALTY_S)
        self.links.link_misbehaved(link)
        self.assertEqual(
            self.links.link_up(self.link()), "refused for 120 s more after invalid input"
        )
        self.clock.advance(2 * PENALTY_S + MAX_PENALTY_S)
        self.links.tick()
        self.assertEqual(self.links._penalties, {})

    def test_membership_output(self):
        """
        Membership dials through Links (parsing the address first), and a
        member's change of state is passed on to the watchers.
        """
        output = self.links.membership._output
        output.connect("carol.example:9090")
        output.connect("not an address")
        self.assertEqual(self.dialled, [PeerAddress("carol.example", 9090)])
        link = self.link()
        self.links.link_up(link)
        self.recorder.calls.clear()
        output.send(BOB.node_id, {"type": "gossip"})
        output.disconnect(BOB.node_id, "dropping")
        self.assertEqual(self.recorder.calls, [
            ("send_frame", BOB.node_id, "gossip"), ("leave", BOB.node_id),
        ])
        member = self.links.membership.member(BOB.node_id)
        output.member_changed(member, "suspect")
        self.assertEqual(
            self.changes, [(BOB.node_id, None, "alive"), (BOB.node_id, "suspect", "alive")]
        )

    def test_leave(self):
        """
        Leaving refuses new links, gossips this node's signed leave, and
        says goodbye on every link.
        """
        self.links.link_up(self.link())
        self.recorder.calls.clear()
        self.links.leave()
        self.assertTrue(self.links.stopping)
        self.assertEqual(self.recorder.calls, [
            ("send_frame", BOB.node_id, "gossip"), ("leave", BOB.node_id),
        ])


class LinksMembershipOutputTests(IMembershipOutputContract, SynchronousTestCase):
    """
    The node's membership output (L{Links}' L{_MembershipOutput}) keeps
    the L{IMembershipOutput} contract, over recording fake links.
    """

    def make_output(self):
        self.recorder = Recorder()
        self.dialled = []
        self.producers = {}
        self.links = Links(
            ME, "me", "me.example:9090", Clock(), self.producer, dial=self.dialled.append,
        )
        self.watched = []
        self.links.member_watchers.append(
            lambda member, old: self.watched.append((member.node_id, old, member.state))
        )
        self.frames = []
        link = FakeLink(self.recorder, BOB)
        link.send_frame = self.frames.append
        self.links.link_up(link)
        self.frames.clear()
        self.watched.clear()
        return self.links.membership._output, BOB.node_id

    def producer(self, link):
        producer = self.producers[link.remote_id] = FakeProducer(self.recorder, link)
        return producer

    def stall(self, peer_id):
        self.producers[peer_id].paused = True

    def delivered(self, peer_id):
        return list(self.frames)

    def dials(self):
        return [str(address) for address in self.dialled]

    def closed(self):
        return [call[1] for call in self.recorder.calls if call[0] == "leave"]

    def changes(self):
        return list(self.watched)
