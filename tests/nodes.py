"""
Helpers that build L{ChatNode}s on temporary stores and link them in
memory with L{twisted.test.iosim}, driven by one L{Clock}.
"""

import os

from twisted.internet.task import Clock
from twisted.test import iosim

from p2pchat.chat.node import ChatNode
from p2pchat.log.identity import Identity
from p2pchat.log.store.core import Store
from p2pchat.mesh.peer import PeerProtocol


class RecordingView:
    """
    A console stand-in that keeps every message shown to it.
    """

    def __init__(self):
        self.messages = []
        self.alerts = []
        self.notices = []

    def message(self, message):
        self.messages.append(message)

    def alert(self, text):
        self.alerts.append(text)

    def notice(self, text):
        self.notices.append(text)

    @property
    def texts(self):
        """
        The plain texts shown, in order.
        """
        return [m.text for m in self.messages]


class Network:
    """
    Several nodes on one clock, linked by in-memory transports.
    """

    def __init__(self, test_case, wall_clock=lambda: 1_700_000_000.0):
        self.test_case = test_case
        self.clock = Clock()
        self.wall_clock = wall_clock
        self.pumps = []
        self.connects = []
        self.disconnects = []
        self.nodes = []

    def node(self, name, directory=None, verifier=None, attestations=None, replication=None):
        """
        Make a node called C{name} with a store in a fresh temporary
        directory (or C{directory}, to reopen one), verifying entries
        inline (or with C{verifier}, a factory taking the node's callback),
        believing names certified by C{attestations} if given (a TLS
        network), with the L{ReplicationConfig} C{replication} if given.
        """
        directory = directory or self.test_case.mktemp()
        os.makedirs(directory, exist_ok=True)
        store = Store(os.path.join(directory, "store.sqlite3"))
        store.open()
        self.test_case.addCleanup(store.close)
        node = ChatNode(
            Identity.load_or_create(directory),
            store,
            name,
            self.clock,
            advertised_address=f"{name}.example:9090",
            port=9090,
            connect=self.connects.append,
            disconnect=lambda address: self.disconnects.append(address) or True,
            wall_clock=self.wall_clock,
            attestations=attestations,
            replication=replication,
            **({} if verifier is None else {"verifier": verifier}),
        )
        node.directory = directory
        self.nodes.append(node)
        node.view = RecordingView()
        node.chat.subscribe(node.view)
        return node

    def link(self, server, client):
        """
        Connect C{client} to C{server} and finish the handshake.

        @return: the (server-side, client-side) protocols.
        """
        client_protocol, server_protocol, pump = iosim.connectedServerAndClient(
            lambda: PeerProtocol(server.links, self.clock, False, 10.0),
            lambda: PeerProtocol(client.links, self.clock, True, 10.0),
            greet=False,
            clock=self.clock,
        )
        self.pumps.append(pump)
        self.settle()
        return server_protocol, client_protocol

    def settle(self, rounds=50):
        """
        Deliver every pending byte and run every flush and stream batch
        that is due now, until nothing moves.
        """
        for _ in range(rounds):
            moved = False
            for pump in self.pumps:
                moved = pump.pump() or moved
            self.clock.advance(0)
            if not moved:
                return
        for pump in self.pumps:
            pump.flush()

    def tick(self, seconds=0.2, times=1):
        """
        Let C{seconds} of time pass C{times} times, running every node's
        replication tick and settling after each.
        """
        for _ in range(times):
            for node in self.nodes:
                node.tick()
            self.clock.advance(seconds)
            self.settle()

    def unlink(self, server_protocol, client_protocol):
        """
        Close a link made by L{link} from both ends.
        """
        client_protocol.transport.loseConnection()
        server_protocol.transport.loseConnection()
        self.settle()
