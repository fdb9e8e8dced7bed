# -*- test-case-name: tests.unit.test_link_defences -*-
"""
The factory of peer links: each new connection gets its entry budgets
(L{p2pchat.mesh.budgets}) and a pending-handshake slot
(L{p2pchat.mesh.handshakes}).
"""

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory

from p2pchat.mesh.budgets import EntryBudget
from p2pchat.mesh.handshakes import MAX_PENDING_HANDSHAKES, MAX_PENDING_PER_ADDRESS, PendingSlots
from p2pchat.mesh.peer import IPeerHandler, PeerProtocol
from p2pchat.safe import LogLimiter


class PeerFactory(Factory):
    """
    Builds L{PeerProtocol}s for one direction (inbound or outbound).
    """

    noisy = False

    def __init__(
        self,
        handler: IPeerHandler,
        clock: IReactorTime,
        outbound: bool,
        handshake_timeout_s: float = 10.0,
        max_pending: int = MAX_PENDING_HANDSHAKES,
        max_pending_per_address: int = MAX_PENDING_PER_ADDRESS,
    ):
        self.handler = handler
        self.clock = clock
        self.outbound = outbound
        self.handshake_timeout_s = handshake_timeout_s
        self.max_pending = max_pending
        self.pending: PendingSlots[PeerProtocol] = PendingSlots(
            max_pending, min(max_pending, max_pending_per_address)
        )
        self.log_limiter = LogLimiter(clock)

    def buildProtocol(self, addr) -> PeerProtocol:
        """
        Build a link and give it a pending-handshake slot; if there was no
        room, the oldest idle pending connection of the address holding
        the most slots is closed at once instead (L{p2pchat.mesh.handshakes}).
        Never refuses by returning C{None}: under a TLS factory that would
        leave an open socket behind a protocol that is not there.
        """
        protocol = PeerProtocol(
            self.handler,
            self.clock,
            self.outbound,
            self.handshake_timeout_s,
            entry_budget=EntryBudget.standard(self.clock),
        )
        protocol.factory = self
        victim = self.pending.admit(protocol, getattr(addr, "host", None))
        if victim is not None:
            self.log_limiter.log(
                "evicted",
                PeerProtocol.log.warn,
                "closing {peer}: {count} handshakes pending, the oldest from its address goes",
                peer=victim.describe(),
                count=self.max_pending,
            )
            victim.abort()
        return protocol


