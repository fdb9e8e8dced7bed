# -*- test-case-name: tests.unit.test_service,tests.integration.test_dialer_processes -*-
"""
L{NodeHolder}: the child of L{p2pchat.service.NodeService} that builds the
chat node from the configuration when it starts (identity, TLS files,
L{ChatNode} and its one L{Dialer}), and stops it: the node says goodbye on
every link, then the dialer stops.
"""

from typing import Dict, Optional

from twisted.application.service import MultiService
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Factory

from p2pchat.addresses import PeerAddress
from p2pchat.chat.node import ChatNode
from p2pchat.log.identity import Identity
from p2pchat.log.verifier import threaded_verifier
from p2pchat.mesh.dialer import Dialer
from p2pchat.mesh.endpoint import HandshakeEndpoint, LinkHandle
from p2pchat.mesh.factory import PeerFactory
from p2pchat.mesh.membership import MembershipConfig
from p2pchat.mesh.peer import PeerProtocol
from p2pchat.startup import StartupError
from p2pchat.trust.attest import Attestations, attestation_body
from p2pchat.trust.tls import (
    PeerTLS,
    TLSConfigError,
    certificate_names,
    load_tls_files,
    names_member,
)


class _DialHandle(LinkHandle):
    """
    The handle of a link the L{Dialer} opened: keeps the link, and tells
    the dialer when it closes.
    """

    def link_made(self, link: PeerProtocol) -> None:
        self.factory.made[self] = link

    def link_lost(self, link: PeerProtocol) -> None:
        self.factory.made.pop(self, None)
        self.factory.dialer.lost(self.factory.address, link.remote_error is not None)


class _DialFactory(Factory):
    """
    Builds the L{_DialHandle} of one attempt to one address.
    """

    protocol = _DialHandle
    noisy = False

    def __init__(self, dialer: Dialer, address: PeerAddress):
        self.dialer = dialer
        self.address = address
        self.made: Dict[_DialHandle, PeerProtocol] = {}


class NodeHolder(MultiService):
    """
    Holds the L{ChatNode} while the node runs.

    @ivar node: the L{ChatNode} once started, else L{None}.
    @ivar tls: the loaded L{PeerTLS} settings, or L{None} for a plain node.
    """

    def __init__(self, service):
        """
        @param service: the L{p2pchat.service.NodeService}: its config,
            reactor, metrics, store, C{connect} and C{dial}.
        """
        super().__init__()
        self.setName("node")
        self._service = service
        self.node: Optional[ChatNode] = None
        self.tls: Optional[PeerTLS] = None
        self.dialer: Optional[Dialer] = None

    def startService(self) -> None:
        """
        @raise StartupError: if the identity or the TLS files cannot be
            used, or C{--name} is not a name in the TLS certificate.
        """
        service = self._service
        config, reactor = service.config, service.reactor
        try:
            identity = Identity.load_or_create(config.data_dir)
        except (OSError, ValueError) as e:
            raise StartupError(f"cannot load identity: {e}") from None
        attestations = attest = None
        if config.tls is not None:
            try:
                self.tls = PeerTLS.load(config.tls)
                key, leaf, _, authorities = load_tls_files(config.tls)
            except TLSConfigError as e:
                raise StartupError(f"cannot use the TLS files: {e}") from None
            if not names_member(leaf, config.name):
                names = ", ".join(certificate_names(leaf)[:5])
                raise StartupError(
                    f"--name {config.name} is not a name in the TLS certificate "
                    f"{config.tls.cert} (it names {names}): peers would refuse every link; "
                    "give --name as in the certificate"
                )
            attestations = Attestations([ca.to_cryptography() for ca in authorities])

            def attest(node_id: str, name: str) -> dict:
                return attestation_body(key, leaf, node_id, name)
        self.node = ChatNode(
            identity,
            service.store,
            config.name,
            reactor,
            advertised_address=None,
            port=config.port,
            connect=self.connect,
            disconnect=self.disconnect,
            metrics=service.metrics,
            membership=MembershipConfig(
                max_links=config.max_links,
                failure_timeout_s=config.failure_timeout_s,
                hidden=config.hidden,
            ),
            dial=self.dial,
            attestations=attestations,
            attest=attest,
            verifier=threaded_verifier(reactor),
        )
        links = self.node.links
        self.dialer = Dialer(
            reactor,
            self._attempt,
            lambda address: bool(links.at(address)),
            lambda: len(links),
            lambda address: links.close_at(address, "disconnected by this node's user"),
            linked_peer=lambda node_id: links.link_to(node_id) is not None,
            own_id=self.node.node_id,
        )
        service.metrics.collect_from(self.node.metrics_status)
        self.node.start()
        for room in config.rooms:  # --room: join at start (nothing if already in)
            self.node.chat.rooms.join(room)
        self.node.on_change = service.node_changed
        super().startService()

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop the node (it takes no more entries or links, commits what is
        queued and says goodbye on every link), then the dialer, waiting
        for the links it opened to close.
        """
        if self.node is not None:
            self.node.stop()
        if self.dialer is not None:
            # Like the ClientService dialers before it: wait until the
            # links it opened have closed (after their goodbye).
            yield self.dialer.stop()
        yield super().stopService()

    def connect(self, address: PeerAddress) -> bool:
        """
        Keep dialling C{address} (a C{--peer} or C{/connect} seed) with
        back-off until the node has other links.

        @return: C{False} if C{address} is already kept, linked or being
            dialled.
        """
        return self.dialer.keep(address)

    def disconnect(self, address: PeerAddress) -> bool:
        """
        Stop dialling C{address} and close the links at it.

        @return: whether there was anything to stop or close.
        """
        return self.dialer.drop(address)

    def dial(self, address: PeerAddress) -> None:
        """
        Try once to open a link to C{address} (membership keeps the active
        view full this way; it decides about retries itself, and the
        dialer's back-off holds for it too).
        """
        if self.node is None or self.node.stopping or self.dialer is None:
            return
        self.dialer.dial(address)

    def _attempt(self, address: PeerAddress) -> defer.Deferred:
        factory = _DialFactory(self.dialer, address)
        attempt = self._link_endpoint(address).connect(factory)
        return attempt.addCallback(lambda handle: factory.made[handle])

    def _link_endpoint(self, address: PeerAddress) -> HandshakeEndpoint:
        reactor, tls = self._service.reactor, self.tls
        if tls is None:
            endpoint = endpoints.HostnameEndpoint(reactor, address.host, address.port, timeout=10)
        else:
            endpoint = tls.client_endpoint(reactor, address.host, address.port, 10)
        factory = PeerFactory(
            self.node.links, reactor, outbound=True,
            handshake_timeout_s=self._service.config.handshake_timeout_s,
        )
        return HandshakeEndpoint(endpoint, factory, str(address))
