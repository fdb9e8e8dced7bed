# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_attacks -*-
"""
This node's own row: its name, address, incarnation and heartbeat, and
the signature that vouches for them (see L{p2pchat.mesh.membership.rows}).
"""

from typing import Callable, Optional, Tuple

from twisted.logger import Logger

from p2pchat.mesh.membership.rows import (
    ALIVE,
    LEFT,
    MAX_INCARNATION,
    make_row,
    sign_row,
)


class OwnRow:
    """
    What this node says about itself.

    @ivar node_id: this node's id.
    @ivar name: its display name.
    @ivar address: where it accepts links, or C{None}.
    @ivar incarnation: its incarnation.
    @ivar heartbeat: its heartbeat counter (it stays 0: liveness comes
        from probes, not from gossiped heartbeats).
    @ivar hidden: whether it keeps itself out of gossip.
    @ivar left: whether it left (then it says nothing more).
    """

    def __init__(
        self,
        node_id: str,
        name: str,
        address: Optional[str],
        incarnation: int,
        hidden: bool,
        signer: Callable[[bytes], bytes],
        log: Logger,
    ):
        self.node_id = node_id
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.heartbeat = 0
        self.hidden = hidden
        self.left = False
        self._signer = signer
        self._log = log
        self._signed: Optional[Tuple[tuple, str]] = None

    def row(self, leaving: bool = False) -> dict:
        """
        @return: the row this node gossips about itself, signed.  It is
            signed again only when its signed part changes.
        """
        state = LEFT if (leaving or self.left or self.hidden) else ALIVE
        statement = (self.incarnation, self.name, self.address, state)
        if self._signed is None or self._signed[0] != statement:
            sig = sign_row(self._signer, self.node_id, *statement)
            self._signed = (statement, sig)
        return make_row(
            self.node_id, self.incarnation, state, self.heartbeat, self.name, self.address,
            self._signed[1],
        )

    def raise_incarnation(self, incarnation: int) -> None:
        """
        Move to C{incarnation} (a new signed statement), unless it would
        pass L{MAX_INCARNATION}.
        """
        if incarnation > MAX_INCARNATION:
            self._log.error("incarnation would pass 2**53; cannot refute")
            return
        self.incarnation = incarnation
