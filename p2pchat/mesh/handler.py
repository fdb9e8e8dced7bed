# -*- test-case-name: tests.unit.test_peer -*-
"""
What a peer link reports to: the interface between the link
(L{p2pchat.mesh.peer.PeerProtocol}, frames only) and the node's
link-level logic, which decides everything.
"""

from typing import Any, Dict, Optional

from zope.interface import Interface


class Routine(str):
    """
    A reason to close or refuse a link that is part of normal operation
    (a twin link replaced, a full node, this node itself): logged as
    information, not as a warning.
    """


class IPeerHandler(Interface):
    """
    What a L{p2pchat.mesh.peer.PeerProtocol} reports to: the node's link-level logic.
    """

    def local_hello() -> Dict[str, Any]:
        """
        @return: the hello frame to send on a new link.
        """

    def link_up(link) -> Optional[str]:
        """
        A link finished its handshake; C{link.remote_*} are set.

        @return: C{None} to accept it, or a reason to refuse it.
        """

    def link_down(link) -> None:
        """
        An accepted link closed.
        """

    def rx_frame(link, frame: Dict[str, Any]) -> None:
        """
        A valid frame other than hello, error, ping, pong or bye arrived on
        an accepted link.
        """

    def sign_binding(material: bytes) -> str:
        """
        Sign a TLS session's exporter value with the node's identity key,
        for the C{bind} field of the hello on a TLS link.
        """

    def link_misbehaved(link) -> None:
        """
        An accepted link is being closed because its peer sent invalid
        input.
        """
