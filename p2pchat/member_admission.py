"""
Who may enter the membership table, and who leaves it first when it is
full.

Fresh keys are free, so signatures alone do not stop one peer from
filling the table with members that do not exist.  Three bounds do:

  - B{New members per link.}  Each link has a token bucket of new members
    (L{NEW_MEMBERS_BURST}, refilled at L{NEW_MEMBERS_PER_S}).  Rows over
    budget are dropped, not fatal: they come again with the member's next
    heartbeat or the periodic full sync.
  - B{Signature checks per link.}  Each link has a bucket of signature
    verifications (L{VERIFIES_BURST}, L{VERIFIES_PER_S}).  One check
    costs about 62 us (see L{p2pchat.member_rows}); learning a new signed
    member costs about 130 us in all (measured: one frame of 200 new
    members 23 ms, of 1000 new members 130 ms, of 1000 heartbeats 4 ms).
    A signed row is at least about 230 bytes, so one line
    (L{p2pchat.wire.MAX_LINE_BYTES}) holds at most about 285 rows: about
    37 ms of reactor time per frame, well under 250 ms; sustained, one
    link costs at most L{VERIFIES_PER_S} x 130 us = 26 ms per second.
  - B{Eviction of unproven members first.}  A member is I{proven} once
    this node has completed a handshake with it (it holds the key of its
    id: the link's hello is answered on a link it opened or accepted), or
    once two distinct links have told us about it.  One hostile link can
    therefore only add unproven members; when the table is full a new
    member replaces the oldest unproven one, never a proven one.  (On a
    TLS network links come only from certified nodes, which proves more
    still; this module does not need to know.)

Memory: two token buckets per link, and one dictionary entry per unproven
member (bounded by the table's C{max_members}).
"""

from typing import Dict, Optional

from twisted.internet.interfaces import IReactorTime

from p2pchat.member_rows import MAX_ROWS_PER_FRAME
from p2pchat.ratelimit import TokenBucket

NEW_MEMBERS_BURST = 1000
NEW_MEMBERS_PER_S = 20.0
VERIFIES_BURST = MAX_ROWS_PER_FRAME
VERIFIES_PER_S = 200.0


class Admission:
    """
    Per-link budgets for new members and signature checks, and the
    eviction order of unproven members.
    """

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._new: Dict[str, TokenBucket] = {}
        self._verify: Dict[str, TokenBucket] = {}
        #: Unproven members, oldest first (dicts keep insertion order).
        self._unproven: Dict[str, None] = {}

    def link_up(self, peer_id: str) -> None:
        if peer_id not in self._new:
            self._new[peer_id] = TokenBucket(NEW_MEMBERS_PER_S, NEW_MEMBERS_BURST, self._clock)
            self._verify[peer_id] = TokenBucket(VERIFIES_PER_S, VERIFIES_BURST, self._clock)

    def link_down(self, peer_id: str) -> None:
        self._new.pop(peer_id, None)
        self._verify.pop(peer_id, None)

    def may_learn(self, peer_id: str) -> bool:
        """
        @return: whether a row from C{peer_id} may add a new member now
            (spends one token).
        """
        bucket = self._new.get(peer_id)
        return bucket is None or bucket.take()

    def may_verify(self, peer_id: str) -> bool:
        """
        @return: whether one signature of a row from C{peer_id} may be
            checked now (spends one token).
        """
        bucket = self._verify.get(peer_id)
        return bucket is None or bucket.take()

    def unproven(self, node_id: str) -> None:
        """
        C{node_id} entered the table without proof.
        """
        self._unproven[node_id] = None

    def proven(self, node_id: str) -> None:
        """
        C{node_id} is proven (or left the table): never evict it for room.
        """
        self._unproven.pop(node_id, None)

    def is_unproven(self, node_id: str) -> bool:
        return node_id in self._unproven

    def evictable(self) -> Optional[str]:
        """
        @return: the oldest unproven member, or C{None}.
        """
        return next(iter(self._unproven), None)

    def unproven_count(self) -> int:
        return len(self._unproven)
