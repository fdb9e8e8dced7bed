# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_attacks -*-
"""
The member table: one L{Record} per known member (its row and this
node's bookkeeping about it), the remembered leaves of pruned members,
and which member makes room when the table is full.

The rules that merge received rows into it are in
L{p2pchat.mesh.membership.merge}; which rows go to which link, in
L{p2pchat.mesh.membership.dissemination}.
"""

from typing import Callable, Dict, Iterator, List, Optional

from twisted.logger import Logger

from p2pchat.mesh.membership.admission import Admission
from p2pchat.mesh.membership.rows import (
    ALIVE,
    LEFT,
    SIGNATURE_HEX_LENGTH,
    STATE_RANK,
    make_row,
)
from p2pchat.mesh.membership.types import Member, MembershipConfig
from p2pchat.safe import LogLimiter

#: Conservative overhead of one encoded row besides its id, name, address
#: and signature: keys, punctuation, two integers of up to 16 digits and
#: the longest state.
ROW_OVERHEAD_BYTES = 96


class Record:
    """
    One member's row and this node's bookkeeping about it.

    @ivar advertised: whether the member's row came through gossip.  A
        member known only from a link's hello (a hidden node) is shown but
        never gossiped and never timed out.
    @ivar links: open links to it.
    @ivar last_heard: clock time of its last sign of life.
    @ivar state_since: clock time its state last changed.
    @ivar key: C{(incarnation, state rank, heartbeat)}, for the merge.
    @ivar told_inc: the incarnation of the last rumour passed to the
        member itself.
    @ivar suspecters: the nodes (this one included) that suspect it at
        its current incarnation, as far as this node knows (Lifeguard's
        confirmations; a few at most), or C{None}.
    """

    __slots__ = (
        "node_id", "name", "address", "incarnation", "state", "heartbeat", "sig",
        "advertised", "links", "last_heard", "state_since", "_row",
        "key", "told_inc", "suspecters",
    )

    def __init__(self, node_id, name, address, incarnation, state, heartbeat, now):
        self.node_id = node_id
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.state = state
        self.heartbeat = heartbeat
        self.sig: Optional[str] = None
        self.advertised = True
        self.links = 0
        self.last_heard = now
        self.state_since = now
        self._row: Optional[dict] = None
        self.key = (incarnation, STATE_RANK[state], heartbeat)
        self.told_inc = -1
        self.suspecters: Optional[set] = None

    def changed(self) -> None:
        """
        Call after changing a gossiped field.
        """
        self._row = None
        self.key = (self.incarnation, STATE_RANK[self.state], self.heartbeat)

    def row(self) -> dict:
        if self._row is None:
            self._row = make_row(
                self.node_id, self.incarnation, self.state, self.heartbeat, self.name,
                self.address, self.sig,
            )
        return self._row

    def adopt(self, row: dict) -> None:
        """
        Keep a received C{row} as this record's row if it says exactly
        what the record does: one dict per row, not two (the received one
        is kept instead of a copy; in a simulation of many nodes, one for
        all of them).
        """
        if self._row is None:
            made = self.row()
            if made == row:
                self._row = row

    def size(self) -> int:
        """
        @return: an upper bound on the encoded size of L{row} (not kept:
            a few additions, against a word per member).
        """
        size = ROW_OVERHEAD_BYTES + len(self.node_id) + len(self.name.encode("utf-8"))
        if self.address is not None:
            size += len(self.address.encode("utf-8"))
        if self.sig is not None:
            size += SIGNATURE_HEX_LENGTH + 10
        return size

    def member(self) -> Member:
        return Member(
            self.node_id, self.name, self.address, self.incarnation, self.state,
            self.links > 0, self.last_heard, self.advertised,
        )


class MemberTable:
    """
    The members this node knows, at most C{config.max_members} of them.

    @ivar records: the records by member id, in the order they were
        learned (gossip goes out in this order).
    @ivar gone: members whose signed leave was pruned, with its
        incarnation, so a replay of an older signed alive row cannot
        bring them back; oldest first, at most C{max_members}.
    """

    def __init__(
        self,
        config: MembershipConfig,
        admission: Admission,
        limiter: LogLimiter,
        log: Logger,
        on_forget: Callable[[str], None],
    ):
        """
        @param on_forget: called with a member's id when it leaves the
            table (pruned or evicted), to drop per-link state about it.
        """
        self._config = config
        self._admission = admission
        self._limiter = limiter
        self._log = log
        self._on_forget = on_forget
        self.records: Dict[str, Record] = {}
        self.gone: Dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def get(self, node_id: str) -> Optional[Record]:
        return self.records.get(node_id)

    def add(self, record: Record) -> None:
        """
        Put a new member's record in the table (after
        L{room_for_one_more}).
        """
        self.records[record.node_id] = record
        self.gone.pop(record.node_id, None)

    def room_for_one_more(self) -> bool:
        """
        @return: whether one more member fits, after evicting the oldest
            unproven member if the table is full.
        """
        if len(self.records) < self._config.max_members:
            return True
        evict = self._admission.evictable()
        if evict is not None:
            self.forget(evict)
            self._limiter.log(
                "evict", self._log.warn,
                "membership table full ({count} members); evicting unproven members",
                count=len(self.records) + 1,
            )
            return True
        self._limiter.log(
            "full", self._log.warn,
            "membership table full ({count} members), none unproven; ignoring new members",
            count=len(self.records),
        )
        return False

    def prune(self, node_id: str) -> None:
        """
        Drop an old tombstone; a signed leave is remembered in L{gone}.
        """
        record = self.records[node_id]
        if record.state == LEFT:
            self.gone[node_id] = record.incarnation
            while len(self.gone) > self._config.max_members:
                del self.gone[next(iter(self.gone))]
        self.forget(node_id)

    def forget(self, node_id: str) -> None:
        del self.records[node_id]
        self._admission.proven(node_id)
        self._on_forget(node_id)

    def members(self) -> List[Member]:
        """
        @return: every known member except this node, tombstones included,
            sorted by name then id.
        """
        records = sorted(self.records.values(), key=lambda r: (r.name, r.node_id))
        return [record.member() for record in records]

    def member(self, node_id: str) -> Optional[Member]:
        """
        @return: what is known about C{node_id}, or C{None}.
        """
        record = self.records.get(node_id)
        return None if record is None else record.member()

    def alive_count(self) -> int:
        """
        @return: how many members other than this node are alive.
        """
        return sum(1 for record in self.records.values() if record.state == ALIVE)
