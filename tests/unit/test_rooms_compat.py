"""
A node of this build (protocol 3) beside a node of protocol 2: the link
to a protocol-2 peer never carries an entry that peer would refuse (room
entries), neither pushed, nor announced, nor streamed in a summary answer,
so it stays up; a protocol-3 link carries everything.
"""

from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.mesh.peer import PeerProtocol
from tests.nodes import Network
from tests.unit.test_peer import encode

CAROL, DAVE = Identity.generate(), Identity.generate()


def version_2_hello(identity, name):
    """
    @return: the hello a protocol-2 node sends: version 2, no max_version.
    """
    hello = wire.hello(identity.node_id, name, None)
    del hello["max_version"]
    return hello


def carol_feed():
    """
    @return: carol's feed: lobby chat, a join, a room message, a topic,
        lobby chat again (seqs 1-5).
    """
    bodies = [
        ("chat", {"name": "carol", "text": "hi lobby"}),
        ("room.join", {"name": "carol", "room": "#rust"}),
        ("chat", {"name": "carol", "room": "#rust", "text": "hi rust"}),
        ("room.topic", {"name": "carol", "room": "#rust", "topic": "borrowing"}),
        ("chat", {"name": "carol", "text": "back in the lobby"}),
    ]
    entries, prev = [], None
    for seq, (kind, body) in enumerate(bodies, 1):
        entry = create_entry(CAROL, seq, prev, seq, 1000 + seq, kind, body)
        entries.append(entry)
        prev = entry.id
    return entries


class Version2PeerTests(SynchronousTestCase):
    """
    A node with one link to a protocol-2 fake (a real L{PeerProtocol} on
    a L{StringTransportWithDisconnection}, fed a version-2 hello) and one
    to a node of this build.
    """

    def setUp(self):
        self.network = Network(self)
        self.node = self.network.node("alice")
        self.other = self.network.node("bob")
        self.network.link(self.node, self.other)
        self.old = PeerProtocol(self.node.links, self.network.clock, False, 10.0)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.old
        self.old.makeConnection(self.transport)
        self.old.dataReceived(encode(version_2_hello(DAVE, "dave")))
        self.network.settle()

    def frames(self):
        """
        @return: the frames the node wrote to the protocol-2 peer since
            the last call.
        """
        frames = [wire.parse_frame(line) for line in self.transport.value().splitlines()]
        self.transport.clear()
        return frames

    def entry_seqs(self, frames):
        return [f["entry"]["seq"] for f in frames if f["type"] == "entry"]

    def test_version_2_link(self):
        """
        The link to the protocol-2 peer is up and speaks version 2; the
        node's own hello said version 2, which that peer checks.
        """
        self.assertTrue(self.old.accepted)
        self.assertEqual(self.old.version, 2)
        self.assertEqual(self.frames()[0]["version"], 2)

    def test_live_entries(self):
        """
        Of carol's feed arriving live, the protocol-2 link is pushed and
        announced only the lobby messages; the protocol-3 node gets all,
        and the protocol-2 link stays up.
        """
        self.frames()
        feed = carol_feed()
        for entry in feed:
            self.node.feed.rx_entry(entry.to_wire(), None)
        self.network.settle()
        self.network.tick(times=3)
        frames = self.frames()
        self.assertEqual(self.entry_seqs(frames), [1, 5])
        announced = [i for f in frames if f["type"] == "ihave" for i in f["ids"]]
        self.assertEqual(set(announced) & {e.id for e in feed}, set())
        self.assertTrue(self.transport.connected)
        for entry in feed:
            self.assertTrue(self.other.store.has(entry.id))

    def test_summary_answer(self):
        """
        The protocol-2 peer's summary is answered with every entry it can
        take: the room entries are withheld, not sent.
        """
        for entry in carol_feed():
            self.node.feed.rx_entry(entry.to_wire(), None)
        self.network.settle()
        self.frames()
        self.old.dataReceived(encode({"type": "summary", "after": None, "final": True,
                                      "vv": {CAROL.node_id: [1, 5]}}))
        self.network.settle()
        self.assertEqual(self.entry_seqs(self.frames()), [])
        self.old.dataReceived(encode({"type": "more"}, {"type": "summary", "after": None,
                                                         "final": True, "vv": {}}))
        self.network.settle()
        carol = [f["entry"] for f in self.frames()
                 if f["type"] == "entry" and f["entry"]["author"] == CAROL.node_id]
        self.assertEqual([(e["seq"], e["kind"]) for e in carol], [(1, "chat"), (5, "chat")])
        self.assertTrue(self.transport.connected)
