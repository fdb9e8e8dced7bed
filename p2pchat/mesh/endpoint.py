# -*- test-case-name: tests.unit.test_reconnect -*-
"""
A client endpoint for links: a connection counts only once its hello
handshake has succeeded, so a dialer (the node's L{p2pchat.mesh.dialer.Dialer},
or L{twisted.application.internet.ClientService}) backs off from a peer that
refuses or breaks the handshake.
"""

from typing import List

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pchat.mesh.factory import PeerFactory
from p2pchat.mesh.peer import PeerProtocol


class LinkHandle(Protocol):
    """
    What a L{HandshakeEndpoint} gives its caller for an accepted link: a
    protocol that shares the link's transport (so closing it closes the
    link) and hears of the link's loss, but never sees its bytes.

    """

    def link_made(self, link: "PeerProtocol") -> None:
        """
        The link this handle stands for was accepted (just after
        C{makeConnection}).
        """

    def link_lost(self, link: "PeerProtocol") -> None:
        """
        The link this handle stands for closed (just before
        C{connectionLost}); C{link} tells how (e.g. C{link.remote_error}).
        """


@implementer(IStreamClientEndpoint)
class HandshakeEndpoint:
    """
    A client endpoint whose connections count only once the hello handshake
    has succeeded.

    Given to L{twisted.application.internet.ClientService}, it makes a
    refused or broken handshake a I{failed attempt} (so the service backs
    off further) instead of a connection that drops while
    C{prepareConnection} is pending, which C{ClientService}'s state machine
    does not handle.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        peer_factory: PeerFactory,
        description: str = "a peer",
    ):
        """
        @param endpoint: the transport endpoint (TCP, TLS ...).
        @param peer_factory: builds the L{PeerProtocol} that runs the link.
        @param description: where it connects, in words (C{HOST:PORT}).
        """
        self._endpoint = endpoint
        self._peer_factory = peer_factory
        self._description = description

    def __repr__(self) -> str:
        # ClientService logs its endpoint ("Scheduling retry ..."): words,
        # not the nested reprs of Twisted's endpoints.
        return f"<HandshakeEndpoint to {self._description}>"

    def connect(self, factory: Factory) -> Deferred:
        """
        Connect, run the handshake, then build C{factory}'s protocol on the
        link's transport.

        @return: a L{Deferred} firing with that protocol, or failing with
            the connection error or L{HandshakeFailed}; cancelling it
            aborts the attempt.
        """
        links: List[PeerProtocol] = []

        def cancel(result: Deferred) -> None:
            if links:
                links[0].transport.abortConnection()
            else:
                attempt.cancel()

        def connected(link: PeerProtocol) -> Deferred:
            links.append(link)
            return link.handshake_done

        def accepted(link: PeerProtocol) -> Protocol:
            handle = factory.buildProtocol(link.transport.getPeer())
            handle.makeConnection(link.transport)
            handle.link_made(link)

            def lost(reason: Failure) -> None:
                # The handle may be wrapped (ClientService wraps it in a
                # proxy that forwards method lookups but not attribute
                # assignments), so the link is passed, not stored on it.
                handle.link_lost(link)
                handle.connectionLost(reason)

            link.notify_on_lost(lost)
            return handle

        result = Deferred(cancel)
        attempt = self._endpoint.connect(self._peer_factory)
        attempt.addCallback(connected).addCallback(accepted).chainDeferred(result)
        return result
