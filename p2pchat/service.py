"""
L{NodeService}: the running node as a Twisted service.

Its constructor only remembers the configuration.  C{startService} creates
the data directory, loads the identity, opens the store, starts the peer
listener, the console listener, the terminal console and one reconnecting
L{ClientService} per configured peer.  C{stopService} says goodbye to the
peers, flushes the store and closes everything.
"""

import os
import signal
import stat
import threading
from functools import partial
from typing import Dict, List, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pchat.chat.node import ChatNode
from p2pchat.config import NodeConfig, PeerAddress
from p2pchat.faces.console import ConsoleProtocol
from p2pchat.faces.manhole import listens_beyond_loopback, manhole_service
from p2pchat.faces.telnet import TelnetConsoleFactory
from p2pchat.faces.terminal import log_beside_screen, stdio_console
from p2pchat.log.identity import Identity, short_id
from p2pchat.log.store import Store
from p2pchat.log.verifier import threaded_verifier
from p2pchat.mesh.endpoint import HandshakeEndpoint, LinkHandle
from p2pchat.mesh.factory import PeerFactory
from p2pchat.mesh.membership import MembershipConfig
from p2pchat.mesh.peer import PeerProtocol
from p2pchat.ops import activation
from p2pchat.ops.logs import observer_for, use_log_format
from p2pchat.ops.metrics import Metrics, metrics_site
from p2pchat.ops.sdnotify import Notifier, NotifyError
from p2pchat.trust.attest import Attestations, attestation_body
from p2pchat.trust.tls import PeerTLS, TLSConfigError, load_tls_files

STORE_FILE_NAME = "p2pchat.sqlite3"
READY_TIMEOUT_S = 5.0
STATUS_INTERVAL_S = 1.0
log = Logger()


class StartupError(Exception):
    """
    The node cannot start; C{str(error)} says why in one line.
    """


def ensure_data_dir(path: str) -> None:
    """
    Create the data directory (mode 0700) if needed and check that it is a
    writable directory.

    @raise StartupError: if it cannot be created or written.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise StartupError(f"cannot create data dir {path}: {e.strerror}") from None
    if not os.path.isdir(path):
        raise StartupError(f"data dir {path} is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise StartupError(f"data dir {path} is not readable and writable")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warn(
            "data dir {path} has mode {mode:o}: others on this machine may read "
            "its messages; chmod 700 it",
            path=path,
            mode=mode,
        )


def _server_endpoint(reactor, description: str, what: str):
    """
    Build a server endpoint, turning whatever its parser raises (a missing
    key file for C{ssl:}, no inherited socket for C{systemd:}) into a
    L{StartupError}.
    """
    try:
        return activation.server_endpoint(reactor, description)
    except Exception as e:
        raise StartupError(f"cannot listen for {what} on {description}: {e!r}") from None


def _listen_now(endpoint, factory):
    """
    Listen on C{endpoint}; return the port, or raise L{StartupError} if
    listening failed at once (as it does for TCP, SSL and systemd
    endpoints).
    """
    outcome: List[object] = []
    endpoint.listen(factory).addBoth(outcome.append)
    if not outcome:
        raise StartupError(f"{endpoint} did not start listening at once")
    if isinstance(outcome[0], Failure):
        raise StartupError(outcome[0].getErrorMessage())
    return outcome[0]


def _describe_port(port) -> str:
    """
    @return: C{host:port} where C{port} listens, or C{none}.
    """
    if port is None:
        return "none"
    address = port.getHost()
    if hasattr(address, "port"):
        return f"{address.host}:{address.port}"
    return str(address)


class _SeedHandle(LinkHandle):
    """
    The handle of a link kept to a --peer or /connect address; tells the
    service when it closes.
    """

    def link_lost(self, link: PeerProtocol) -> None:
        self.factory.service._seed_lost(self.factory.address, link)


class _SeedFactory(Factory):
    """
    Builds L{_SeedHandle}s for one seed address.
    """

    protocol = _SeedHandle
    noisy = False

    def __init__(self, service: "NodeService", address: PeerAddress):
        self.service = service
        self.address = address


class ConsoleFactory(Factory):
    """
    Builds a L{ConsoleProtocol} for each TCP console client.
    """

    noisy = False

    def __init__(self, node: ChatNode):
        self.node = node

    def buildProtocol(self, addr):
        return ConsoleProtocol(self.node)


class NodeService(MultiService):
    """
    A p2pchat node.

    @ivar node: the L{ChatNode}, once started.
    @ivar peer_port: the listening peer port object, or C{None}.
    @ivar console_port: the listening console port object, or C{None}.
    """

    log = Logger()

    def __init__(self, config: NodeConfig, reactor=None):
        super().__init__()
        self.config = config
        self._reactor = reactor
        self.node: Optional[ChatNode] = None
        self.store: Optional[Store] = None
        self.peer_port = None
        self.console_port = None
        self.metrics_port = None
        self.metrics = Metrics()
        self.notifier: Optional[Notifier] = None
        self.ready = False
        self._ready_call = None
        self._status_call = None
        self._previous_hup = None
        self._terminal = None
        self._outbound: Dict[PeerAddress, ClientService] = {}
        self._refusals: Dict[PeerAddress, int] = {}

    @property
    def reactor(self):
        """
        The reactor given at construction, else the global one (imported
        only when the service starts).
        """
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def setServiceParent(self, parent):
        """
        Attach to C{parent} (twistd's application), choosing the log format
        there: twistd attaches the service before it starts logging.
        """
        log_beside_screen(
            parent, partial(observer_for, self.config.log_format), self.config.screen_log)
        use_log_format(parent, self.config.log_format)
        return super().setServiceParent(parent)

    def startService(self) -> None:
        config = self.config
        try:
            self._start(config)
        except StartupError as e:
            # One clear line, then exit 1: a traceback would add nothing.
            self.log.critical("p2pchat cannot start: {reason}", reason=str(e))
            self._close_store()
            raise SystemExit(1) from e
        if threading.current_thread() is threading.main_thread():
            self._previous_hup = signal.signal(signal.SIGHUP, self._hangup)
        super().startService()

    def _start(self, config: NodeConfig) -> None:
        reactor = self.reactor
        try:
            self.notifier = Notifier.from_environ(os.environ, reactor)
            if self.notifier is not None:
                self.notifier.start_watchdog(os.environ)
        except NotifyError as e:
            raise StartupError(str(e)) from None
        ensure_data_dir(config.data_dir)
        try:
            identity = Identity.load_or_create(config.data_dir)
        except (OSError, ValueError) as e:
            raise StartupError(f"cannot load identity: {e}") from None
        self.tls = None
        attestations = attest = None
        if config.tls is not None:
            try:
                self.tls = PeerTLS.load(config.tls)
                key, leaf, _, authorities = load_tls_files(config.tls)
            except TLSConfigError as e:
                raise StartupError(f"cannot use the TLS files: {e}") from None
            attestations = Attestations([ca.to_cryptography() for ca in authorities])

            def attest(node_id: str, name: str) -> dict:
                return attestation_body(key, leaf, node_id, name)
        self.store = Store(os.path.join(config.data_dir, STORE_FILE_NAME))
        try:
            self.store.open()
        except Exception as e:
            raise StartupError(f"cannot open store: {e}") from None
        self.node = ChatNode(
            identity,
            self.store,
            config.name,
            reactor,
            advertised_address=None,
            port=config.port,
            connect=self.connect,
            metrics=self.metrics,
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
        self.metrics.collect_from(self.node.metrics_status)
        if config.listen is not None:
            endpoint = self._peer_server_endpoint(config.listen)
            factory = PeerFactory(
                self.node, reactor, outbound=False,
                handshake_timeout_s=config.handshake_timeout_s,
            )
            try:
                self.peer_port = _listen_now(endpoint, factory)
            except StartupError as e:
                raise StartupError(f"cannot listen for peers on {config.listen}: {e}") from None
            bound = getattr(self.peer_port.getHost(), "port", None)
            port = bound or config.port
            self.node.port = port
            if port:
                self.node.advertised_address = str(PeerAddress(config.advertise_host, port))
        if config.console is not None:
            if listens_beyond_loopback(config.console):
                self.log.warn(
                    "the console listens beyond this machine ({console}): anyone who "
                    "reaches it can post and read direct messages as this node",
                    console=config.console,
                )
            endpoint = _server_endpoint(reactor, config.console, "consoles")
            try:
                self.console_port = _listen_now(
                    endpoint, TelnetConsoleFactory(ConsoleFactory(self.node)))
            except StartupError as e:
                raise StartupError(f"cannot listen for consoles on {config.console}: {e}") from None
        if config.metrics is not None:
            endpoint = _server_endpoint(reactor, config.metrics, "metrics")
            try:
                self.metrics_port = _listen_now(endpoint, metrics_site(self.metrics))
            except StartupError as e:
                raise StartupError(f"cannot serve metrics on {config.metrics}: {e}") from None
            self.metrics.start_lag_monitor(reactor)
        if config.manhole is not None:
            try:
                manhole = manhole_service(
                    config.manhole,
                    {"node": self.node, "service": self},
                    keys_file=config.manhole_keys,
                    passwd_file=config.manhole_passwd,
                    reactor=reactor,
                    host_key_dir=config.data_dir,
                )
            except ValueError as e:
                raise StartupError(f"cannot start the manhole: {e}") from None
            manhole.setServiceParent(self)
        self.node.start()
        self.node.on_change = self._changed
        if config.stdio:
            self._terminal = stdio_console(
                self.node, reactor, config.screen, lambda: ConsoleProtocol(self.node))
        for address in config.peers:
            self.connect(address)
        # Log "started" and signal readiness only once the reactor runs:
        # then its signal handlers are in place, so whoever acts on that
        # line (an operator, systemd, a test) can stop the node cleanly.
        reactor.callWhenRunning(self._running, identity)

    def _running(self, identity: Identity) -> None:
        config = self.config
        self.log.info(
            "p2pchat node {name} ({id}) started: peers on {listen}, console on {console}, "
            "{count} messages in {path}",
            name=config.name,
            id=short_id(identity.node_id),
            listen=self.node.advertised_address or "none",
            console=_describe_port(self.console_port),
            count=self.store.count(),
            path=config.data_dir,
        )
        if config.peers and not self.node.links:
            # Ready after the first exchange with a peer, or soon anyway.
            self._ready_call = self.reactor.callLater(READY_TIMEOUT_S, self._become_ready)
        else:
            self._become_ready()

    def _status_text(self) -> str:
        alive = self.node.membership.alive_count()
        return f"{alive} peers alive, {self.store.count()} messages"

    def _become_ready(self) -> None:
        """
        Tell systemd the node is ready: the store is open, the listeners
        are up and (with --peer) a first peer answered or time ran out.
        """
        if self._ready_call is not None and self._ready_call.active():
            self._ready_call.cancel()
        self._ready_call = None
        if not self.ready:
            self.ready = True
            if self.notifier is not None:
                self.notifier.ready(self._status_text())

    def _changed(self) -> None:
        """
        Links or messages changed: become ready on the first link, and send
        systemd a new status line at most once a second.
        """
        if not self.ready and self.node.links:
            self._become_ready()
        if self.notifier is not None and self._status_call is None:
            self._status_call = self.reactor.callLater(STATUS_INTERVAL_S, self._send_status)

    def _send_status(self) -> None:
        self._status_call = None
        if self.store is not None and self.notifier is not None:
            self.notifier.status(self._status_text())

    def _hangup(self, signum=None, frame=None) -> None:
        self.reactor.callFromThread(self._on_hangup)

    def _on_hangup(self) -> None:
        """
        SIGHUP: commit what is queued and keep running.  The configuration
        is not reloaded: it comes from the command line.  With the chat
        screen on a terminal, SIGHUP means the terminal closed: stop.
        """
        if self._terminal is not None:
            self.log.info("SIGHUP: the terminal closed; stopping")
            self._terminal.end_node()
            return
        if self.node is not None:
            self.node.flush()
        self.log.info("SIGHUP: queued entries committed; configuration is not reloaded")

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
            clock=self.reactor,
        )
        self._outbound[address] = service
        service.setServiceParent(self)
        return True

    def _seed_lost(self, address: PeerAddress, link: PeerProtocol) -> None:
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
            self.reactor.callLater(0, self._stop_seed, address)

    def _stop_seed(self, address: PeerAddress) -> None:
        # Checked again now that the closed link is gone: if it was the
        # node's only link, keep redialling.
        if self.node is None or not self.node.links:
            return
        service = self._outbound.pop(address, None)
        self._refusals.pop(address, None)
        if service is not None and self.running:
            service.disownServiceParent()
            self.log.info(
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
            lambda failure: self.log.info(
                "could not link to {address}: {reason}",
                address=str(address),
                reason=failure.getErrorMessage(),
            )
        )

    def _peer_server_endpoint(self, description: str):
        """
        The peer listener: C{description} as given, or with mutual TLS on
        top when the node has TLS files.
        """
        if self.tls is None:
            return _server_endpoint(self.reactor, description, "peers")
        try:
            return self.tls.server_endpoint(self.reactor, description)
        except Exception as e:
            raise StartupError(f"cannot listen for peers on {description}: {e!r}") from None

    def _link_endpoint(self, address: PeerAddress) -> HandshakeEndpoint:
        reactor = self.reactor
        if self.tls is None:
            endpoint = endpoints.HostnameEndpoint(
                reactor, address.host, address.port, timeout=10
            )
        else:
            endpoint = self.tls.client_endpoint(reactor, address.host, address.port, 10)
        factory = PeerFactory(
            self.node, reactor, outbound=True,
            handshake_timeout_s=self.config.handshake_timeout_s,
        )
        return HandshakeEndpoint(endpoint, factory)

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop in an order that loses nothing: stop accepting connections,
        stop the node (it takes no more entries or links, commits what is
        queued and says goodbye on every link), stop the outbound links,
        and only then close the store.
        """
        if self.notifier is not None:
            self.notifier.stopping()
            self.notifier.stop_watchdog()
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        for call in (self._ready_call, self._status_call):
            if call is not None and call.active():
                call.cancel()
        self.metrics.stop_lag_monitor()
        for port in (self.peer_port, self.console_port, self.metrics_port):
            if port is not None:
                yield port.stopListening()
        if self.node is not None:
            self.node.stop()
        yield super().stopService()
        self._close_store()
        if self.notifier is not None:
            self.notifier.close()
        self._exit_cleanly_on_sigterm()
        self.log.info("p2pchat node stopped")

    def _exit_cleanly_on_sigterm(self) -> None:
        """
        SIGTERM is how an operator (or systemd) asks the node to stop; once
        the store is flushed and closed, that is a success.  twistd would
        otherwise re-raise the signal and exit with status -15, so forget
        it (C{_exitSignal} is the reactor's
        C{_ISupportsExitSignalCapturing} attribute).
        """
        if getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
            self.reactor._exitSignal = None

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
