# -*- test-case-name: tests.integration.test_service -*-
"""
L{NodeHolder}: the child of L{p2pchat.service.NodeService} that builds the
chat node from the configuration when it starts (identity, TLS files,
L{ChatNode}), and stops it: the node says goodbye on every link, then the
dialers this service holds as children stop.
"""

from typing import Dict, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from p2pchat.addresses import PeerAddress
from p2pchat.chat.node import ChatNode
from p2pchat.log.identity import Identity
from p2pchat.log.verifier import threaded_verifier
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

log = Logger()


class _SeedHandle(LinkHandle):
    """
    The handle of a link kept to a --peer or /connect address; tells the
    service when it closes.
    """

    def link_lost(self, link: PeerProtocol) -> None:
        self.factory.holder.seed_lost(self.factory.address, link)


class _SeedFactory(Factory):
    """
    Builds L{_SeedHandle}s for one seed address.
    """

    protocol = _SeedHandle
    noisy = False

    def __init__(self, holder: "NodeHolder", address: PeerAddress):
        self.holder = holder
        self.address = address


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
        self._outbound: Dict[PeerAddress, ClientService] = {}
        self._refusals: Dict[PeerAddress, int] = {}

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
        service.metrics.collect_from(self.node.metrics_status)
        self.node.start()
        self.node.on_change = service.node_changed
        super().startService()

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop the node (it takes no more entries or links, commits what is
        queued and says goodbye on every link), then the dialers.
        """
        if self.node is not None:
            self.node.stop()
        yield super().stopService()

    def connect(self, address: PeerAddress) -> bool:
        """
        Keep a link open to C{address}, reconnecting with exponential
        backoff when it drops or cannot be made.

        @return: C{False} if this node already keeps a link to C{address}.
        """
        if address in self._outbound:
            return False
        refusals = self._refusals
        refusals[address] = 0
        backoff = backoffPolicy(initialDelay=0.5, maxDelay=30.0)
        service = ClientService(
            self._link_endpoint(address),
            _SeedFactory(self, address),
            # A link the peer refused after the hello counts as a failed
            # attempt too, so a node that keeps refusing us (wrong name,
            # too many links) is retried less and less often.
            retryPolicy=lambda attempt: backoff(attempt + refusals.get(address, 0)),
            clock=self._service.reactor,
        )
        self._outbound[address] = service
        service.setServiceParent(self)
        return True

    def seed_lost(self, address: PeerAddress, link: PeerProtocol) -> None:
        """
        The link kept to a --peer or /connect address closed.  If the peer
        refused it, back off further.  If this node has other links, the
        seed has done its job (membership now knows the network and keeps
        links itself), so stop redialling it; otherwise keep trying.
        """
        if link.remote_error is not None:
            self._refusals[address] = self._refusals.get(address, 0) + 1
        else:
            self._refusals[address] = 0
        if self.node is not None and self.node.links and not self.node.stopping:
            self._service.reactor.callLater(0, self._stop_seed, address)

    def _stop_seed(self, address: PeerAddress) -> None:
        # Checked again now that the closed link is gone: if it was the
        # node's only link, keep redialling.
        if self.node is None or not self.node.links:
            return
        service = self._outbound.pop(address, None)
        self._refusals.pop(address, None)
        if service is not None and self.running:
            service.disownServiceParent()
            log.info(
                "stopped redialling {address}: the node has other links now",
                address=str(address),
            )

    def dial(self, address: PeerAddress) -> None:
        """
        Try once to open a link to C{address} (membership keeps the active
        view full this way; it decides about retries itself).
        """
        if self.node is None or self.node.stopping:
            return
        attempt = self._link_endpoint(address).connect(Factory.forProtocol(LinkHandle))
        attempt.addErrback(
            lambda failure: log.info(
                "could not link to {address}: {reason}",
                address=str(address),
                reason=failure.getErrorMessage(),
            )
        )

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
        return HandshakeEndpoint(endpoint, factory)
