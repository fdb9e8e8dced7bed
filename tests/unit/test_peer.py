"""
Tests for L{p2pchat.mesh.peer.PeerProtocol}: framing and the hello handshake.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import Logger
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from p2pchat.mesh import wire
from p2pchat.mesh.budgets import LIVE_ENTRY_BURST, EntryBudget
from p2pchat.mesh.factory import PeerFactory
from p2pchat.mesh.handler import IPeerHandler
from p2pchat.mesh.hello import HandshakeFailed
from p2pchat.mesh.keepalive import IDLE_TIMEOUT_S, KEEPALIVE_INTERVAL_S
from p2pchat.mesh.peer import PeerProtocol
from p2pchat.mesh.raw_entry import RawEntry
from p2pchat.ratelimit import TokenBucket
from tests import strategies

ALICE, BOB = strategies.IDENTITIES[:2]
TIMEOUT_S = 10.0


@implementer(IPeerHandler)
class RecordingHandler:
    """
    A fake L{IPeerHandler} that records every call in C{calls} as a tuple
    and accepts links unless given a C{refusal}.
    """

    def __init__(self, node_id=ALICE.node_id, name="alice", refusal=None):
        self.node_id = node_id
        self.name = name
        self.refusal = refusal
        self.calls = []

    def local_hello(self):
        return wire.hello(self.node_id, self.name, "127.0.0.1:9090")

    def link_up(self, link):
        self.calls.append(
            ("link_up", link.remote_id, link.remote_name, link.remote_address)
        )
        return self.refusal

    def link_down(self, link):
        self.calls.append(("link_down", link.remote_id))

    def rx_frame(self, link, frame):
        self.calls.append(("rx_frame", frame))

    def link_misbehaved(self, link):
        self.calls.append(("link_misbehaved", link.remote_id))

    def sign_binding(self, material):
        self.calls.append(("sign_binding", material))
        return ALICE.sign(b"p2pchat-bind-v1\n" + material).hex()

    def names(self):
        """
        @return: the names of the calls made so far.
        """
        return [call[0] for call in self.calls]


def encode(*frames, delimiter=b"\n"):
    """
    @return: C{frames} as bytes on the wire.
    """
    return b"".join(wire.encode_frame(frame) + delimiter for frame in frames)


BOB_HELLO = wire.hello(BOB.node_id, "bob", "10.0.0.2:9090")


def handshake_timers(clock):
    """
    @return: the handshake time-outs still scheduled on C{clock} (keep-alive
        timers of accepted links are not among them).
    """
    return [call for call in clock.getDelayedCalls()
            if call.func.__name__ == "_handshake_timed_out"]


class PeerTestCase(SynchronousTestCase):
    """
    Connects a L{PeerProtocol} to a L{StringTransportWithDisconnection}.
    """

    def connect(self, handler=None, outbound=False, entry_budget=None):
        """
        Make C{self.protocol} on C{self.transport}, driven by C{self.clock},
        reporting to C{self.handler}; log events go to C{self.log_events}.

        @param entry_budget: a function of the clock that returns the
            link's L{EntryBudget} (default: unlimited).
        """
        self.handler = handler if handler is not None else RecordingHandler()
        self.clock = Clock()
        self.log_events = []
        self.protocol = PeerProtocol(
            self.handler, self.clock, outbound=outbound, handshake_timeout_s=TIMEOUT_S,
            entry_budget=entry_budget(self.clock) if entry_budget else None,
        )
        self.protocol.log = Logger(observer=self.log_events.append)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        return self.protocol

    def accept(self, entry_budget=None):
        """
        Connect and complete the handshake with Bob's hello.
        """
        self.connect(entry_budget=entry_budget)
        self.protocol.dataReceived(encode(BOB_HELLO))
        self.assertTrue(self.protocol.accepted)
        self.transport.clear()

    def written(self):
        """
        @return: the frames written to the transport so far.
        """
        return [wire.parse_frame(line) for line in self.transport.value().splitlines()]

    def assertClosedWithError(self, reason_part):
        """
        The protocol wrote an error frame (its last frame) whose reason
        contains C{reason_part}, and closed the connection.
        """
        frames = self.written()
        self.assertTrue(frames, "nothing written")
        self.assertEqual(frames[-1]["type"], "error")
        self.assertIn(reason_part, frames[-1]["reason"])
        self.assertFalse(self.transport.connected)

    def assertHandshakeFailed(self):
        """
        handshake_done failed with L{HandshakeFailed}; link_up was never
        called.
        """
        self.failureResultOf(self.protocol.handshake_done, HandshakeFailed)
        self.assertNotIn("link_up", self.handler.names())
        self.assertFalse(self.protocol.accepted)


class HandshakeTests(PeerTestCase):
    """
    The hello exchange.
    """

    def test_fake_handler_provides_interface(self):
        """
        The fake handler used by these tests implements L{IPeerHandler}.
        """
        verifyObject(IPeerHandler, RecordingHandler())

    def test_hello_sent_first(self):
        """
        On connection the protocol writes its handler's hello, and nothing
        else, before receiving anything.
        """
        self.connect()
        self.assertEqual(self.written(), [self.handler.local_hello()])
        self.assertTrue(self.transport.value().endswith(b"\n"))
        self.assertNoResult(self.protocol.handshake_done)
        self.assertFalse(self.protocol.accepted)

    def test_valid_hello(self):
        """
        A valid peer hello sets the remote fields, calls link_up once, fires
        handshake_done with the protocol and marks the link accepted.
        """
        self.connect()
        self.protocol.dataReceived(encode(BOB_HELLO))
        self.assertEqual(
            self.handler.calls,
            [("link_up", BOB.node_id, "bob", "10.0.0.2:9090")],
        )
        self.assertIs(self.successResultOf(self.protocol.handshake_done), self.protocol)
        self.assertTrue(self.protocol.accepted)
        self.assertTrue(self.transport.connected)
        self.assertEqual(self.protocol.remote_id, BOB.node_id)
        self.assertIn("bob", self.protocol.describe())

    def test_timeout(self):
        """
        No hello within the time-out: an error frame is written, the link
        closes, handshake_done fails and link_up is never called.
        """
        self.connect()
        self.transport.clear()
        self.clock.advance(TIMEOUT_S - 0.1)
        self.assertTrue(self.transport.connected)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.2)
        self.assertClosedWithError("no hello within 10 s")
        self.assertHandshakeFailed()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_hello_in_time_cancels_timeout(self):
        """
        A hello that arrives before the time-out cancels the timer: the link
        stays open long after the time-out would have fired.
        """
        self.connect()
        self.clock.advance(TIMEOUT_S - 1)
        self.protocol.dataReceived(encode(BOB_HELLO))
        self.assertEqual(handshake_timers(self.clock), [])
        self.transport.clear()
        for _ in range(20):
            self.clock.advance(TIMEOUT_S / 2)
            self.protocol.dataReceived(encode({"type": "pong"}))
        self.assertTrue(self.transport.connected)
        self.assertNotIn("error", [frame["type"] for frame in self.written()])
        self.assertEqual(self.handler.names(), ["link_up"])

    def test_lost_before_hello(self):
        """
        A connection lost before the hello fails handshake_done, cancels the
        timer and does not call link_down.
        """
        self.connect()
        self.transport.loseConnection()
        self.assertHandshakeFailed()
        self.assertEqual(self.handler.calls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_frame_before_hello(self):
        """
        Any frame other than hello before the handshake closes the link
        with an error naming what arrived.
        """
        for frame in ({"type": "ping"}, wire.entry_frame({"x": 1})):
            self.connect()
            self.transport.clear()
            self.protocol.dataReceived(encode(frame))
            self.assertClosedWithError(f"expected hello, got {frame['type']}")
            self.assertHandshakeFailed()
            self.assertEqual(self.handler.calls, [])

    def test_error_before_hello(self):
        """
        An error frame before the hello closes the link without answering.
        """
        self.connect()
        self.transport.clear()
        self.protocol.dataReceived(encode(wire.error("go away")))
        self.assertFalse(self.transport.connected)
        self.assertEqual(self.transport.value(), b"")
        self.assertHandshakeFailed()
        self.assertIn("go away", [event.get("reason") for event in self.log_events])

    def test_second_hello(self):
        """
        A second hello on an accepted link closes it (and reports link_down).
        """
        self.accept()
        self.protocol.dataReceived(encode(BOB_HELLO))
        self.assertClosedWithError("second hello")
        self.assertEqual(self.handler.names(), ["link_up", "link_down"])

    def test_wrong_version(self):
        """
        A hello with another protocol version closes the link with an error
        that names the version.
        """
        self.connect()
        # Version 1 (before paged summaries) is refused since version 2.
        version_1 = {key: value for key, value in BOB_HELLO.items() if key != "max_version"}
        self.protocol.dataReceived(encode(dict(version_1, version=1)))
        self.assertClosedWithError(
            f"unsupported protocol version 1 (this node speaks 2 to {wire.PROTOCOL_VERSION})")
        self.assertHandshakeFailed()
        self.assertEqual(self.handler.calls, [])

    def test_later_versions_only(self):
        """
        A hello whose versions all lie above this node's is refused too,
        naming its lowest.
        """
        self.connect()
        later = wire.PROTOCOL_VERSION + 1
        self.protocol.dataReceived(encode(dict(BOB_HELLO, version=later, max_version=later + 1)))
        self.assertClosedWithError(
            f"unsupported protocol version {later} (this node speaks 2 to {later - 1})")
        self.assertEqual(self.handler.calls, [])

    def test_link_version(self):
        """
        The link speaks the highest version both sides speak: 2 with a
        protocol-2 node (whose hello has no max_version), this build's with
        a node of this build or a later node that still speaks it.
        """
        version_2 = {key: value for key, value in BOB_HELLO.items() if key != "max_version"}
        for hello, expected in ((dict(version_2, version=2), 2),
                                (BOB_HELLO, wire.PROTOCOL_VERSION),
                                (dict(BOB_HELLO, version=3, max_version=7),
                                 wire.PROTOCOL_VERSION)):
            self.connect()
            self.protocol.dataReceived(encode(hello))
            self.assertTrue(self.protocol.accepted)
            self.assertEqual(self.protocol.version, expected)

    def test_own_hello_names_versions(self):
        """
        This node's hello says version 2 (so that a protocol-2 node, which
        checks only that field, takes it) and max_version this build's.
        """
        self.connect()
        hello = self.written()[0]
        self.assertEqual((hello["version"], hello["max_version"]), (2, wire.PROTOCOL_VERSION))

    def test_handler_refuses(self):
        """
        When link_up returns a reason, it is sent in an error frame, the link
        closes, handshake_done fails and link_down is not called.
        """
        self.connect(RecordingHandler(refusal="connected to self"))
        self.protocol.dataReceived(encode(BOB_HELLO))
        self.assertClosedWithError("connected to self")
        self.failureResultOf(self.protocol.handshake_done, HandshakeFailed)
        self.assertEqual(self.handler.names(), ["link_up"])
        self.assertFalse(self.protocol.accepted)

    def test_factory(self):
        """
        L{PeerFactory} builds protocols with its handler, clock, direction
        and time-out.
        """
        handler = RecordingHandler()
        clock = Clock()
        protocol = PeerFactory(handler, clock, True, 3.0).buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.assertTrue(protocol.outbound)
        clock.advance(3.0)
        self.assertFalse(transport.connected)
        self.failureResultOf(protocol.handshake_done, HandshakeFailed)


class OutboundHandshakeTests(PeerTestCase):
    """
    The connecting side speaks only after the listener's hello.
    """

    def test_waits_for_listener_hello(self):
        """
        An outbound link writes nothing until the listener's hello
        arrives, then answers with its own hello and is accepted.
        """
        self.connect(outbound=True)
        self.assertEqual(self.transport.value(), b"")
        self.protocol.dataReceived(encode(BOB_HELLO))
        self.assertEqual([frame["type"] for frame in self.written()], ["hello"])
        self.assertTrue(self.protocol.accepted)

    def test_silent_to_a_non_peer(self):
        """
        An outbound link to something that does not speak the protocol
        (a console port, say) is closed without writing a single byte, so
        nothing of ours is taken for text there.
        """
        self.connect(outbound=True)
        self.protocol.dataReceived(b"p2pchat: you are alice (12345678); type /help\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.assertFalse(self.transport.connected)
        self.assertFalse(self.handler.calls)

    def test_refusal_after_hello_is_explained(self):
        """
        When the handler refuses the listener (say, it is this node), the
        outbound side has sent its hello and then an error frame naming
        the reason.
        """
        self.connect(RecordingHandler(refusal="connected to self"), outbound=True)
        self.protocol.dataReceived(encode(BOB_HELLO))
        self.assertEqual([frame["type"] for frame in self.written()], ["hello", "error"])
        self.assertClosedWithError("connected to self")


class BadInputTests(PeerTestCase):
    """
    Malformed input closes the link with an error and reaches nobody.
    """

    def assertRejected(self, data, reason_part):
        self.accept()
        self.protocol.dataReceived(data)
        self.assertClosedWithError(reason_part)
        self.assertNotIn("rx_frame", self.handler.names())
        self.assertEqual(self.handler.names(), ["link_up", "link_misbehaved", "link_down"])
        warnings = [
            event for event in self.log_events
            if event["log_format"].startswith("closing link")
        ]
        self.assertEqual(len(warnings), 1)
        self.assertIn(reason_part, warnings[0]["reason"])

    def test_malformed_json(self):
        """
        A line that is not JSON closes the link.
        """
        self.assertRejected(b'{"type": "entry", \n', "not valid JSON")

    def test_unknown_type(self):
        """
        A frame of unknown type closes the link.
        """
        self.assertRejected(b'{"type": "gossiping"}\n', "unknown frame type")

    def test_not_utf8(self):
        """
        A line that is not UTF-8 closes the link.
        """
        self.assertRejected(b'{"type": "entry", "entry": {"\xff": 1}}\n', "UTF-8")

    def test_line_too_long(self):
        """
        MAX_LENGTH + 1 bytes without a newline close the link without
        waiting for the rest of the line.
        """
        self.assertRejected(
            b"x" * (PeerProtocol.MAX_LENGTH + 1), "line longer than"
        )

    def test_line_too_long_in_pieces(self):
        """
        An over-long line is caught even when it arrives in small pieces.
        """
        self.accept()
        for _ in range(PeerProtocol.MAX_LENGTH // 4096):
            self.protocol.dataReceived(b"x" * 4096)
        self.assertTrue(self.transport.connected)
        self.protocol.dataReceived(b"x")
        self.assertClosedWithError("line longer than")

    def test_nothing_after_close(self):
        """
        Frames that arrive in the same chunk after a bad line are ignored.
        """
        self.accept()
        self.protocol.dataReceived(
            b"garbage\n" + encode(wire.entry_frame({"x": 1}), {"type": "ping"})
        )
        self.assertClosedWithError("not valid JSON")
        self.assertEqual(len(self.written()), 1)
        self.assertNotIn("rx_frame", self.handler.names())


class AcceptedLinkTests(PeerTestCase):
    """
    Behaviour of a link after the handshake.
    """

    def test_ping_pong(self):
        """
        A ping is answered with a pong; a pong is answered with nothing.
        """
        self.accept()
        self.protocol.dataReceived(encode({"type": "ping"}))
        self.assertEqual(self.written(), [{"type": "pong"}])
        self.transport.clear()
        self.protocol.dataReceived(encode({"type": "pong"}))
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.handler.names(), ["link_up"])

    def test_crlf_and_empty_lines(self):
        """
        C{\\r\\n} line endings are accepted and empty (or blank) lines are
        ignored.
        """
        self.connect()
        self.protocol.dataReceived(
            b"\r\n\n  \r\n" + encode(BOB_HELLO, {"type": "ping"}, delimiter=b"\r\n")
        )
        self.assertTrue(self.protocol.accepted)
        self.assertEqual(self.written()[-1], {"type": "pong"})
        self.assertTrue(self.transport.connected)

    def test_entry_goes_to_handler(self):
        """
        An entry frame on an accepted link is handed to rx_frame as parsed.
        """
        self.accept()
        frame = wire.entry_frame({"not": "verified here"})
        self.protocol.dataReceived(encode(frame))
        # Unparsed: its line is parsed later, off the reactor thread.
        raw = RawEntry(encode(frame).rstrip(b"\n"), False)
        self.assertEqual(self.handler.calls[1:], [("rx_frame", {"type": "entry", "entry": raw})])
        self.assertEqual(raw.load(), frame["entry"])

    def test_link_down_once(self):
        """
        Losing an accepted link calls link_down exactly once, even if the
        loss is reported twice.
        """
        self.accept()
        self.transport.loseConnection()
        self.protocol.connectionLost(None)
        self.assertEqual(
            self.handler.calls[1:], [("link_down", BOB.node_id)]
        )
        self.assertFalse(self.protocol.accepted)

    def test_bye(self):
        """
        A bye closes the link quietly, without an error frame.
        """
        self.accept()
        self.protocol.dataReceived(encode({"type": "bye"}))
        self.assertFalse(self.transport.connected)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.handler.names(), ["link_up", "link_down"])

    def test_leave(self):
        """
        L{PeerProtocol.leave} sends bye and closes; later sends are dropped.
        """
        self.accept()
        self.protocol.leave()
        self.protocol.send_frame({"type": "ping"})
        self.assertEqual(self.written(), [{"type": "bye"}])
        self.assertFalse(self.transport.connected)


def valid_stream():
    """
    A byte stream a well-behaved peer might send: its hello, then entry
    frames, pings, pongs, blank lines, CRLF and LF line endings.
    """
    frames = [wire.entry_frame({"n": n, "text": "\u00e9\U0001f600"}) for n in range(4)]
    return (
        encode(BOB_HELLO)
        + encode(frames[0], {"type": "ping"})
        + b"\n\r\n"
        + encode(frames[1], delimiter=b"\r\n")
        + encode({"type": "pong"}, frames[2], frames[3])
    )


class StreamPropertyTests(PeerTestCase):
    """
    Properties of the protocol over arbitrary byte streams.
    """

    def feed(self, chunks):
        """
        Connect a fresh protocol and feed it C{chunks} one by one.

        @return: the handler's calls and the bytes written after the hello.
        """
        self.connect()
        self.transport.clear()
        for chunk in chunks:
            self.protocol.dataReceived(chunk)
        return self.handler.calls, self.transport.value()

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.integers(min_value=0, max_value=len(valid_stream())), max_size=20)
    )
    def test_any_chunking(self, cuts):
        """
        Splitting the stream at any byte positions gives the same handler
        calls and replies as feeding it in one piece.
        """
        stream = valid_stream()
        positions = [0] + sorted(cuts) + [len(stream)]
        chunks = [stream[a:b] for a, b in zip(positions, positions[1:])]
        whole = self.feed([stream])
        self.assertEqual(self.feed(chunks), whole)
        self.assertEqual(
            [call[0] for call in whole[0]], ["link_up"] + ["rx_frame"] * 4
        )
        self.assertEqual(whole[1], encode({"type": "pong"}))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(strategies.garbage_bytes() | strategies.json_lines(), max_size=8))
    def test_garbage_never_raises(self, chunks):
        """
        Arbitrary bytes after the handshake never raise out of
        dataReceived, and whatever reaches rx_frame is a frame the protocol
        leaves to its handler (an entry frame carries an object).
        """
        self.accept()
        for chunk in chunks:
            self.protocol.dataReceived(chunk + b"\n")
        handled_by_protocol = {"hello", "error", "ping", "pong", "bye"}
        for call in self.handler.calls[1:]:
            if call[0] == "rx_frame":
                frame = call[1]
                self.assertIsInstance(frame, dict)
                self.assertIn(frame["type"], set(wire.FRAME_CHECKS) - handled_by_protocol)
                if frame["type"] == "entry" and not isinstance(frame["entry"], RawEntry):
                    self.assertIsInstance(frame["entry"], dict)
            else:
                self.assertIn(call, [("link_down", BOB.node_id), ("link_misbehaved", BOB.node_id)])
        if self.transport.connected:
            self.assertNotIn("error", [f["type"] for f in self.written()])


class ConnectedPairTests(SynchronousTestCase):
    """
    Two protocols talking to each other through L{iosim}.
    """

    def test_handshake(self):
        """
        Two connected protocols exchange hellos: both accept the link and
        each handler sees the other's id, name and address.
        """
        alice = RecordingHandler(ALICE.node_id, "alice")
        bob = RecordingHandler(BOB.node_id, "bob")
        clock = Clock()
        client, server, pump = connectedServerAndClient(
            lambda: PeerProtocol(bob, clock, False, TIMEOUT_S),
            lambda: PeerProtocol(alice, clock, True, TIMEOUT_S),
            greet=False,
        )
        pump.flush()
        self.assertTrue(client.accepted)
        self.assertTrue(server.accepted)
        self.assertIs(self.successResultOf(server.handshake_done), server)
        # The connecting side counts the link as made once the listener
        # shows it took our hello: its first frame after it.
        self.assertNoResult(client.handshake_done)
        server.send_frame({"type": "ping"})
        pump.flush()
        self.assertIs(self.successResultOf(client.handshake_done), client)
        self.assertEqual(
            alice.calls, [("link_up", BOB.node_id, "bob", "127.0.0.1:9090")]
        )
        self.assertEqual(
            bob.calls, [("link_up", ALICE.node_id, "alice", "127.0.0.1:9090")]
        )
        self.assertEqual(handshake_timers(clock), [])

        client.send_frame(wire.entry_frame({"n": 1}))
        pump.flush()
        # The entry's line is parsed later, off the reactor thread.
        name, frame = bob.calls[-1]
        self.assertEqual((name, frame["entry"].load()), ("rx_frame", {"n": 1}))

        client.leave()
        pump.flush()
        self.assertEqual(alice.calls[-1], ("link_down", BOB.node_id))
        self.assertEqual(bob.calls[-1], ("link_down", ALICE.node_id))


class KeepaliveTests(PeerTestCase):
    """
    Idle links send pings; silent links are closed.
    """

    def test_idle_link_pings(self):
        """
        An accepted link that has sent nothing for the keep-alive interval
        sends a ping; one that keeps talking does not.
        """
        self.accept()
        self.clock.advance(KEEPALIVE_INTERVAL_S)
        self.assertEqual(self.written(), [{"type": "ping"}])
        self.transport.clear()
        self.protocol.dataReceived(encode({"type": "pong"}))
        self.clock.advance(KEEPALIVE_INTERVAL_S / 2)
        self.protocol.send_frame({"type": "ping"})
        self.transport.clear()
        self.clock.advance(KEEPALIVE_INTERVAL_S / 2)
        self.assertEqual(self.written(), [])
        self.assertTrue(self.transport.connected)

    def test_silent_peer_is_dropped(self):
        """
        A peer that sends nothing for the idle time-out is closed with an
        error saying so; one that answers pings stays.
        """
        self.accept()
        for _ in range(int(IDLE_TIMEOUT_S / KEEPALIVE_INTERVAL_S) - 1):
            self.clock.advance(KEEPALIVE_INTERVAL_S)
            self.protocol.dataReceived(encode({"type": "pong"}))
        self.assertTrue(self.transport.connected)
        self.clock.advance(IDLE_TIMEOUT_S)
        self.assertClosedWithError("silent for")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ClosingWithProducerTests(PeerTestCase):
    """
    A link whose transport has a producer registered (the node's entry
    streamer) still closes.
    """

    def test_leave_unregisters_producer(self):
        """
        leave() unregisters the link's producer before losing the
        connection: Twisted does not close a transport while one is
        registered.
        """
        self.accept()
        self.protocol.set_producer(object())
        self.protocol.leave()
        self.assertIsNone(self.transport.producer)
        self.assertFalse(self.transport.connected)

    def test_close_unregisters_producer(self):
        """
        close() (bad input, time-outs, refusals) does the same.
        """
        self.accept()
        self.protocol.set_producer(object())
        self.protocol.close("testing")
        self.assertIsNone(self.transport.producer)
        self.assertClosedWithError("testing")

    def test_failing_lost_callback_does_not_stop_link_down(self):
        """
        A link-lost callback that raises is logged; the others run, and the
        handler still hears link_down.
        """
        self.accept()
        heard = []

        def broken(reason):
            raise RuntimeError("broken callback")

        self.protocol.notify_on_lost(broken)
        self.protocol.notify_on_lost(heard.append)
        self.transport.loseConnection()
        self.assertEqual(len(heard), 1)
        self.assertEqual(self.handler.names(), ["link_up", "link_down"])
        failures = [e for e in self.log_events if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertIsInstance(failures[0]["log_failure"].value, RuntimeError)


class SyncBudgetTests(PeerTestCase):
    """
    Entries marked sync get the catch-up budget only when this node asked.
    """

    def use_budget(self):
        """
        Give the link entry budgets that refill at 1 per second: the live
        burst, and ten times that for catch-up.
        """
        self.accept(entry_budget=lambda clock: EntryBudget(
            clock,
            TokenBucket(1, LIVE_ENTRY_BURST, clock),
            TokenBucket(1, 10 * LIVE_ENTRY_BURST, clock),
        ))

    def entry_frames(self, count, sync):
        return b"".join(
            encode({"type": "entry", "entry": {"n": i}, "sync": sync}) for i in range(count)
        )

    def test_unsolicited_sync_is_charged_as_live(self):
        """
        A peer that marks entries sync without being asked runs out of the
        live burst and is paused.
        """
        self.use_budget()
        self.protocol.dataReceived(self.entry_frames(LIVE_ENTRY_BURST + 1, True))
        self.assertTrue(self.protocol.paused)

    def test_solicited_sync_uses_catch_up_budget(self):
        """
        Within the window after expect_sync, sync entries are charged to
        the catch-up bucket.
        """
        self.use_budget()
        self.protocol.expect_sync()
        self.protocol.dataReceived(self.entry_frames(LIVE_ENTRY_BURST + 1, True))
        self.assertFalse(self.protocol.paused)

