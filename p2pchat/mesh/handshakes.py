# -*- test-case-name: tests.unit.test_peer -*-
"""
Who gets a pending-handshake slot: the admission policy of a
L{p2pchat.mesh.factory.PeerFactory}.

A connection takes a slot from the moment it is accepted (before any TLS
handshake) until its hello exchange finishes or it closes.  Slots are few
(L{MAX_PENDING_HANDSHAKES}), so an outsider that opens connections and
never speaks must not be able to hold them all and lock every honest node
out, nor make the node refuse newcomers (a refusal the outsider controls).
So a newcomer is always admitted, and when there is no room an old pending
connection is evicted instead:

  - at most L{MAX_PENDING_PER_ADDRESS} slots per source address: a
    newcomer from an address that holds that many evicts that address's
    oldest pending connection;
  - when all slots are taken, the oldest pending connection of the address
    holding the most slots is evicted.

An honest handshake needs milliseconds; an idle socket waits for its
handshake time-out.  Evicting the oldest first means the idle ones go and
the honest ones finish, even when both come from one address (every node
on one machine shares 127.0.0.1).

Memory: at most C{max_total} entries (one per pending connection).
"""

from collections import Counter, OrderedDict
from typing import Generic, Hashable, Iterator, Optional, TypeVar

MAX_PENDING_HANDSHAKES = 64
MAX_PENDING_PER_ADDRESS = 16

Link = TypeVar("Link", bound=Hashable)


class PendingSlots(Generic[Link]):
    """
    The pending handshakes of one factory, oldest first, with the source
    address of each.
    """

    def __init__(
        self,
        max_total: int = MAX_PENDING_HANDSHAKES,
        max_per_address: int = MAX_PENDING_PER_ADDRESS,
    ):
        """
        @raise ValueError: if either limit is below 1.
        """
        if max_total < 1 or max_per_address < 1:
            raise ValueError("slot limits must be at least 1")
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._links: "OrderedDict[Link, Optional[str]]" = OrderedDict()
        self._per_address: Counter = Counter()

    def __len__(self) -> int:
        return len(self._links)

    def __contains__(self, link: object) -> bool:
        return link in self._links

    def __iter__(self) -> Iterator[Link]:
        return iter(list(self._links))

    def held_by(self, address: Optional[str]) -> int:
        """
        @return: how many slots connections from C{address} hold.
        """
        return self._per_address[address]

    def admit(self, link: Link, address: Optional[str]) -> Optional[Link]:
        """
        Give C{link}, from C{address} (a host, or C{None} when unknown), a
        slot.

        @return: the pending connection that must be evicted (closed at
            once) to make room, or C{None}.  It no longer holds a slot.
        """
        victim = None
        if self._per_address[address] >= self.max_per_address:
            victim = self._oldest_of(address)
        elif len(self._links) >= self.max_total:
            most = max(self._per_address.values())
            victim = next(
                held for held, source in self._links.items()
                if self._per_address[source] == most
            )
        if victim is not None:
            self.discard(victim)
        self._links[link] = address
        self._per_address[address] += 1
        return victim

    def _oldest_of(self, address: Optional[str]) -> Link:
        return next(held for held, source in self._links.items() if source == address)

    def discard(self, link: Link) -> None:
        """
        Free C{link}'s slot, if it holds one.
        """
        if link not in self._links:
            return
        address = self._links.pop(link)
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]
