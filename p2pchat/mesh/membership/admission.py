# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_attacks -*-
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
    costs about 62 us (see L{p2pchat.mesh.membership.rows}); learning a new signed
    member costs about 130 us in all (measured: one frame of 200 new
    members 23 ms, of 1000 new members 130 ms, of 1000 heartbeats 4 ms).
    A signed row is at least about 230 bytes, so one line
    (L{p2pchat.mesh.wire.MAX_LINE_BYTES}) holds at most about 285 rows: about
    37 ms of reactor time per frame, well under 250 ms; sustained, one
    link costs at most L{VERIFIES_PER_S} x 130 us = 26 ms per second.
  - B{Signature checks in all.}  One bucket shared by every link
    (L{GLOBAL_VERIFIES_BURST}, L{GLOBAL_VERIFIES_PER_S}): one check
    measured 87 us (Ed25519 via PyNaCl, on the 2-core test machine under
    load), so one reactor turn spends at most 1,000 x 87 us = 87 ms
    verifying rows whatever the number of links, and sustained about 9%
    of a core.  Rows over it are dropped; they come again with the
    periodic full sync.
  - B{Heartbeats per link.}  Rows that only advance a heartbeat cost no
    signature check, but each one marks the row dirty for every link.
    Honest gossip brings at most about one heartbeat per known member per
    heartbeat interval on a link (plus a full table at link-up and sync),
    so each link has a bucket refilled at C{members / heartbeat_interval}
    per second holding twice the table; rows over it are ignored.
  - B{Probes per link.}  A link's C{probe} and C{probe-req} frames share
    a bucket (L{PROBE_BURST}, L{PROBES_PER_S}); honest peers send about
    one per C{probe_interval_s} (0.5 s) each, plus a few probe-reqs when
    a member stalls.  Frames over it are ignored (each one honoured costs
    one small frame, two for a probe-req).
  - B{Eviction of unproven members first.}  A member is I{proven} only
    once this node has completed a handshake with it (the peer proved it
    holds the key of its id on a link this node opened or accepted).
    Hearing a row from several links proves nothing: an attacker can
    open as many links as it likes and replay its rows on each.  One
    hostile link can therefore only add unproven members; when the table
    is full a new member replaces the oldest unproven one, never a proven
    one.  Proven members are also gossiped first and dialled first (see
    L{p2pchat.mesh.membership.dissemination} and
    L{p2pchat.mesh.membership.view}).

Memory: four token buckets per link and one in all, and one dictionary
entry per unproven member (bounded by the table's C{max_members}).
"""

from random import Random
from typing import Dict, List, Optional

from twisted.internet.interfaces import IReactorTime

from p2pchat.mesh.membership.rows import MAX_ROWS_PER_FRAME
from p2pchat.ratelimit import TokenBucket

NEW_MEMBERS_BURST = 1000
NEW_MEMBERS_PER_S = 20.0
VERIFIES_BURST = MAX_ROWS_PER_FRAME
VERIFIES_PER_S = 200.0
GLOBAL_VERIFIES_BURST = 1000
GLOBAL_VERIFIES_PER_S = 1000.0
PROBES_PER_S = 10.0
PROBE_BURST = 20


class Admission:
    """
    Per-link budgets for new members and signature checks, and the
    eviction order of unproven members.
    """

    def __init__(self, clock: IReactorTime, heartbeat_interval_s: float = 1.0):
        self._clock = clock
        self._heartbeat_interval_s = heartbeat_interval_s
        self._new: Dict[str, TokenBucket] = {}
        self._verify: Dict[str, TokenBucket] = {}
        self._beats: Dict[str, TokenBucket] = {}
        self._probes: Dict[str, TokenBucket] = {}
        self._verify_all = TokenBucket(GLOBAL_VERIFIES_PER_S, GLOBAL_VERIFIES_BURST, clock)
        #: Unproven members, oldest first (dicts keep insertion order).
        self._unproven: Dict[str, None] = {}

    def link_up(self, peer_id: str) -> None:
        if peer_id not in self._new:
            self._new[peer_id] = TokenBucket(NEW_MEMBERS_PER_S, NEW_MEMBERS_BURST, self._clock)
            self._verify[peer_id] = TokenBucket(VERIFIES_PER_S, VERIFIES_BURST, self._clock)
            self._probes[peer_id] = TokenBucket(PROBES_PER_S, PROBE_BURST, self._clock)

    def link_down(self, peer_id: str) -> None:
        self._new.pop(peer_id, None)
        self._verify.pop(peer_id, None)
        self._beats.pop(peer_id, None)
        self._probes.pop(peer_id, None)

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
        if bucket is not None and not bucket.take():
            return False
        return self._verify_all.take()

    def may_probe(self, peer_id: str) -> bool:
        """
        @return: whether a C{probe} or C{probe-req} from C{peer_id} may be
            answered now (spends one token).
        """
        bucket = self._probes.get(peer_id)
        return bucket is not None and bucket.take()

    def may_beat(self, peer_id: str, members: int) -> bool:
        """
        @param members: how many members this node knows.
        @return: whether a heartbeat-only row from C{peer_id} may be
            applied now (spends one token).
        """
        if peer_id not in self._new:
            return True  # not linked (tests feed rows without a link)
        rate_per_s = (members + 1) / self._heartbeat_interval_s
        burst = max(2.0 * (members + 1), MAX_ROWS_PER_FRAME)
        bucket = self._beats.get(peer_id)
        if bucket is None:
            bucket = self._beats[peer_id] = TokenBucket(rate_per_s, burst, self._clock)
        bucket.rate_per_s, bucket.burst = rate_per_s, burst
        return bucket.take()

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

    def evictable(self) -> Optional[str]:
        """
        @return: the oldest unproven member, or C{None}.
        """
        return next(iter(self._unproven), None)

    def take_dirty(self, dirty: Dict[str, None], cap: int) -> List[str]:
        """
        Take up to C{cap} ids out of C{dirty} (a link's changed rows),
        proven members (and this node) first: a receiver spends its
        new-member budget on what comes first.  Costs one pass over
        C{dirty} at most.
        """
        unproven = self._unproven
        first: List[str] = []
        later: List[str] = []
        for node_id in dirty:
            if node_id not in unproven:
                first.append(node_id)
                if len(first) >= cap:
                    break
            elif len(later) < cap:
                later.append(node_id)
        batch = (first + later)[:cap]
        if len(batch) == len(dirty):
            dirty.clear()
        else:
            for node_id in batch:
                del dirty[node_id]
        return batch

    def choose(self, candidates: list, wanted: int, rng: Random) -> list:
        """
        @param candidates: member records (with a C{node_id}) to dial.
        @return: up to C{wanted} of them at random, proven ones first.
        """
        proven = [c for c in candidates if c.node_id not in self._unproven]
        if len(proven) >= wanted:
            return rng.sample(proven, wanted)
        others = [c for c in candidates if c.node_id in self._unproven]
        return proven + rng.sample(others, min(wanted - len(proven), len(others)))
