"""
A malicious peer that speaks p2pchat's protocol: any frame, any field, any
order, on several links, optionally never reading what it is sent.

Two faces:

  - in-process (L{MaliciousPeer}, L{link_attacker}): a protocol connected
    to a real L{p2pchat.chat.node.ChatNode}'s L{p2pchat.mesh.peer.PeerProtocol}
    through L{twisted.test.iosim}, on a L{twisted.internet.task.Clock}.
    The links use L{FlowControlledTransport}, which behaves as a TCP
    transport does where it matters to a hostile peer: a reader that stops
    reading leaves bytes buffered at the writer, a writer's streaming
    producer is paused above L{HIGH_WATER_BYTES}, and a protocol that
    pauses its transport stops receiving.  So what a node buffers for a
    peer that never reads can be measured (L{FlowControlledTransport.buffered}).

  - real sockets (L{SocketAttacker}): several raw TCP links to a real
    C{twistd -n p2pchat} process, built on L{p2pchat.testing.rawpeer.RawPeer}.
"""

import json
import socket
from typing import List, Optional

from twisted.internet.protocol import Protocol
from twisted.test import iosim

from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.mesh.factory import PeerFactory
from p2pchat.testing.rawpeer import RawPeer
from tests.processes import DEADLINE_S

HIGH_WATER_BYTES = 65536
"""
Like L{twisted.internet.abstract.FileDescriptor.bufferSize}: a transport
pauses its streaming producer when more than this many bytes wait.
"""


class FlowControlledTransport(iosim.FakeTransport):
    """
    An iosim transport with TCP-like flow control in both directions.

    @ivar other: the transport at the other end of the connection.
    @ivar reading: whether this end's protocol reads (C{pauseProducing}
        on this transport, as L{twisted.protocols.basic.LineReceiver} does
        when paused, stops delivery to it; the bytes wait at the writer).
    @ivar high_water: the most bytes ever buffered here at once.
    """

    def __init__(self, protocol, isServer):
        super().__init__(protocol, isServer)
        self.other: Optional["FlowControlledTransport"] = None
        self.reading = True
        self._producer_paused = False
        self.high_water = 0

    @property
    def buffered(self) -> int:
        """
        Bytes written here and not yet read by the other end.
        """
        return sum(len(chunk) for chunk in self.stream)

    def write(self, data: bytes) -> None:
        super().write(data)
        size = self.buffered
        self.high_water = max(self.high_water, size)
        if (self.producer is not None and self.streamingProducer
                and not self._producer_paused and size > HIGH_WATER_BYTES):
            self._producer_paused = True
            self.producer.pauseProducing()

    def getOutBuffer(self):
        if self.other is not None and not self.other.reading:
            return None
        data = super().getOutBuffer()
        if data is not None and self._producer_paused:
            self._producer_paused = False
            if self.producer is not None:
                self.producer.resumeProducing()
        return data

    def pauseProducing(self) -> None:
        self.reading = False

    def resumeProducing(self) -> None:
        self.reading = True

    def unregisterProducer(self) -> None:
        super().unregisterProducer()
        self._producer_paused = False


def connect(server, client, clock) -> iosim.IOPump:
    """
    Connect two protocols with L{FlowControlledTransport}s.

    @return: the pump that moves their bytes.
    """
    server_transport = FlowControlledTransport(server, isServer=True)
    client_transport = FlowControlledTransport(client, isServer=False)
    server_transport.other, client_transport.other = client_transport, server_transport
    return iosim.connect(server, server_transport, client, client_transport,
                         greet=False, clock=clock)


class MaliciousPeer(Protocol):
    """
    The attacker's end of one in-process link: it says and does what it is
    told, and keeps what the node sent it.

    @ivar identity: the key it claims in its hello (ids are free: make a
        new one per link to dodge per-id penalties).
    @ivar lines: the lines received (at most L{KEEP_LINES}, the latest).
    @ivar received_bytes: how many bytes it has read in all.
    @ivar closed: whether the connection is lost.
    """

    KEEP_LINES = 200

    def __init__(self, identity: Optional[Identity] = None, name: str = "mallory",
                 reading: bool = True):
        self.identity = identity or Identity.generate()
        self.name = name
        self._start_reading = reading
        self.lines: List[bytes] = []
        self.received_bytes = 0
        self.closed = False
        self._buffer = b""

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def connectionMade(self) -> None:
        if not self._start_reading:
            self.stop_reading()

    def dataReceived(self, data: bytes) -> None:
        self.received_bytes += len(data)
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(lines)
        del self.lines[:-self.KEEP_LINES]

    def connectionLost(self, reason=None) -> None:
        self.closed = True

    def frames(self) -> List[dict]:
        """
        @return: the received lines that are JSON objects.
        """
        frames = []
        for line in self.lines:
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if isinstance(frame, dict):
                frames.append(frame)
        return frames

    def stop_reading(self) -> None:
        """
        Read nothing more: the node's bytes for us wait in its transport.
        """
        self.transport.pauseProducing()

    def start_reading(self) -> None:
        self.transport.resumeProducing()

    def send_raw(self, data: bytes) -> None:
        """
        Write C{data} as it is (no delimiter added).
        """
        if not self.closed:
            self.transport.write(data)

    def send_line(self, line: bytes) -> None:
        self.send_raw(line + b"\n")

    def send_frame(self, frame: dict) -> None:
        """
        Send C{frame} in canonical JSON, whatever it holds.
        """
        self.send_line(json.dumps(frame, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False).encode("utf-8", "surrogatepass"))

    def hello(self, name: Optional[str] = None, address: Optional[str] = None,
              links: Optional[int] = None) -> None:
        """
        Send a hello claiming L{identity}.
        """
        self.send_frame(wire.hello(self.node_id, name or self.name, address, links))


def link_attacker(node, clock, attacker: MaliciousPeer, handshake_timeout_s: float = 10.0):
    """
    Connect C{attacker} to C{node} as an inbound link, as the node's
    listener would (its C{PeerProtocol}, with the production per-link
    budgets).  Nothing is delivered until the returned pump is pumped.

    @return: C{(node_side_protocol, pump)}.
    """
    factory = PeerFactory(
        node.links, clock, outbound=False, handshake_timeout_s=handshake_timeout_s
    )
    server = factory.buildProtocol(None)
    return server, connect(server, attacker, clock)


def link_honest(server_node, client_node, clock):
    """
    Link two honest nodes (client dials server) over flow-controlled
    transports.

    @return: C{(server_protocol, client_protocol, pump)}.
    """
    server = PeerFactory(server_node.links, clock, outbound=False).buildProtocol(None)
    client = PeerFactory(client_node.links, clock, outbound=True).buildProtocol(None)
    return server, client, connect(server, client, clock)


class SocketAttacker:
    """
    The real-socket face: raw TCP links to a real node's peer port.

    Each handshaken link is a L{RawPeer} (it answers the node's hello);
    L{idle} opens a bare socket that never says anything; any link can
    stop reading (its receive buffer is shrunk, so the node's writes back
    up at once).
    """

    def __init__(self, address: str):
        self.address = address
        host, port = address.rsplit(":", 1)
        self._endpoint = (host, int(port))
        self.peers: List[RawPeer] = []
        self.sockets: List[socket.socket] = []

    def link(self, name: str = "mallory", reading: bool = True) -> RawPeer:
        """
        Open one link and finish the handshake under a fresh identity.
        """
        peer = RawPeer(self.address, name=name)
        if not reading:
            peer.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.peers.append(peer)
        return peer

    def links(self, count: int, name: str = "mallory", reading: bool = True) -> List[RawPeer]:
        return [self.link(f"{name}{i}", reading) for i in range(count)]

    def idle(self, count: int) -> List[socket.socket]:
        """
        Open C{count} connections that never speak (nor read).
        """
        opened = []
        for _ in range(count):
            sock = socket.create_connection(self._endpoint, timeout=DEADLINE_S)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            opened.append(sock)
        self.sockets.extend(opened)
        return opened

    def send_raw(self, peer: RawPeer, data: bytes) -> None:
        peer.socket.sendall(data)

    def close(self) -> None:
        for sock in self.sockets + [peer.socket for peer in self.peers]:
            try:
                sock.close()
            except OSError:
                pass
        self.sockets, self.peers = [], []

