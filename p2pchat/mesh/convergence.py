# -*- test-case-name: tests.unit.test_convergence -*-
"""
Members' log digests, signed and gossiped, for C{/converged}.

Each member signs, with its mesh identity, a I{digest record}: how many
entries its log holds, the log's digest (L{p2pchat.log.store} keeps it:
equal digests mean equal sets of entries) and when it signed (its wall
clock, in ms).  Records travel in C{digests} frames (protocol version
L{DIGESTS_VERSION}; never sent on a link that speaks less, so protocol-2
and -3 nodes neither see nor relay them), flooded over links: a node
forwards a record only when it is newer than the one it holds for that
member, so each record crosses each link at most once each way.

Cost: a member re-signs only when its log changed: once the log has been
quiet for L{QUIET_S} (or, in a log that is never quiet, once it has
differed from the record for an interval), and at most once per
L{resign_interval} (L{MIN_RESIGN_S}, or L{RESIGN_S_PER_MEMBER} per member
when that is more).  So all members together make at most one record per
L{RESIGN_S_PER_MEMBER} seconds, whatever the network's size, and none
while nothing is posted; a node sends each record it takes on each of its
other links once.  A new link gets the records held, at most
L{MAX_RECORDS_PER_FRAME} per tick.  Freshness: a member's record
describes its log as it was at most one interval (plus L{QUIET_S}) ago.

Trust: a record counts only if its signature is the member's own (a
relay cannot forge or alter it), the member is in the membership table
(bounded memory), it is newer than the one held and not signed more than
L{MAX_FUTURE_S} ahead of this node's clock.  Records beyond a link's
budget (L{RECORDS_PER_S}) are dropped, with one rate-limited log line, and
a member's new record is taken at most once per L{MIN_ACCEPT_GAP_S} (an
honest member signs at most once per L{MIN_RESIGN_S}): a member that
signs records as fast as it can makes each node forward at most one of
them per that time, not one per record.
"""

import json
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Optional, Tuple

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pchat.canonical import is_lower_hex
from p2pchat.log.identity import is_node_id, verify_signature
from p2pchat.mesh import wire
from p2pchat.ratelimit import TokenBucket
from p2pchat.safe import LogLimiter, printable

DIGESTS_VERSION = 4
MAX_RECORDS_PER_FRAME = wire.MAX_DIGESTS_PER_FRAME
QUIET_S = 2.0
MIN_RESIGN_S = 5.0
RESIGN_S_PER_MEMBER = 2.0
MAX_FUTURE_S = 600.0
PRUNE_EVERY_S = 60.0
MIN_ACCEPT_GAP_S = MIN_RESIGN_S / 2
# Per link: an honest peer sends at most MAX_RECORDS_PER_FRAME a tick
# (0.2 s) while it hands over what it holds to a new link, about one a
# second otherwise.  Each costs one signature check (~62 us).
RECORDS_PER_S = (600.0, 1_200)
RECORD_CONTEXT = b"p2pchat-digest-v1\n"
MAX_COUNT = 2**53


@dataclass(frozen=True)
class DigestRecord:
    """
    One member's signed word about its log.
    """

    node_id: str
    count: int
    digest: str
    at_ms: int
    sig: str

    def to_wire(self) -> dict:
        return {"id": self.node_id, "n": self.count, "digest": self.digest,
                "at": self.at_ms, "sig": self.sig}


def statement(node_id: str, count: int, digest: str, at_ms: int) -> bytes:
    """
    @return: what a member signs: L{RECORD_CONTEXT} and the JSON array
        C{[id, n, digest, at]}.
    """
    return RECORD_CONTEXT + json.dumps(
        [node_id, count, digest, at_ms], separators=(",", ":")
    ).encode("ascii")


def parse_record(value: object) -> Optional[DigestRecord]:
    """
    @return: the record if C{value} has its form and its signature is its
        member's, else C{None}.
    """
    if not isinstance(value, dict) or set(value) != {"id", "n", "digest", "at", "sig"}:
        return None
    node_id, count, digest, at_ms, sig = (value[k] for k in ("id", "n", "digest", "at", "sig"))
    if not (is_node_id(node_id) and is_lower_hex(digest, 64) and is_lower_hex(sig, 128)):
        return None
    for number in (count, at_ms):
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= MAX_COUNT:
            return None
    if not verify_signature(node_id, statement(node_id, count, digest, at_ms), bytes.fromhex(sig)):
        return None
    return DigestRecord(node_id, count, digest, at_ms, sig)


def resign_interval(members: int) -> float:
    """
    @return: the least time between two records of one member in a
        network of C{members}.
    """
    return max(MIN_RESIGN_S, members * RESIGN_S_PER_MEMBER)


class Digests:
    """
    The records held, this node's own, and their flooding; see the module
    docstring.

    @ivar records: member id -> its newest L{DigestRecord}.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        wall_clock: Callable[[], float],
        node_id: str,
        signer: Callable[[bytes], bytes],
        own: Callable[[], Tuple[int, str]],
        is_member: Callable[[str], bool],
        members: Callable[[], int],
    ):
        """
        @param own: this node's log: C{(count, digest)}.
        @param is_member: whether an id is in the membership table.
        @param members: how many members there are.
        """
        self._clock = clock
        self._wall_clock = wall_clock
        self.node_id = node_id
        self._signer = signer
        self._own = own
        self._is_member = is_member
        self._members = members
        self.records: Dict[str, DigestRecord] = {}
        # member id -> when its record was last taken (this node's clock).
        self._taken_at: Dict[str, float] = {}
        self._links: Dict[object, Tuple[Deque[str], set, TokenBucket]] = {}
        self._seen: Optional[Tuple[int, str]] = None
        self._changed_at = clock.seconds()
        self._signed_at: Optional[float] = None
        self._stale_since: Optional[float] = None
        self._limiter = LogLimiter(clock)
        self._pruned_at = clock.seconds()

    # Links

    def link_up(self, link) -> None:
        if (link.version or 0) < DIGESTS_VERSION:
            return
        self._links[link] = (deque(), set(), TokenBucket(*RECORDS_PER_S, self._clock))
        for node_id in self.records:
            self._queue(link, node_id)

    def link_down(self, link) -> None:
        self._links.pop(link, None)

    def _queue(self, link, node_id: str) -> None:
        queue, queued, _ = self._links[link]
        if node_id not in queued:
            queued.add(node_id)
            queue.append(node_id)

    # Records in

    def rx_frame(self, link, frame: dict) -> None:
        """
        A C{digests} frame (its envelope checked by L{wire.parse_frame}).
        """
        state = self._links.get(link)
        if state is None:
            return
        records = frame["records"]
        if not state[2].take(min(len(records), RECORDS_PER_S[1])):
            self._limiter.log(
                "over-budget-digests", self.log.warn,
                "dropping digest records from {peer}: over its per-link budget",
                peer=printable(link.describe()),
            )
            return
        for value in records:
            self.learn(value, link)

    def learn(self, value: object, source=None) -> bool:
        """
        Keep a record (and forward it) if it is valid, a member's and
        newer than the one held.

        @return: whether it was kept.
        """
        node_id = value.get("id") if isinstance(value, dict) else None
        known = self.records.get(node_id) if isinstance(node_id, str) else None
        at_ms = value.get("at") if isinstance(value, dict) else None
        if (node_id == self.node_id or not isinstance(node_id, str)
                or not self._is_member(node_id) or not isinstance(at_ms, int)
                or (known is not None and at_ms <= known.at_ms)
                or at_ms > (self._wall_clock() + MAX_FUTURE_S) * 1000
                or self._clock.seconds() - self._taken_at.get(node_id, -MIN_ACCEPT_GAP_S)
                < MIN_ACCEPT_GAP_S):
            return False
        record = parse_record(value)
        if record is None:
            return False
        self._taken_at[record.node_id] = self._clock.seconds()
        self._keep(record, source)
        return True

    def _keep(self, record: DigestRecord, source) -> None:
        self.records[record.node_id] = record
        for link in self._links:
            if link is not source:
                self._queue(link, record.node_id)

    # Time

    def tick(self) -> None:
        """
        Re-sign this node's record if due, and send what is queued.
        """
        self._maybe_sign()
        self._prune()
        for link, (queue, queued, _) in self._links.items():
            batch = []
            while queue and len(batch) < MAX_RECORDS_PER_FRAME:
                node_id = queue.popleft()
                queued.discard(node_id)
                record = self.records.get(node_id)
                if record is not None:
                    batch.append(record.to_wire())
            if batch:
                link.send_frame(wire.digests(batch))

    def _maybe_sign(self) -> None:
        now = self._clock.seconds()
        own = self._own()
        if own != self._seen:
            self._seen, self._changed_at = own, now
        mine = self.records.get(self.node_id)
        if mine is not None and (mine.count, mine.digest) == own:
            self._stale_since = None
            return
        if self._stale_since is None:
            self._stale_since = now
        interval = resign_interval(self._members())
        # Once quiet for QUIET_S; in a log that never goes quiet (a busy
        # network), once it has differed from the record for an interval.
        if now - self._changed_at < QUIET_S and now - self._stale_since < interval:
            return
        if self._signed_at is not None and now - self._signed_at < interval:
            return
        at_ms = max(int(self._wall_clock() * 1000), mine.at_ms + 1 if mine else 0)
        count, digest = own
        sig = self._signer(statement(self.node_id, count, digest, at_ms)).hex()
        self._signed_at = now
        self._keep(DigestRecord(self.node_id, count, digest, at_ms, sig), None)

    def _prune(self) -> None:
        # Records of ids no longer in the membership table go: memory stays
        # bounded by the table's, whatever the churn.
        now = self._clock.seconds()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        for node_id in [i for i in self.records if i != self.node_id]:
            if not self._is_member(node_id):
                del self.records[node_id]
                self._taken_at.pop(node_id, None)
