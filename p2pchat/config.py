"""
The validated settings a node is built from.

L{p2pchat.tap.Options} turns command-line arguments into a L{NodeConfig};
L{p2pchat.service.NodeService} builds the running node from it.  Nothing in
this module touches the network or the disk.
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple


@dataclass(frozen=True)
class PeerAddress:
    """
    A peer given as C{HOST:PORT}.

    @ivar host: a host name, an IPv4 address or an IPv6 address (without
        brackets).
    @ivar port: the TCP port, 1-65535.
    """

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeConfig:
    """
    Everything a node needs to start.

    @ivar name: the display name (1-32 printable characters, no spaces).
    @ivar port: the peer port advertised to others (from C{--port}, or the
        port of a C{tcp:}/C{ssl:} listen endpoint; C{None} when unknown).
    @ivar listen: a server endpoint string for peer links, or C{None} for an
        outbound-only node.
    @ivar peers: peers to connect to at start.
    @ivar data_dir: the directory holding the identity key and the store.
    @ivar console: a server endpoint string for the line console, or C{None}.
    @ivar stdio: whether to attach a console to standard input/output.
    @ivar advertise_host: the host others should use to reach this node.
    """

    name: str
    port: Optional[int]
    listen: Optional[str]
    peers: Tuple[PeerAddress, ...]
    data_dir: str
    console: Optional[str]
    stdio: bool
    advertise_host: str = "127.0.0.1"
    handshake_timeout_s: float = 10.0
    extra: dict = field(default_factory=dict)
