# -*- test-case-name: tests.integration.test_service -*-
"""
L{NodeService}: the running node as a tree of Twisted services.

Its constructor only remembers the configuration and lays out the tree;
twistd starts the children in this order and stops them in the reverse
one, each waiting for the one before:

  0. the line to systemd (L{p2pchat.ops.sdnotify.NotifierService}), when
     run under C{$NOTIFY_SOCKET}: C{STOPPING=1} is sent as the stop
     begins, the watchdog runs until the end;
  1. the data directory (L{p2pchat.startup.DataDirService}: created
     private, locked against a second node);
  2. the store (opened; closed once the node has stopped);
  3. the node (L{NodeHolder}: identity, TLS files, the L{ChatNode} and
     the one L{p2pchat.mesh.dialer.Dialer} of the C{--peer} and
     C{/connect} addresses and membership's dials, stopped after the node
     said goodbye on every link);
  4. the peer, console and metrics listeners (L{ListenerService});
  5. the manhole and the terminal console.
"""

import os
import signal
import threading
from functools import partial
from typing import Dict, Optional

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.error import ReactorNotRunning
from twisted.internet.protocol import Factory
from twisted.logger import Logger

import p2pchat
from p2pchat.config import NodeConfig, PeerAddress
from p2pchat.endpoint_strings import listens_beyond_loopback
from p2pchat.faces.console import ConsoleProtocol
from p2pchat.faces.manhole import manhole_service
from p2pchat.faces.telnet import TelnetConsoleFactory
from p2pchat.faces.terminal import StdioConsoleService, log_beside_screen
from p2pchat.log.identity import short_id
from p2pchat.log.store import Store
from p2pchat.mesh.factory import PeerFactory
from p2pchat.mesh.wire import PROTOCOL_VERSION
from p2pchat.node_holder import NodeHolder
from p2pchat.ops.logs import observer_for, use_log_format
from p2pchat.ops.metrics import Metrics, metrics_site
from p2pchat.ops.readiness import Readiness
from p2pchat.ops.sdnotify import Notifier, NotifierService, NotifyError
from p2pchat.startup import (
    DataDirService,
    ListenerService,
    StartupError,
    describe_port,
    reason,
    server_endpoint,
)

STORE_FILE_NAME = "p2pchat.sqlite3"


class ConsoleFactory(Factory):
    """
    Builds a L{ConsoleProtocol} for each TCP console client.
    """

    noisy = False

    def __init__(self, node):
        self.node = node

    def buildProtocol(self, addr):
        return ConsoleProtocol(self.node.chat)


class StoreService(Service):
    """
    The message store: opened when started, closed when stopped.

    @ivar store: the open L{Store}, else L{None}.
    """

    def __init__(self, path: str):
        self.path = path
        self.store: Optional[Store] = None

    def startService(self) -> None:
        store = Store(self.path)
        try:
            store.open()
        except Exception as e:
            raise StartupError(f"cannot open store: {reason(e)}") from None
        self.store = store
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self.store is not None:
            self.store.close()
            self.store = None


class _OnStart(MultiService):
    """
    A slot in the tree for a service that can only be built once the
    services before it started (the manhole needs the node).
    """

    def __init__(self, build):
        super().__init__()
        self._build = build

    def startService(self) -> None:
        """
        @raise StartupError: if the service cannot be built or started.
        """
        try:
            self._build().setServiceParent(self)
            super().startService()
        except ValueError as e:
            raise StartupError(str(e)) from None


class NodeService(MultiService):
    """
    A p2pchat node.

    @ivar node: the L{ChatNode}, once started.
    @ivar peers: the peer listener (a L{ListenerService}), or L{None}.
    @ivar consoles: the console listener, or L{None}.
    @ivar stdio: the console on standard input/output, or L{None}.
    """

    log = Logger()

    def __init__(self, config: NodeConfig, reactor=None):
        super().__init__()
        self.config = config
        self._reactor = reactor
        self.metrics = Metrics()
        self.readiness: Optional[Readiness] = None
        self._previous_handlers: Dict[int, object] = {}
        self.stdio = None
        self._systemd = NotifierService(os.environ, lambda: self.reactor)
        self._systemd.setServiceParent(self)
        DataDirService(config.data_dir).setServiceParent(self)
        self._store = StoreService(os.path.join(config.data_dir, STORE_FILE_NAME))
        self._store.setServiceParent(self)
        self.holder = NodeHolder(self)
        self.holder.setServiceParent(self)
        self.peers = self.consoles = None
        if config.listen is not None:
            self.peers = ListenerService(
                "peers", config.listen, self._peer_listener, self._peer_listening
            )
            self.peers.setServiceParent(self)
        if config.console is not None:
            self.consoles = ListenerService("consoles", config.console, self._console_listener)
            self.consoles.setServiceParent(self)
        if config.metrics is not None:
            ListenerService("metrics", config.metrics, self._metrics_listener).setServiceParent(
                self
            )
        if config.manhole is not None:
            _OnStart(self._manhole).setServiceParent(self)
        if config.stdio:
            self.stdio = StdioConsoleService(
                config.screen, lambda: self.node.chat, lambda: self.reactor, ConsoleProtocol)
            self.stdio.setServiceParent(self)

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

    @property
    def node(self):
        """
        The L{ChatNode} while the node runs, else L{None}.
        """
        return self.holder.node

    @property
    def notifier(self) -> Optional[Notifier]:
        """
        The line to systemd while running under C{$NOTIFY_SOCKET}, else
        L{None}.
        """
        return self._systemd.notifier

    @property
    def store(self) -> Optional[Store]:
        """
        The open store while the node runs, else L{None}.
        """
        return self._store.store

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
        try:
            super().startService()
        except (StartupError, NotifyError) as e:
            # One clear line, then exit 1: a traceback would add nothing.
            self.log.critical("p2pchat cannot start: {reason}", reason=str(e))
            self._unwind()
            raise SystemExit(1) from e
        self._handle_signal(signal.SIGHUP, self._on_hangup)
        for address in self.config.peers:
            self.holder.connect(address)
        # Log "started" and signal readiness only once the reactor runs:
        # then its signal handlers are in place, so whoever acts on that
        # line (an operator, systemd, a test) can stop the node cleanly.
        self.reactor.callWhenRunning(self._running)

    def _unwind(self) -> None:
        """
        Stop, newest first, the children that did start before one
        refused: the store closes and the data dir is unlocked.
        """
        self.running = False
        for child in reversed(list(self)):
            if child.running:
                child.stopService()

    def _peer_listener(self):
        node, config = self.node, self.config
        factory = PeerFactory(
            node.links, self.reactor, outbound=False, handshake_timeout_s=config.handshake_timeout_s
        )
        return self._peer_server_endpoint(config.listen), factory

    def _console_listener(self):
        description = self.config.console
        if listens_beyond_loopback(description):
            self.log.warn(
                "the console listens beyond this machine ({console}): anyone who "
                "reaches it can post and read direct messages as this node",
                console=description,
            )
        # The one place a console connection's protocol is chosen.
        factory = TelnetConsoleFactory(ConsoleFactory(self.node))
        return server_endpoint(self.reactor, description, "consoles"), factory

    def _metrics_listener(self):
        self.metrics.start_lag_monitor(self.reactor)
        return server_endpoint(self.reactor, self.config.metrics, "metrics"), metrics_site(
            self.metrics
        )

    def _manhole(self) -> Service:
        config = self.config
        try:
            manhole = manhole_service(
                config.manhole,
                {"node": self.node, "chat": self.node.chat, "service": self},
                keys_file=config.manhole_keys,
                passwd_file=config.manhole_passwd,
                reactor=self.reactor,
                host_key_dir=config.data_dir,
            )
        except ValueError as e:
            raise StartupError(f"cannot start the manhole: {e}") from None
        manhole.exposed = listens_beyond_loopback(config.manhole)
        return manhole

    def _peer_listening(self, port) -> None:
        """
        The peer listener is up: advertise the port it bound (the one
        asked for, or the free one C{--port 0} got).
        """
        node, config = self.node, self.config
        bound = getattr(port.getHost(), "port", None) or config.port
        node.port = bound
        if bound:
            node.advertised_address = str(PeerAddress(config.advertise_host, bound))

    def _running(self) -> None:
        config, node = self.config, self.node
        peers = self.peers.port if self.peers else None
        consoles = self.consoles.port if self.consoles else None
        self._handle_signal(signal.SIGTERM, self._on_terminate)
        # Kept until the reactor has stopped: a second SIGTERM while the
        # node stops must not be recorded as the exit signal either.
        self.reactor.addSystemEventTrigger(
            "after", "shutdown", self._restore_signal, signal.SIGTERM
        )
        self.log.info(
            "p2pchat node {name} ({id}) started: peers on {listen}, console on "
            "{console}, {count} messages in {path}; p2pchat {version}, protocol {protocol}",
            version=p2pchat.__version__,
            protocol=PROTOCOL_VERSION,
            name=config.name,
            id=short_id(node.identity.node_id),
            listen=node.advertised_address or describe_port(peers),
            console=describe_port(consoles),
            count=self.store.count(),
            path=config.data_dir,
        )
        self.readiness = Readiness(
            self.reactor, lambda: self.notifier, self._status_text, self._caught_up,
            config.ready_timeout_s,
        )
        # Ready once caught up from the --peer nodes (or after the bound).
        self.readiness.start(wait=bool(config.peers))

    @property
    def ready(self) -> bool:
        return self.readiness is not None and self.readiness.ready

    def _caught_up(self) -> bool:
        node = self.node
        return node is not None and bool(node.links) and not node.relay.progress.catching_up

    def _status_text(self) -> str:
        node = self.node
        if node is None or self.store is None:
            return "stopping"
        alive = node.membership.alive_count()
        text = f"{alive} peers alive, {self.store.count()} messages"
        progress = node.chat.catch_up.line()
        if progress is not None:
            return f"{progress}; {text}"
        if not self.ready and not node.links:
            return f"waiting for a peer; {text}"
        if not self.ready and node.relay.progress.catching_up:
            return f"catching up; {text}"
        return text

    def node_changed(self) -> None:
        """
        Links or messages changed: maybe ready now (see L{Readiness}), and
        a new status line for systemd at most once a second.
        """
        if self.readiness is not None:
            self.readiness.changed()

    def _handle_signal(self, signum: int, handler) -> None:
        """
        Run C{handler} in the reactor thread on C{signum} until the node
        stops (signal handlers can only be set from the main thread).
        """
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(number, frame) -> None:
            self.reactor.callFromThread(handler)

        previous = signal.signal(signum, on_signal)
        self._previous_handlers.setdefault(signum, previous)

    def _restore_signal(self, signum: int) -> None:
        previous = self._previous_handlers.pop(signum, None)
        if previous is not None:
            signal.signal(signum, previous)

    def _on_hangup(self) -> None:
        """
        SIGHUP: commit what is queued and keep running.  The configuration
        is not reloaded: it comes from the command line.  With the chat
        screen on a terminal, SIGHUP means the terminal closed: stop.
        """
        if self.stdio is not None and self.stdio.terminal is not None:
            self.log.info("SIGHUP: the terminal closed; stopping")
            self.stdio.terminal.end_node()
            return
        if self.node is not None:
            self.node.flush()
        self.log.info("SIGHUP: queued entries committed; configuration is not reloaded")

    def _on_terminate(self) -> None:
        """
        SIGTERM is how an operator (or systemd) asks the node to stop; once
        the store is flushed and closed, that is a success.  The reactor's
        own handler would make twistd re-raise the signal at exit (status
        -15), so this one stops the reactor without recording a signal.
        """
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass

    def _peer_server_endpoint(self, description: str):
        """
        The peer listener: C{description} as given, or with mutual TLS on
        top when the node has TLS files.
        """
        tls = self.holder.tls
        if tls is None:
            return server_endpoint(self.reactor, description, "peers")
        try:
            return tls.server_endpoint(self.reactor, description)
        except Exception as e:
            raise StartupError(f"cannot listen for peers on {description}: {reason(e)}") from None

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop in an order that loses nothing: the children newest first,
        each once the one before has stopped — the terminal console and
        the manhole, the listeners (no new connections), the node (it
        takes no more entries or links, commits what is queued and says
        goodbye on every link, then its dialers stop), and only then the
        store and the data dir's lock.
        """
        if self.notifier is not None:
            self.notifier.stopping()
        self._restore_signal(signal.SIGHUP)
        if self.readiness is not None:
            self.readiness.stop()
        self.metrics.stop_lag_monitor()
        Service.stopService(self)
        for child in reversed(list(self)):
            if child.running:
                yield defer.maybeDeferred(child.stopService)
        self.log.info("p2pchat node stopped")
