"""
Tests for the link layer's defences against hostile peers: fair
pending-handshake slots (L{p2pchat.mesh.handshakes}), refused connections that
are really closed (also under TLS), per-link budgets of link-level frames,
a deadline on every close, and peer-supplied text escaped and rate-limited
before it reaches the log.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.logger import Logger, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh import wire
from p2pchat.mesh.budgets import LINK_FRAME_BURST
from p2pchat.mesh.factory import PeerFactory
from p2pchat.mesh.handshakes import PendingSlots
from p2pchat.mesh.peer import CLOSE_DEADLINE_S, PeerProtocol
from p2pchat.trust.tls import PeerTLS
from tests.tls_network import make_network
from tests.unit.test_peer import BOB_HELLO, PeerTestCase, RecordingHandler, encode

ESCAPES = "\x1b[2J\x1b]0;owned\x07\nfake: line"


class RecordingTransport(StringTransportWithDisconnection):
    """
    A transport that counts C{abortConnection} calls.
    """

    aborts = 0

    def abortConnection(self):
        self.aborts += 1
        super().abortConnection()


class SilentTransport(StringTransport):
    """
    A transport whose connection is never reported lost (a peer that
    neither reads nor closes); counts C{abortConnection} calls.
    """

    aborts = 0

    def abortConnection(self):
        self.aborts += 1
        super().abortConnection()


class PendingSlotsTests(SynchronousTestCase):
    """
    L{PendingSlots}: a newcomer always gets a slot; the oldest pending
    connection of the busiest address makes room.
    """

    def test_cap_per_address_evicts_that_address_oldest(self):
        """
        A newcomer from an address at its cap evicts that address's oldest
        pending connection, whatever other addresses hold.
        """
        slots = PendingSlots(max_total=10, max_per_address=2)
        self.assertIsNone(slots.admit("b1", "b"))
        self.assertIsNone(slots.admit("a1", "a"))
        self.assertIsNone(slots.admit("a2", "a"))
        self.assertEqual(slots.admit("a3", "a"), "a1")
        self.assertEqual(list(slots), ["b1", "a2", "a3"])
        self.assertEqual(slots.held_by("a"), 2)

    def test_full_evicts_oldest_of_busiest_address(self):
        """
        When every slot is taken, the oldest connection of the address
        holding the most slots goes, not the oldest overall.
        """
        slots = PendingSlots(max_total=4, max_per_address=4)
        for link, address in [("c1", "c"), ("a1", "a"), ("a2", "a"), ("a3", "a")]:
            self.assertIsNone(slots.admit(link, address))
        self.assertEqual(slots.admit("c2", "c"), "a1")
        self.assertNotIn("a1", slots)
        self.assertEqual(len(slots), 4)

    def test_discard(self):
        """
        A discarded connection frees its slot (twice is harmless).
        """
        slots = PendingSlots(max_total=1, max_per_address=1)
        slots.admit("a1", "a")
        slots.discard("a1")
        slots.discard("a1")
        self.assertEqual((len(slots), slots.held_by("a")), (0, 0))
        self.assertIsNone(slots.admit("a2", "a"))

    def test_bad_limits(self):
        """
        Limits below one are refused.
        """
        self.assertRaises(ValueError, PendingSlots, 0, 1)
        self.assertRaises(ValueError, PendingSlots, 1, 0)


class FactoryAdmissionTests(SynchronousTestCase):
    """
    L{PeerFactory.buildProtocol} admits every newcomer and closes the
    connection it evicts.
    """

    def setUp(self):
        self.clock = Clock()
        self.events = []
        self.patch(PeerProtocol, "log", Logger(observer=self.events.append))
        self.factory = PeerFactory(RecordingHandler(), self.clock, False, 60.0)

    def open(self, host="127.0.0.1", factory=None):
        """
        @return: a protocol built by the factory for a connection from
            C{host}, connected to a L{RecordingTransport}.
        """
        protocol = (factory or self.factory).buildProtocol(IPv4Address("TCP", host, 40000))
        transport = RecordingTransport()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol

    def lines(self, fragment):
        return [text for text in map(formatEvent, self.events) if fragment in text]

    def test_honest_handshake_wins_over_idle_sockets_from_its_address(self):
        """
        With every slot held by idle sockets from 127.0.0.1, a newcomer
        from 127.0.0.1 still gets in (the oldest idle one is closed), and
        finishes its handshake while more idle sockets arrive.
        """
        idle = [self.open() for _ in range(64)]
        honest = self.open()
        self.assertIsNotNone(honest)
        self.assertEqual(idle[0].transport.aborts, 1)
        idle += [self.open() for _ in range(10)]
        honest.dataReceived(encode(BOB_HELLO))
        self.assertTrue(honest.accepted)
        self.assertNotIn(honest, self.factory.pending)
        self.assertEqual(self.factory.pending.held_by("127.0.0.1"), 15)

    def test_other_addresses_keep_their_slots(self):
        """
        A flood from one address takes at most its per-address share: a
        connection from another address, already pending, is never
        evicted by it.
        """
        other = self.open("10.0.0.2")
        for _ in range(500):
            self.open("10.0.0.66")
        self.assertIn(other, self.factory.pending)
        self.assertEqual(other.transport.aborts, 0)
        self.assertEqual(self.factory.pending.held_by("10.0.0.66"), 16)

    def test_evictions_logged_rate_limited(self):
        """
        200 evictions in a moment make one log line; the next one, later,
        says how many were held back.
        """
        for _ in range(200):
            self.open()
        self.assertEqual(len(self.lines("handshakes pending")), 1)
        self.clock.advance(10)
        self.open()
        lines = self.lines("handshakes pending")
        self.assertEqual(len(lines), 2)
        self.assertIn("similar lines not logged", lines[1])

    def test_tls_factory_never_wraps_nothing(self):
        """
        Under a TLS factory, a connection beyond the slots is still given a
        protocol (TLS around C{None} would raise in C{doRead} and leave its
        socket open), and the connection it displaces is closed at once.
        """
        files = make_network(self.mktemp(), "alice")["alice"]
        peers = PeerFactory(RecordingHandler(), self.clock, False, 10.0, max_pending=1)
        tls_factory = TLSMemoryBIOFactory(PeerTLS(files).server, False, peers)
        first = self.open(factory=tls_factory)
        second = self.open(factory=tls_factory)
        self.assertIsInstance(second.wrappedProtocol, PeerProtocol)
        self.assertEqual(first.transport.aborts, 1)
        self.assertFalse(first.transport.connected)
        self.assertEqual(list(peers.pending), [second.wrappedProtocol])


class CloseDeadlineTests(PeerTestCase):
    """
    A close that the peer does not complete is forced.
    """

    def test_close_is_aborted_after_deadline(self):
        """
        A link closed while its peer reads nothing (the transport never
        reports the connection lost) is aborted after L{CLOSE_DEADLINE_S}.
        """
        self.connect()
        transport = SilentTransport()
        self.protocol.transport = transport
        self.protocol.close("no hello")
        self.clock.advance(CLOSE_DEADLINE_S - 0.1)
        self.assertEqual(transport.aborts, 0)
        self.clock.advance(0.1)
        self.assertEqual(transport.aborts, 1)

    def test_no_abort_once_lost(self):
        """
        A link that closes in time leaves no abort behind.
        """
        self.accept()
        self.protocol.close("done")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LinkFrameBudgetTests(PeerTestCase):
    """
    C{ping} is answered with a C{pong} (a reflection): it has a budget.
    """

    def test_ping_flood_closes_link(self):
        """
        A burst of 1,000 pings gets at most the burst of pongs, then the
        link closes as misbehaved.
        """
        self.accept()
        self.protocol.dataReceived(encode(*[{"type": "ping"}] * 1000))
        frames = self.written()
        self.assertLessEqual(frames.count({"type": "pong"}), LINK_FRAME_BURST)
        self.assertEqual(frames[-1]["type"], "error")
        self.assertIn("pings/s", frames[-1]["reason"])
        self.assertIn("link_misbehaved", self.handler.names())
        self.assertFalse(self.transport.connected)

    def test_pong_flood_closes_link(self):
        """
        Unsolicited pongs count too.
        """
        self.accept()
        self.protocol.dataReceived(encode(*[{"type": "pong"}] * 1000))
        self.assertIn("pings/s", self.written()[-1]["reason"])

    def test_keepalive_rate_is_fine(self):
        """
        A ping and a pong every second, for ten minutes, keep the link up.
        """
        self.accept()
        for _ in range(600):
            self.clock.advance(1)
            self.protocol.dataReceived(encode({"type": "ping"}, {"type": "pong"}))
        self.assertTrue(self.transport.connected)
        self.assertEqual(self.written().count({"type": "pong"}), 600)


class EscapingTests(SynchronousTestCase):
    """
    Peer-supplied text reaches the log escaped, and what an unidentified
    peer can make the node log at will is rate-limited.
    """

    def setUp(self):
        self.clock = Clock()
        self.events = []
        self.patch(PeerProtocol, "log", Logger(observer=self.events.append))

    def connect(self, outbound=False, handler=None):
        factory = PeerFactory(handler or RecordingHandler(), self.clock, outbound, 10.0)
        self.factory = factory
        protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.9", 40000))
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol

    def text(self):
        return "\n".join(formatEvent(event) for event in self.events)

    def assertEscaped(self):
        text = self.text()
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\x07", text)
        self.assertNotIn("\nfake", text)
        self.assertIn("\\x1b[2J", text)

    def test_error_on_accepted_link_escaped(self):
        """
        An accepted peer's error reason is logged with its control
        characters escaped.
        """
        link = self.connect()
        link.dataReceived(encode(BOB_HELLO, wire.error(ESCAPES)))
        self.assertIn("reported an error", self.text())
        self.assertEscaped()

    def test_outbound_refusal_escaped(self):
        """
        The listener's refusal of our outbound link (an error before its
        hello) is logged, escaped.
        """
        link = self.connect(outbound=True)
        link.dataReceived(encode(wire.error(ESCAPES)))
        self.assertIn("reported an error", self.text())
        self.assertEscaped()

    def test_inbound_error_before_hello_rate_limited(self):
        """
        An unidentified inbound peer's error before its hello is logged
        escaped, and 50 of them in a moment make one line.
        """
        link = self.connect()
        link.dataReceived(encode(wire.error(ESCAPES)))
        for _ in range(49):
            other = self.factory.buildProtocol(IPv4Address("TCP", "10.0.0.9", 40001))
            transport = StringTransportWithDisconnection()
            transport.protocol = other
            other.makeConnection(transport)
            other.dataReceived(encode(wire.error(ESCAPES)))
            self.assertFalse(transport.connected)
        self.assertEqual(self.text().count("reported an error"), 1)
        self.assertEscaped()

    def test_refused_handshakes_rate_limited(self):
        """
        50 connections that each send a bad first frame are all closed, but
        make one log line in a moment.
        """
        self.connect()
        for _ in range(50):
            link = self.factory.buildProtocol(IPv4Address("TCP", "10.0.0.9", 40001))
            transport = StringTransportWithDisconnection()
            transport.protocol = link
            link.makeConnection(transport)
            link.dataReceived(encode({"type": "ping"}))
            self.assertFalse(transport.connected)
        self.assertEqual(self.text().count("closing link with"), 1)

    def test_peer_name_escaped_in_describe(self):
        """
        L{PeerProtocol.describe}, used in every log line about a link,
        escapes the peer's name whatever put it there.
        """
        link = self.connect()
        link.remote_id = BOB_HELLO["id"]
        link.remote_name = "bob\x1b[31m"
        self.assertIn("bob\\x1b[31m", link.describe())
