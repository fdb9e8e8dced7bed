"""
Tests for L{p2pchat.mesh.endpoint.HandshakeEndpoint} under L{ClientService}: only
handshaken links count as connections, refused ones back off.
"""

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError, succeed
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.mesh.endpoint import HandshakeEndpoint, LinkHandle
from p2pchat.mesh.factory import PeerFactory


class AcceptingHandler:
    """
    A peer handler that accepts every link unless told a refusal.
    """

    def __init__(self, refusal=None):
        self.node_id = Identity.generate().node_id
        self.refusal = refusal
        self.up = []

    def local_hello(self):
        return wire.hello(self.node_id, "me", None)

    def link_up(self, link):
        if self.refusal is None:
            self.up.append(link)
        return self.refusal

    def link_down(self, link):
        self.up.remove(link)

    def rx_frame(self, link, frame):
        pass

    def link_misbehaved(self, link):
        pass


class StubEndpoint:
    """
    An endpoint that "connects" at once over a L{StringTransport}.
    """

    def __init__(self):
        self.links = []

    def connect(self, factory):
        link = factory.buildProtocol(None)
        link.makeConnection(StringTransport())
        self.links.append(link)
        return succeed(link)


def their_hello():
    return wire.encode_frame(wire.hello(Identity.generate().node_id, "them", None)) + b"\n"


def their_welcome():
    """
    The listener's hello and then its first frame after taking ours (a
    real node sends its summary and gossip at once; any frame will do).
    """
    return their_hello() + wire.encode_frame({"type": "ping"}) + b"\n"


class HandshakeEndpointTests(SynchronousTestCase):
    """
    L{ClientService} over a L{HandshakeEndpoint}.
    """

    def service(self, handler):
        self.clock = Clock()
        self.endpoint = StubEndpoint()
        peer_factory = PeerFactory(handler, self.clock, outbound=True, handshake_timeout_s=5)
        service = ClientService(
            HandshakeEndpoint(self.endpoint, peer_factory),
            Factory.forProtocol(LinkHandle),
            retryPolicy=backoffPolicy(initialDelay=1.0, factor=2.0, jitter=lambda: 0),
            clock=self.clock,
        )
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def test_connected_only_after_hello(self):
        """
        The service reports a connection only once the peer's hello is
        accepted and the peer has shown that it took ours (its first frame
        after it), and closing it closes the link.
        """
        handler = AcceptingHandler()
        service = self.service(handler)
        connected = service.whenConnected()
        self.assertNoResult(connected)
        link = self.endpoint.links[0]
        link.dataReceived(their_hello())
        self.assertNoResult(connected)
        link.dataReceived(wire.encode_frame({"type": "ping"}) + b"\n")
        handle = self.successResultOf(connected)
        self.assertIsInstance(handle, LinkHandle)
        self.assertEqual(handler.up, [link])
        handle.transport.loseConnection()
        self.assertTrue(link.transport.disconnecting)

    def test_refused_handshake_backs_off_without_errors(self):
        """
        A refused handshake is a failed attempt: retries wait 2, 4, 8 s
        (growing), and nothing is logged as an unhandled error.
        """
        service = self.service(AcceptingHandler(refusal="connected to self"))
        delays = []
        for _attempt in range(3):
            link = self.endpoint.links[-1]
            link.dataReceived(their_hello())
            link.connectionLost(None)
            (call,) = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [2.0, 4.0, 8.0])
        self.assertEqual(len(self.endpoint.links), 4)
        self.assertEqual(self.flushLoggedErrors(), [])
        waiting = service.whenConnected()
        self.assertNoResult(waiting)
        service.stopService()
        self.failureResultOf(waiting, CancelledError)

    def test_listener_refusing_after_our_hello_backs_off(self):
        """
        A full listener takes our hello and then refuses the link with an
        error: that is a failed attempt too (the retries wait 2, 4, 8 s),
        not a connection that resets the back-off and redials at once.
        """
        service = self.service(AcceptingHandler())
        refusal = wire.encode_frame(wire.error("this node has all the links it wants")) + b"\n"
        delays = []
        for _attempt in range(3):
            link = self.endpoint.links[-1]
            link.dataReceived(their_hello() + refusal)
            link.connectionLost(None)
            (call,) = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [2.0, 4.0, 8.0])
        self.assertEqual(self.flushLoggedErrors(), [])
        waiting = service.whenConnected()
        self.assertNoResult(waiting)
        service.stopService()
        self.failureResultOf(waiting, CancelledError)

    def test_silent_peer_times_out_and_retries(self):
        """
        A peer that never says hello is dropped at the handshake time-out
        and the service tries again later.
        """
        self.service(AcceptingHandler())
        link = self.endpoint.links[0]
        self.clock.advance(5)
        self.assertTrue(link.transport.disconnecting)
        link.connectionLost(None)
        self.clock.advance(2.0)
        self.assertEqual(len(self.endpoint.links), 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_lost_link_reconnects(self):
        """
        When an accepted link drops, the service connects again.
        """
        handler = AcceptingHandler()
        service = self.service(handler)
        self.endpoint.links[0].dataReceived(their_welcome())
        self.successResultOf(service.whenConnected())
        self.endpoint.links[0].connectionLost(None)
        self.assertEqual(handler.up, [])
        self.clock.advance(2.0)
        self.assertEqual(len(self.endpoint.links), 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_handle_hears_which_link_was_lost(self):
        """
        Through ClientService's protocol proxy, the handle's link_lost
        gets the link that closed (with what the peer said), before the
        service hears of the loss.
        """
        lost = []

        class Handle(LinkHandle):
            def link_lost(self, link):
                lost.append((link, link.remote_error))

        self.clock = Clock()
        self.endpoint = StubEndpoint()
        peer_factory = PeerFactory(AcceptingHandler(), self.clock, outbound=True,
                                   handshake_timeout_s=5)
        service = ClientService(HandshakeEndpoint(self.endpoint, peer_factory),
                                Factory.forProtocol(Handle), clock=self.clock)
        service.startService()
        self.addCleanup(service.stopService)
        link = self.endpoint.links[0]
        link.dataReceived(their_welcome())
        self.successResultOf(service.whenConnected())
        link.dataReceived(wire.encode_frame(wire.error("go away")) + b"\n")
        link.connectionLost(None)
        self.assertEqual(lost, [(link, "go away")])
        self.assertEqual(self.flushLoggedErrors(), [])

