"""
The validated settings a node is built from.

L{p2pchat.tap.Options} turns command-line arguments into a L{NodeConfig};
L{p2pchat.service.NodeService} builds the running node from it.  Nothing in
this module touches the network or the disk.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

from p2pchat.addresses import PeerAddress  # noqa: F401 (part of the configuration)
from p2pchat.mesh.membership import MembershipConfig


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
    @ivar handshake_timeout_s: how long a link may take to say hello.
    @ivar max_links: how many peer links the node aims to keep open.
    @ivar hidden: whether the node leaves itself out of membership gossip.
    @ivar failure_timeout_s: how long a suspected member has to refute
        before it is declared dead (see L{MembershipConfig}).
    @ivar tls: the files for mutual TLS on peer links, or C{None}.
    @ivar manhole: a server endpoint string for the SSH manhole, or C{None}.
    @ivar manhole_keys: an authorized_keys file for the manhole.
    @ivar manhole_passwd: a C{user:password} file for the manhole.
    @ivar metrics: a server endpoint string for Prometheus metrics, or
        C{None}.
    @ivar log_format: C{text} or C{json}.
    @ivar rooms: rooms to join at start, besides #lobby (C{--room}).
    @ivar screen: whether the console on standard input/output is the
        terminal chat screen (see L{p2pchat.faces.terminal.screen_choice}).
    @ivar screen_log: the log file used while the screen is drawn, or
        C{None} to leave the log where twistd puts it.
    @ivar ready_timeout_s: with C{--peer}, the most seconds C{READY=1} waits
        for the initial catch-up (C{--ready-timeout}).
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
    max_links: int = MembershipConfig.max_links
    hidden: bool = False
    failure_timeout_s: float = MembershipConfig.failure_timeout_s
    tls: Optional["TLSFiles"] = None
    manhole: Optional[str] = None
    manhole_keys: Optional[str] = None
    manhole_passwd: Optional[str] = None
    metrics: Optional[str] = None
    log_format: str = "text"
    rooms: Tuple[str, ...] = ()
    screen: bool = False
    screen_log: Optional[str] = None
    ready_timeout_s: float = 45.0


@dataclass(frozen=True)
class TLSFiles:
    """
    The PEM files that make every peer link mutual TLS.

    @ivar cert: this node's certificate (chain).
    @ivar key: this node's private key.
    @ivar ca: the network's CA certificate(s): peers must chain to it.
    """

    cert: str
    key: str
    ca: str
